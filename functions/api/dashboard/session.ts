import type { Context } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { ApiFailure, DashboardApi, orgCookie, sessionCookie, type ApiFetch } from './api.ts';
import { page, type Html, type Shell } from './layout.ts';

const flashCookie = 'sdo_flash';
/** The request variable the dashboard app sets to its mode's logout route, for the page header. */
export const logoutPathVariable = 'dashboardLogoutPath';

/** A page handler's way to say "go there instead" (login, after a form). */
export class Redirect extends Error {
  readonly to: string;
  constructor(to: string) {
    super(`redirect to ${to}`);
    this.to = to;
  }
}

/** Whether the browser reached the dashboard over https (directly or through a proxy). */
export function isHttps(c: Context): boolean {
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
}

/**
 * Cookies are HttpOnly (script cannot read the token) and SameSite=Strict (no other site
 * can make the browser send them), and Secure whenever the dashboard is served over HTTPS.
 */
export function setSessionCookie(
  c: Context,
  name: string,
  value: string,
  maxAge = 12 * 3600,
  scope: { path?: string; sameSite?: 'Strict' | 'Lax'; secure?: boolean } = {},
): void {
  setCookie(c, name, value, {
    httpOnly: true,
    sameSite: scope.sameSite ?? 'Strict',
    path: scope.path ?? '/',
    secure: isHttps(c) || scope.secure === true,
    maxAge,
  });
}

export function clearSession(c: Context): void {
  deleteCookie(c, sessionCookie, { path: '/' });
  deleteCookie(c, orgCookie, { path: '/' });
}

/** A one-shot message shown on the next page (after a redirect). */
export function flash(c: Context, kind: 'error' | 'notice', text: string): void {
  setSessionCookie(c, flashCookie, JSON.stringify({ kind, text: text.slice(0, 600) }), 60);
}

export function takeFlash(c: Context): Shell['flash'] {
  const raw = getCookie(c, flashCookie);
  if (!raw) return null;
  deleteCookie(c, flashCookie, { path: '/' });
  try {
    const f = JSON.parse(raw) as { kind?: string; text?: string };
    if ((f.kind === 'error' || f.kind === 'notice') && typeof f.text === 'string')
      return { kind: f.kind, text: f.text };
  } catch {
    // a cookie we did not write: ignore it
  }
  return null;
}

export interface Session {
  api: DashboardApi;
  shell: Omit<Shell, 'title'>;
  orgId: string | null;
  userId: string | null;
}

/** Who the API says the caller is (GET /api/me). */
export interface Me {
  actorType: string;
  userId: string | null;
  orgId: string | null;
  orgChoices?: string[];
}

/**
 * The signed-in user, their orgs (for the switcher) and the org this page acts in; a
 * missing or expired session goes to the login page.
 */
export async function session(c: Context, fetchApi: ApiFetch): Promise<Session> {
  const api = new DashboardApi(c, fetchApi);
  if (!api.token)
    throw new Redirect(`/dashboard/login?next=${encodeURIComponent(new URL(c.req.url).pathname)}`);
  let me: Me;
  try {
    me = await api.call<Me>('GET', '/api/me', undefined, { org: null });
  } catch (e) {
    if (e instanceof ApiFailure && e.status === 401) {
      clearSession(c);
      flash(c, 'error', `Please log in again: ${e.message}`);
      throw new Redirect(
        `/dashboard/login?next=${encodeURIComponent(new URL(c.req.url).pathname)}`,
      );
    }
    throw e;
  }
  const choices = me.orgChoices ?? (me.orgId ? [me.orgId] : []);
  const wanted = getCookie(c, orgCookie);
  const orgId = wanted && choices.includes(wanted) ? wanted : (choices[0] ?? null);
  api.orgId = orgId ?? undefined;
  const orgs = await Promise.all(
    choices.map((id) =>
      api
        .call<{ id: string; name: string }>('GET', `/api/orgs/${id}`, undefined, { org: id })
        .catch(() => ({ id, name: id })),
    ),
  );
  return { api, orgId, userId: me.userId, shell: { orgs, orgId, flash: takeFlash(c) } };
}

/** Renders a full page (shell + body) with the session's header. */
export function render(
  c: Context,
  s: Pick<Session, 'shell'> | null,
  shell: Pick<Shell, 'title' | 'section'>,
  body: Html,
  status = 200,
) {
  c.header('Cache-Control', 'no-store');
  const logoutPath = c.get(logoutPathVariable) as string | undefined;
  return c.html(
    page({ ...(s?.shell ?? { flash: takeFlash(c) }), ...shell, logoutPath }, body),
    status as 200,
  );
}

/** Where a form returns to: the page it was posted from when that is ours, else `fallback`. */
export function back(c: Context, fallback: string): string {
  const referer = c.req.header('referer');
  if (referer) {
    try {
      const url = new URL(referer);
      if (url.host === new URL(c.req.url).host && url.pathname.startsWith('/dashboard'))
        return url.pathname + url.search;
    } catch {
      // not a URL: use the fallback
    }
  }
  return fallback;
}

/** Only our own pages: an open redirect would let a link send a fresh session elsewhere. */
export const safeNext = (next: string | undefined) =>
  next && /^\/dashboard(\/[\w\-/?=&.%]*)?$/.test(next) ? next : '/dashboard';

/** A form's text field, trimmed; empty fields are undefined. */
export function field(form: Record<string, unknown>, name: string): string | undefined {
  const v = form[name];
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

/** A path parameter of the matched route (always present on the routes that name it). */
export function param(c: Context, name: string): string {
  return c.req.param(name) ?? '';
}
