import type { Context, Hono } from 'hono';
import type { HostedSignIn, Logger } from '../../../../core/ports.ts';
import { html } from 'hono/html';
import { ApiFailure, DashboardApi, orgCookie, sessionCookie, type ApiFetch } from '../api.ts';
import type { Html } from '../layout.ts';
import { clearSession, field, flash, render, safeNext, setSessionCookie } from '../session.ts';
import { hostedLogoutPath, registerHostedSignIn } from './hosted-sign-in.ts';

function authForm(kind: 'login' | 'signup', next: string): Html {
  const login = kind === 'login';
  return html`<div class="auth">
    <h1>${login ? 'Log in to selfdevop' : 'Create your selfdevop account'}</h1>
    <form method="post" action="/dashboard/${kind}" class="card">
      <input type="hidden" name="next" value="${next}" />
      <label for="email">Email</label>
      <input id="email" name="email" type="email" autocomplete="email" required autofocus />
      <label for="password"
        >Password ${login ? '' : html`<span class="hint">(at least 8 characters)</span>`}</label
      >
      <input
        id="password"
        name="password"
        type="password"
        autocomplete="${login ? 'current-password' : 'new-password'}"
        required
        ${login ? '' : 'minlength="8"'}
      />
      <p><button type="submit">${login ? 'Log in' : 'Sign up'}</button></p>
    </form>
    <p>
      ${
        login
          ? html`New here? <a href="/dashboard/signup">Create an account</a> (the first account of
              an installation owns it).`
          : html`Already have an account? <a href="/dashboard/login">Log in</a>.`
      }
    </p>
  </div>`;
}

async function signIn(c: Context, fetchApi: ApiFetch, kind: 'login' | 'signup') {
  const form = (await c.req.parseBody()) as Record<string, unknown>;
  const email = field(form, 'email') ?? '';
  const password = typeof form.password === 'string' ? form.password : '';
  const api = new DashboardApi(c, fetchApi, { token: '', orgId: null });
  try {
    const res = await api.call<{ token: string; org?: { id: string } }>(
      'POST',
      `/api/auth/local/${kind}`,
      { email, password },
    );
    setSessionCookie(c, sessionCookie, res.token);
    if (res.org) setSessionCookie(c, orgCookie, res.org.id);
    if (kind === 'signup')
      flash(
        c,
        'notice',
        'Welcome! Register a Docker host under Nodes, then create a project and a service.',
      );
    return c.redirect(safeNext(field(form, 'next')), 303);
  } catch (e) {
    if (!(e instanceof ApiFailure)) throw e;
    return render(
      c,
      null,
      { title: kind === 'login' ? 'Log in' : 'Sign up' },
      html`<div class="alert error auth" role="alert">${e.message}</div>
        ${authForm(kind, safeNext(field(form, 'next')))}`,
      e.status,
    );
  }
}

/** Where the "Log out" button posts: the hosted sign-in's route, which can see the refresh cookie. */
export const logoutPathOf = (hostedSignIn?: HostedSignIn) =>
  hostedSignIn ? hostedLogoutPath : '/dashboard/logout';

/** Sign-in routes (the local form, or the hosted page when given one) and the org switcher. */
export function registerAuth(
  app: Hono,
  fetchApi: ApiFetch,
  logger: Logger,
  hostedSignIn?: HostedSignIn,
): void {
  if (hostedSignIn) registerHostedSignIn(app, fetchApi, hostedSignIn, logger);
  else registerLocalSignIn(app, fetchApi);
}

function registerLocalSignIn(app: Hono, fetchApi: ApiFetch): void {
  app.get('/dashboard/login', (c) =>
    render(c, null, { title: 'Log in' }, authForm('login', safeNext(c.req.query('next')))),
  );
  app.get('/dashboard/signup', (c) =>
    render(c, null, { title: 'Sign up' }, authForm('signup', '/dashboard')),
  );
  app.post('/dashboard/login', (c) => signIn(c, fetchApi, 'login'));
  app.post('/dashboard/signup', (c) => signIn(c, fetchApi, 'signup'));
  app.post('/dashboard/logout', async (c) => {
    // Revoked on the server too: a copied cookie must not outlive the logout.
    const api = new DashboardApi(c, fetchApi);
    if (api.token) {
      const res = await api.raw('POST', '/api/auth/logout', { org: null });
      if (!res.ok && res.status !== 401)
        flash(
          c,
          'error',
          'Logged out here, but the server could not end the session; it expires on its own.',
        );
    }
    clearSession(c);
    return c.redirect('/dashboard/login', 303);
  });
}
