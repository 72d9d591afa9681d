import type { Context, Hono } from 'hono';
import { html } from 'hono/html';
import { ApiFailure, DashboardApi, orgCookie, sessionCookie, type ApiFetch } from '../api.ts';
import { action } from '../handler.ts';
import type { Html } from '../layout.ts';
import { field, flash, render, setSessionCookie } from '../session.ts';

const tokenPattern = /^sdi_[A-Za-z0-9_-]{20,90}$/;

/** The page an invite email links to (`acceptInvitePath` in core/invites). */
const acceptPath = '/dashboard/invites/accept';

function acceptPage(token: string, signedIn: boolean, local: boolean, error?: string): Html {
  const here = `${acceptPath}?token=${encodeURIComponent(token)}`;
  return html`<div class="auth">
    <h1>Join an organization on selfdevop</h1>
    ${error ? html`<div class="alert error" role="alert">${error}</div>` : ''}
    ${
      signedIn
        ? html`<form method="post" action="${acceptPath}" class="card">
            <input type="hidden" name="token" value="${token}" />
            <p>You were invited to join an organization. Accepting adds it to your account.</p>
            <p><button type="submit">Accept the invite</button></p>
          </form>`
        : local
          ? html`<form method="post" action="/dashboard/invites/signup" class="card">
                <input type="hidden" name="token" value="${token}" />
                <p>Create your account with the address the invite was sent to.</p>
                <label for="email">Email</label>
                <input
                  id="email"
                  name="email"
                  type="email"
                  autocomplete="email"
                  required
                  autofocus
                />
                <label for="password"
                  >Password <span class="hint">(at least 8 characters)</span></label
                >
                <input
                  id="password"
                  name="password"
                  type="password"
                  autocomplete="new-password"
                  required
                  minlength="8"
                />
                <p><button type="submit">Sign up and join</button></p>
              </form>
              <p>
                Already have an account?
                <a href="/dashboard/login?next=${encodeURIComponent(here)}">Log in</a>, then accept
                here.
              </p>`
          : html`<p>
              <a href="/dashboard/login?next=${encodeURIComponent(here)}">Sign in</a> with the
              address the invite was sent to, then accept it here.
            </p>`
    }
  </div>`;
}

/** Whether the browser carries a session the API still accepts. */
async function signedIn(c: Context, fetchApi: ApiFetch): Promise<boolean> {
  const api = new DashboardApi(c, fetchApi, { orgId: null });
  if (!api.token) return false;
  const res = await api.raw('GET', '/api/me', { org: null });
  return res.ok;
}

/**
 * Accepting an invite from its emailed link: a signed-in person accepts with one button;
 * someone new signs up with the invite (local mode), which works on a closed install too.
 */
export function registerInvites(app: Hono, fetchApi: ApiFetch, local: boolean): void {
  app.get(acceptPath, async (c) => {
    const token = c.req.query('token') ?? '';
    if (!tokenPattern.test(token))
      return render(
        c,
        null,
        { title: 'Invite' },
        html`<div class="auth">
          <h1>Join an organization on selfdevop</h1>
          <div class="alert error" role="alert">
            This invite link is incomplete: open the whole link from the email.
          </div>
        </div>`,
        400,
      );
    return render(
      c,
      null,
      { title: 'Invite' },
      acceptPage(token, await signedIn(c, fetchApi), local),
    );
  });

  app.post(
    acceptPath,
    action(fetchApi, '/dashboard', async (c, s, form) => {
      const joined = await s.api.call<{ org: { id: string; name: string }; role: string }>(
        'POST',
        '/api/invites/accept',
        { token: field(form, 'token') ?? '' },
        { org: null },
      );
      setSessionCookie(c, orgCookie, joined.org.id);
      flash(c, 'notice', `You joined ${joined.org.name} as ${joined.role}.`);
      return '/dashboard';
    }),
  );

  if (!local) return;
  app.post('/dashboard/invites/signup', async (c) => {
    const form = (await c.req.parseBody()) as Record<string, unknown>;
    const token = field(form, 'token') ?? '';
    const api = new DashboardApi(c, fetchApi, { token: '', orgId: null });
    try {
      const res = await api.call<{ token: string; org: { id: string; name: string } }>(
        'POST',
        '/api/auth/local/signup',
        {
          email: field(form, 'email') ?? '',
          password: typeof form.password === 'string' ? form.password : '',
          inviteToken: token,
        },
      );
      setSessionCookie(c, sessionCookie, res.token);
      setSessionCookie(c, orgCookie, res.org.id);
      flash(c, 'notice', `Welcome to ${res.org.name}!`);
      return c.redirect('/dashboard', 303);
    } catch (e) {
      if (!(e instanceof ApiFailure)) throw e;
      const page = tokenPattern.test(token)
        ? acceptPage(token, false, true, e.message)
        : html`<div class="alert error auth" role="alert">${e.message}</div>`;
      return render(c, null, { title: 'Invite' }, page, e.status);
    }
  });
}
