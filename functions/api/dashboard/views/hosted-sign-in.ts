/**
 * Cloud-mode sign-in: the dashboard has no password form; it sends the browser to the
 * hosted sign-in page (Cognito's hosted UI) with the authorization code grant and PKCE,
 * trades the code it comes back with for tokens, has the API verify the access token
 * (GET /api/me, the same AuthProvider every API call uses), then keeps it in the session
 * cookie the rest of the dashboard already reads.
 */
import type { Context, Hono } from 'hono';
import { deleteCookie, getCookie } from 'hono/cookie';
import { html } from 'hono/html';
import { isCoreError } from '../../../../core/errors.ts';
import type { HostedSignIn, Logger, SignInTokens } from '../../../../core/ports.ts';
import { ApiFailure, DashboardApi, orgCookie, sessionCookie, type ApiFetch } from '../api.ts';
import { dashboardCallbackPath, dashboardSignedOutPath } from '../../../../core/system.ts';
import type { Html } from '../layout.ts';
import { randomToken, s256Challenge, sameText } from '../pkce.ts';
import {
  clearSession,
  isHttps,
  render,
  safeNext,
  setSessionCookie,
  takeFlash,
  type Me,
} from '../session.ts';

/** One sign-in attempt (state, PKCE verifier, page to return to), bound to this browser. */
const attemptCookie = 'sdo_signin';
/** Lax, not Strict: the hosted UI's redirect back is a cross-site navigation. */
const attemptScope = { path: dashboardCallbackPath, sameSite: 'Lax' } as const;
const attemptSeconds = 10 * 60;
/**
 * The refresh token goes only where it is used: under /dashboard/auth, the routes that
 * renew a session with it and that revoke it on logout (and the callback, which replaces it).
 */
const refreshCookie = 'sdo_refresh';
const refreshScope = { path: '/dashboard/auth' } as const;
const refreshSeconds = 30 * 24 * 3600;
/** Where the refresh cookie was kept before it moved under /dashboard/auth (until 30 days after that change). */
const legacyRefreshPath = '/dashboard/login';
/** Signs in: silently with the refresh token when the browser has a good one, else on the hosted page. */
const signInPath = '/dashboard/auth/sign-in';
/** Where the dashboard's "Log out" button posts in this mode. */
export const hostedLogoutPath = '/dashboard/auth/logout';

interface Attempt {
  state: string;
  verifier: string;
  next: string;
}

function readAttempt(c: Context): Attempt | null {
  const raw = getCookie(c, attemptCookie);
  if (!raw) return null;
  try {
    const a = JSON.parse(raw) as Partial<Attempt>;
    if (typeof a.state === 'string' && typeof a.verifier === 'string' && typeof a.next === 'string')
      return { state: a.state, verifier: a.verifier, next: safeNext(a.next) };
  } catch {
    // a cookie we did not write: treated as no attempt
  }
  return null;
}

function failed(c: Context, status: number, message: string, advice?: Html) {
  return render(
    c,
    null,
    { title: 'Sign-in failed' },
    html`<div class="auth">
      <h1>Sign-in did not work</h1>
      <div class="alert error" role="alert">${message}</div>
      ${advice ?? ''}
      <p><a href="/dashboard/login">Sign in again</a></p>
    </div>`,
    status,
  );
}

/** Asks the API who the token belongs to: the API's AuthProvider is the only judge of it. */
async function whoIs(c: Context, fetchApi: ApiFetch, token: string): Promise<Me> {
  return new DashboardApi(c, fetchApi, { token, orgId: null }).call<Me>(
    'GET',
    '/api/me',
    undefined,
    { org: null },
  );
}

export function registerHostedSignIn(
  app: Hono,
  fetchApi: ApiFetch,
  hosted: HostedSignIn,
  logger: Logger,
): void {
  // Cookies are Secure when the dashboard is served over https, even behind a proxy that
  // hands the app plain http.
  const secure = new URL(hosted.callbackUrl).protocol === 'https:';

  function keep(c: Context, tokens: SignInTokens, me: Me) {
    setSessionCookie(c, sessionCookie, tokens.accessToken, undefined, { secure });
    if (tokens.refreshToken)
      setSessionCookie(c, refreshCookie, tokens.refreshToken, refreshSeconds, {
        ...refreshScope,
        secure,
      });
    const orgId = me.orgId ?? me.orgChoices?.[0];
    if (orgId) setSessionCookie(c, orgCookie, orgId, undefined, { secure });
  }

  function forgetRefresh(c: Context) {
    deleteCookie(c, refreshCookie, { ...refreshScope, secure: secure || isHttps(c) });
  }

  async function startSignIn(c: Context) {
    const next = safeNext(c.req.query('next'));
    // A session whose access token expired comes back here: the refresh token renews it
    // without a trip to the hosted page.
    const refreshToken = getCookie(c, refreshCookie);
    if (refreshToken) {
      try {
        const tokens = await hosted.refresh(refreshToken);
        const me = await whoIs(c, fetchApi, tokens.accessToken);
        keep(c, tokens, me);
        takeFlash(c); // the "please log in again" of the expired session: nothing to do now
        return c.redirect(next, 303);
      } catch (e) {
        // Refused or unverifiable: the refresh token is of no more use; sign in afresh.
        if (!isCoreError(e) && !(e instanceof ApiFailure)) throw e;
        forgetRefresh(c);
        clearSession(c);
      }
    }
    const attempt: Attempt = { state: randomToken(), verifier: randomToken(), next };
    setSessionCookie(c, attemptCookie, JSON.stringify(attempt), attemptSeconds, {
      ...attemptScope,
      secure,
    });
    return c.redirect(
      hosted.authorizeUrl({
        state: attempt.state,
        codeChallenge: await s256Challenge(attempt.verifier),
      }),
      302,
    );
  }

  app.get(signInPath, startSignIn);
  // The login and signup pages stay where every mode has them; they hop to the path the
  // refresh cookie is sent to. The hosted page has its own "Sign up" link.
  const toSignIn = (c: Context) => {
    // Only a cookie from before the move reaches this path: it moves to the new one.
    const legacy = getCookie(c, refreshCookie);
    if (legacy) {
      deleteCookie(c, refreshCookie, { path: legacyRefreshPath, secure: secure || isHttps(c) });
      setSessionCookie(c, refreshCookie, legacy, refreshSeconds, { ...refreshScope, secure });
    }
    return c.redirect(
      `${signInPath}?next=${encodeURIComponent(safeNext(c.req.query('next')))}`,
      302,
    );
  };
  app.get('/dashboard/login', toSignIn);
  app.get('/dashboard/signup', toSignIn);
  app.post('/dashboard/login', (c) => c.redirect('/dashboard/login', 303));
  app.post('/dashboard/signup', (c) => c.redirect('/dashboard/login', 303));

  app.get(dashboardCallbackPath, async (c) => {
    const attempt = readAttempt(c);
    // Single use: whatever happens next, this attempt is over.
    deleteCookie(c, attemptCookie, { ...attemptScope, secure: secure || isHttps(c) });
    const q = c.req.query();
    if (q.error) {
      const reason =
        q.error === 'access_denied'
          ? 'sign-in was cancelled or refused'
          : 'the sign-in page reported an error';
      const detail = q.error_description ? `: ${q.error_description.slice(0, 300)}` : '';
      return failed(c, 400, `Cognito says ${q.error.slice(0, 60)} (${reason})${detail}`);
    }
    if (!attempt)
      return failed(
        c,
        400,
        'this sign-in was not started in this browser, or it took longer than 10 minutes (its cookie is missing)',
      );
    if (!q.state || !sameText(q.state, attempt.state))
      return failed(
        c,
        400,
        'the sign-in state does not match the one this browser started with; the link may be forged or stale',
      );
    if (!q.code) return failed(c, 400, 'the sign-in page sent no authorization code back');
    let tokens: SignInTokens;
    try {
      tokens = await hosted.exchangeCode(q.code, attempt.verifier);
    } catch (e) {
      if (!isCoreError(e)) throw e;
      return failed(c, e.kind === 'unavailable' ? 502 : 400, e.message);
    }
    let me: Me;
    try {
      me = await whoIs(c, fetchApi, tokens.accessToken);
    } catch (e) {
      if (!(e instanceof ApiFailure)) throw e;
      const unknownUser = /no selfdevop user/.test(e.message);
      return failed(
        c,
        e.status,
        `the API refused the signed-in session: ${e.message}`,
        unknownUser
          ? html`<p>
              Cognito knows you, but selfdevop has no user for this account yet. That happens when
              your email address already belongs to a selfdevop user made before Cognito sign-in:
              ask an operator of this installation to link the two, then sign in again.
            </p>`
          : undefined,
      );
    }
    keep(c, tokens, me);
    // A page, not a redirect: the browser would count a redirect as part of the cross-site
    // trip back from the hosted page and withhold the SameSite=Strict session cookie.
    c.header('Cache-Control', 'no-store');
    return c.html(
      html`<!doctype html>
        <html lang="en">
          <head>
            <meta charset="utf-8" />
            <meta http-equiv="refresh" content="0;url=${attempt.next}" />
            <title>Signed in · selfdevop</title>
            <link rel="stylesheet" href="/dashboard/assets/app.css" />
          </head>
          <body>
            <main id="main">
              <p>Signed in. <a href="${attempt.next}">Continue to the dashboard</a>.</p>
            </main>
          </body>
        </html>`,
    );
  });

  app.post(hostedLogoutPath, async (c) => {
    const refreshToken = getCookie(c, refreshCookie);
    if (refreshToken) {
      // A copy of the refresh token (a backup, a stolen cookie jar) would otherwise keep
      // minting access tokens for 30 days. Best effort: logging out never waits on Cognito
      // longer than the adapter's bound, and never fails because of it.
      try {
        await hosted.revoke(refreshToken);
      } catch (e) {
        if (!isCoreError(e)) throw e;
        logger.warn(
          { event: 'dashboard.refresh_token_not_revoked', reason: e.message },
          'logout could not revoke the refresh token; it stays valid until it expires',
        );
      }
    }
    clearSession(c);
    forgetRefresh(c);
    // A refresh cookie from before the move is not sent here, and would sign the browser
    // back in at the next /dashboard/login: it goes too, unseen.
    deleteCookie(c, refreshCookie, { path: legacyRefreshPath, secure: secure || isHttps(c) });
    // Cognito ends its own session too, else the next sign-in would skip the password.
    return c.redirect(hosted.logoutUrl(), 303);
  });
  // A page rendered before the logout moved here still posts to the old path; 307 keeps
  // the POST, and the browser sends the refresh cookie to the new one.
  app.post('/dashboard/logout', (c) => c.redirect(hostedLogoutPath, 307));

  app.get(dashboardSignedOutPath, (c) =>
    render(
      c,
      null,
      { title: 'Signed out' },
      html`<div class="auth">
        <h1>You are signed out</h1>
        <p><a href="/dashboard/login">Sign in again</a></p>
      </div>`,
    ),
  );
}
