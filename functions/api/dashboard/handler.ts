import type { Context } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, type ApiFetch } from './api.ts';
import { back, flash, Redirect, render, session, type Session } from './session.ts';

type Form = Record<string, unknown>;

function errorPage(c: Context, s: Session | null, e: unknown) {
  if (e instanceof ApiFailure) {
    return render(
      c,
      s,
      { title: 'Error' },
      html`<h1>That did not work</h1>
        <div class="alert error" role="alert">${e.message}</div>
        <p><a href="/dashboard">Back to projects</a></p>`,
      e.status >= 400 && e.status < 600 ? e.status : 500,
    );
  }
  throw e;
}

/**
 * A GET page that needs a signed-in user in an org; API errors become a page with the
 * API's message. A user in no org yet goes to the page that creates one (/dashboard),
 * which sends them back here once they have one.
 */
export function view(fetchApi: ApiFetch, fn: (c: Context, s: Session) => Promise<Response>) {
  return signedInPage(fetchApi, fn, { withoutOrg: false });
}

/** A GET page for a signed-in user in no org yet too (`s.orgId` is then null). */
export function viewWithoutOrg(
  fetchApi: ApiFetch,
  fn: (c: Context, s: Session) => Promise<Response>,
) {
  return signedInPage(fetchApi, fn, { withoutOrg: true });
}

function signedInPage(
  fetchApi: ApiFetch,
  fn: (c: Context, s: Session) => Promise<Response>,
  options: { withoutOrg: boolean },
) {
  return async (c: Context) => {
    let s: Session | null = null;
    try {
      s = await session(c, fetchApi);
      if (s.orgId === null && !options.withoutOrg)
        throw new Redirect(`/dashboard?next=${encodeURIComponent(c.req.path)}`);
      return await fn(c, s);
    } catch (e) {
      if (e instanceof Redirect) return c.redirect(e.to, 303);
      return errorPage(c, s, e);
    }
  };
}

/**
 * A form POST: runs, then redirects (post/redirect/get) to the path it returns. An API
 * error goes back to the form's page with the API's message shown.
 */
export function action(
  fetchApi: ApiFetch,
  fallback: string,
  fn: (c: Context, s: Session, form: Form) => Promise<string>,
) {
  return async (c: Context) => {
    try {
      const s = await session(c, fetchApi);
      const form = (await c.req.parseBody()) as Form;
      return c.redirect(await fn(c, s, form), 303);
    } catch (e) {
      if (e instanceof Redirect) return c.redirect(e.to, 303);
      if (e instanceof ApiFailure) {
        flash(c, 'error', e.message);
        return c.redirect(back(c, fallback), 303);
      }
      throw e;
    }
  };
}
