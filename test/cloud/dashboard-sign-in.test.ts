/**
 * Cloud-mode dashboard sign-in over HTTP: the API built by the cloud composition root
 * (CognitoAuth, the hosted UI adapter, a real PostgreSQL) against a local Cognito-shaped
 * OAuth server and JWKS. Each success and failure path a browser can reach.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cognitoUserId } from '../../adapters/modes/cloud-user.ts';
import { createApiHandler } from '../../functions/lambda/api-handler.ts';
import { toProxyEventV2, type LambdaHttpHandler } from './lambda-requester.ts';
import { hostedClientId, startCloudDashboard, type CloudDashboard } from './hosted-sign-in.ts';

interface Cookie {
  value: string;
  path: string;
}

/** A cookie jar per host, sending each cookie only under its path, as a browser does. */
class Browser {
  private readonly jar = new Map<string, Map<string, Cookie>>();
  /** Every Set-Cookie of the last response. */
  setCookies: string[] = [];

  cookie(host: string, name: string): string | undefined {
    return this.jar.get(host)?.get(name)?.value;
  }

  forge(host: string, name: string, value: string, path = '/') {
    if (!this.jar.has(host)) this.jar.set(host, new Map());
    this.jar.get(host)!.set(name, { value, path });
  }

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const u = new URL(url);
    const sent = [...(this.jar.get(u.host) ?? new Map<string, Cookie>())]
      .filter(
        ([, c]) =>
          u.pathname === c.path ||
          u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
      )
      .map(([name, c]) => `${name}=${c.value}`);
    const headers = new Headers(init.headers);
    if (sent.length) headers.set('cookie', sent.join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    this.setCookies = res.headers.getSetCookie();
    for (const line of this.setCookies) {
      const [pair, ...attrs] = line.split(/;\s*/);
      const [name, ...rest] = pair!.split('=');
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      if (!this.jar.has(u.host)) this.jar.set(u.host, new Map());
      if (attrs.some((a) => /^max-age=0$/i.test(a)) || rest.join('=') === '')
        this.jar.get(u.host)!.delete(name!);
      else this.jar.get(u.host)!.set(name!, { value: rest.join('='), path });
    }
    return res;
  }

  /** The Set-Cookie line for `name` in the last response. */
  set(name: string): string | undefined {
    return this.setCookies.find((c) => c.startsWith(`${name}=`));
  }
}

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

/** The hidden fields of the fake hosted UI's sign-in form. */
const hiddenFields = (page: string) =>
  Object.fromEntries(
    [...page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [
      m[1]!,
      m[2]!.replace(/&#38;/g, '&'),
    ]),
  );

describe('dashboard sign-in through the Cognito hosted UI', () => {
  let app: CloudDashboard;
  let host: string;

  beforeAll(async () => {
    app = await startCloudDashboard();
    host = new URL(app.url).host;
  }, 60_000);
  afterAll(() => app?.close());

  /** GET /dashboard/login, which hops to the sign-in route under the refresh cookie's path. */
  async function login(b: Browser, next = '/dashboard') {
    const hop = await b.fetch(`${app.url}/dashboard/login?next=${encodeURIComponent(next)}`);
    expect(hop.status).toBe(302);
    expect(hop.headers.get('location')).toBe(
      `/dashboard/auth/sign-in?next=${encodeURIComponent(next)}`,
    );
    return b.fetch(`${app.url}${hop.headers.get('location')}`);
  }

  /** Dashboard login → hosted UI form → submit: the callback URL the hosted UI redirects to. */
  async function toCallback(b: Browser, email: string, password: string, action = 'signin') {
    const login_ = await login(b);
    expect(login_.status).toBe(302);
    const authorize = await b.fetch(login_.headers.get('location')!);
    // Still signed in at the hosted UI: it answers with a code straight away.
    if (authorize.status === 302) return authorize.headers.get('location')!;
    expect(authorize.status).toBe(200);
    const submitted = await b.fetch(
      `${app.hosted.url}/login`,
      form({ ...hiddenFields(await authorize.text()), username: email, password, action }),
    );
    expect(submitted.status).toBe(302);
    return submitted.headers.get('location')!;
  }

  async function signIn(b: Browser, email: string, password: string) {
    const callback = await b.fetch(await toCallback(b, email, password));
    expect(callback.status, await callback.clone().text()).toBe(200);
    return callback;
  }

  /** A failure page: HTML with the message, no session kept. */
  async function expectFailure(b: Browser, res: Response, status: number, message: string) {
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await res.text();
    expect(page).toContain('Sign-in did not work');
    expect(page).toContain(message);
    expect(b.set('sdo_session')).toBeUndefined();
    expect(b.cookie(host, 'sdo_session')).toBeUndefined();
    return page;
  }

  it('sends a visitor to the hosted UI with an authorization code request and PKCE S256', async () => {
    const b = new Browser();
    const page = await b.fetch(`${app.url}/dashboard/nodes`);
    expect(page.headers.get('location')).toBe('/dashboard/login?next=%2Fdashboard%2Fnodes');
    const signIn_ = await login(b, '/dashboard/nodes');
    expect(signIn_.status).toBe(302);
    const to = new URL(signIn_.headers.get('location')!);
    expect(`${to.origin}${to.pathname}`).toBe(`${app.hosted.url}/oauth2/authorize`);
    const q = Object.fromEntries(to.searchParams);
    expect(q).toEqual({
      response_type: 'code',
      client_id: hostedClientId,
      redirect_uri: `${app.url}/dashboard/auth/callback`,
      scope: 'openid email',
      state: expect.stringMatching(/^[\w-]{43}$/),
      code_challenge: expect.stringMatching(/^[\w-]{43}$/),
      code_challenge_method: 'S256',
    });
    const attempt = b.set('sdo_signin')!;
    expect(attempt).toMatch(/HttpOnly/);
    expect(attempt).toMatch(/SameSite=Lax/);
    expect(attempt).toMatch(/Path=\/dashboard\/auth\/callback/);
    expect(attempt).toMatch(/Max-Age=600/);
    expect(attempt).not.toMatch(/Secure/); // http on loopback
    // The challenge is the S256 of the verifier kept in the cookie, and the state is the cookie's.
    const kept = JSON.parse(decodeURIComponent(b.cookie(host, 'sdo_signin')!)) as {
      state: string;
      verifier: string;
      next: string;
    };
    expect(kept.state).toBe(q.state);
    expect(createHash('sha256').update(kept.verifier).digest('base64url')).toBe(q.code_challenge);
    expect(kept.next).toBe('/dashboard/nodes');
    // Signing up is the hosted UI's own link.
    const signup = await b.fetch(`${app.url}/dashboard/signup`);
    expect(signup.headers.get('location')).toBe('/dashboard/auth/sign-in?next=%2Fdashboard');
    expect(
      (await b.fetch(`${app.url}${signup.headers.get('location')}`)).headers.get('location'),
    ).toMatch(/\/oauth2\/authorize\?/);
  });

  it('signs a new Cognito user in, lands on "create your organization", and shows the org once made', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('new.user@example.com', 'Correct-horse-9');
    const before = app.hosted.tokenRequests.length;
    const callback = await signIn(b, user.email, user.password);
    // The code went to the token endpoint form-encoded, with the verifier and redirect_uri.
    const exchange = app.hosted.tokenRequests[before]!;
    expect(exchange).toMatchObject({
      grant_type: 'authorization_code',
      client_id: hostedClientId,
      redirect_uri: `${app.url}/dashboard/auth/callback`,
    });
    expect(exchange.code_verifier).toMatch(/^[\w-]{43}$/);
    // A page that moves on by itself: a redirect would lose the SameSite=Strict cookie.
    expect(await callback.text()).toContain(
      '<meta http-equiv="refresh" content="0;url=/dashboard" />',
    );
    const session = b.set('sdo_session')!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).toMatch(/Path=\/;/);
    const refresh = b.set('sdo_refresh')!;
    expect(refresh).toMatch(/HttpOnly/);
    expect(refresh).toMatch(/Path=\/dashboard\/auth;/);
    expect(b.set('sdo_signin')).toMatch(/Max-Age=0/); // the attempt is used up
    // The session holds the access token the API's own auth accepts.
    const me = await fetch(`${app.url}/api/me`, {
      headers: { authorization: `Bearer ${b.cookie(host, 'sdo_session')}` },
    });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({
      actorType: 'user',
      userId: cognitoUserId(user.sub),
      orgId: null,
    });

    const onboarding = await b.fetch(`${app.url}/dashboard`);
    expect(onboarding.status).toBe(200);
    const page = await onboarding.text();
    expect(page).toContain('Create an organization');
    expect(page).toContain('action="/dashboard/orgs"');
    const created = await b.fetch(`${app.url}/dashboard/orgs`, form({ name: 'Acme Cloud' }));
    expect(created.status).toBe(303);
    const dashboard = await (await b.fetch(`${app.url}/dashboard`)).text();
    expect(dashboard).toContain('<h1>Projects</h1>');
    expect(dashboard).toMatch(/<option value="org_\w+" selected>Acme Cloud<\/option>/);
  });

  it('renews an expired access token with the refresh token, and starts over when that is refused', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('short.lived@example.com', 'Correct-horse-9');
    app.hosted.accessTtlSeconds = 2;
    try {
      await signIn(b, user.email, user.password);
    } finally {
      app.hosted.accessTtlSeconds = 3600;
    }
    const first = b.cookie(host, 'sdo_session');
    expect((await b.fetch(`${app.url}/dashboard`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2_100));
    const expired = await b.fetch(`${app.url}/dashboard/nodes`);
    expect(expired.status).toBe(303);
    expect(expired.headers.get('location')).toBe('/dashboard/login?next=%2Fdashboard%2Fnodes');
    const before = app.hosted.tokenRequests.length;
    const renewed = await login(b, '/dashboard/nodes');
    expect(renewed.status).toBe(303);
    expect(renewed.headers.get('location')).toBe('/dashboard/nodes');
    expect(app.hosted.tokenRequests.slice(before)).toEqual([
      { grant_type: 'refresh_token', client_id: hostedClientId, refresh_token: expect.any(String) },
    ]);
    expect(b.cookie(host, 'sdo_session')).not.toBe(first);
    const renewedPage = await b.fetch(`${app.url}/dashboard`);
    expect(renewedPage.status).toBe(200);
    expect(await renewedPage.text()).not.toContain('Please log in again'); // the renewal was silent

    // A refresh token Cognito refuses is dropped, and the browser goes to the hosted UI.
    b.forge(host, 'sdo_refresh', 'revoked-token', '/dashboard/auth');
    const refused = await login(b);
    expect(refused.status).toBe(302);
    expect(refused.headers.get('location')).toMatch(/\/oauth2\/authorize\?/);
    expect(b.set('sdo_refresh')).toMatch(/Max-Age=0/);
    expect(b.cookie(host, 'sdo_refresh')).toBeUndefined();
  });

  /** The refresh_token grant at the hosted UI's token endpoint, as anyone holding the token could call it. */
  const refreshAtCognito = (refreshToken: string) =>
    fetch(`${app.hosted.url}/oauth2/token`, {
      ...form({
        grant_type: 'refresh_token',
        client_id: hostedClientId,
        refresh_token: refreshToken,
      }),
      redirect: 'manual',
    });

  const logOut = (b: Browser, path = '/dashboard/auth/logout') =>
    b.fetch(`${app.url}${path}`, { method: 'POST', headers: { origin: app.url } });

  it('logs out: revokes the refresh token, clears the cookies, ends the hosted session', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('leaving@example.com', 'Correct-horse-9');
    await signIn(b, user.email, user.password);
    const refreshToken = b.cookie(host, 'sdo_refresh')!;
    expect((await refreshAtCognito(refreshToken)).status).toBe(200); // good until logout
    const dashboard = await b.fetch(`${app.url}/dashboard`);
    // The logout form posts where the refresh cookie is sent, and its redirect to the
    // hosted UI is allowed by the page's CSP.
    expect(await dashboard.text()).toMatch(
      /<form\s+method="post"\s+action="\/dashboard\/auth\/logout"/,
    );
    expect(dashboard.headers.get('content-security-policy')).toContain(
      `form-action 'self' ${app.hosted.url}`,
    );
    const revocations = app.hosted.revokeRequests.length;
    const out = await logOut(b);
    expect(out.status).toBe(303);
    // The dashboard revoked the token at Cognito (public client: token and client_id)…
    expect(app.hosted.revokeRequests.slice(revocations)).toEqual([
      { token: refreshToken, client_id: hostedClientId },
    ]);
    // …so a copy of it mints nothing any more.
    const refused = await refreshAtCognito(refreshToken);
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: 'invalid_grant' });
    const to = new URL(out.headers.get('location')!);
    expect(`${to.origin}${to.pathname}`).toBe(`${app.hosted.url}/logout`);
    expect(Object.fromEntries(to.searchParams)).toEqual({
      client_id: hostedClientId,
      logout_uri: `${app.url}/dashboard/signed-out`,
    });
    for (const name of ['sdo_session', 'sdo_org', 'sdo_refresh'])
      expect(b.set(name), name).toMatch(/Max-Age=0/);
    const refreshCleared = b.setCookies.filter((c) => c.startsWith('sdo_refresh='));
    expect(refreshCleared.map((c) => /Path=([^;]+)/.exec(c)?.[1])).toEqual([
      '/dashboard/auth',
      '/dashboard/login', // where it was kept before it moved
    ]);
    expect(b.cookie(host, 'sdo_refresh')).toBeUndefined();
    const hostedOut = await b.fetch(to.toString());
    expect(hostedOut.headers.get('location')).toBe(`${app.url}/dashboard/signed-out`);
    const signedOut = await b.fetch(`${app.url}/dashboard/signed-out`);
    expect(signedOut.status).toBe(200);
    expect(await signedOut.text()).toContain('You are signed out');
    // Signed out at Cognito too: the next sign-in asks for the password again.
    const again = await login(b);
    const authorize = await b.fetch(again.headers.get('location')!);
    expect(authorize.status).toBe(200);
    expect(await authorize.text()).toContain('name="password"');
  });

  it('still logs out when the revocation endpoint is down, and says so in a warning without the token', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('offline.revoke@example.com', 'Correct-horse-9');
    await signIn(b, user.email, user.password);
    const refreshToken = b.cookie(host, 'sdo_refresh')!;
    const logged = app.logs.length;
    app.hosted.revocation = 'down';
    let out: Response;
    try {
      out = await logOut(b);
    } finally {
      app.hosted.revocation = 'up';
    }
    expect(out.status).toBe(303);
    expect(new URL(out.headers.get('location')!).pathname).toBe('/logout');
    for (const name of ['sdo_session', 'sdo_refresh'])
      expect(b.set(name), name).toMatch(/Max-Age=0/);
    expect(b.cookie(host, 'sdo_session')).toBeUndefined();
    expect(b.cookie(host, 'sdo_refresh')).toBeUndefined();
    const warnings = app.logs
      .slice(logged)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'dashboard.refresh_token_not_revoked');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      component: 'dashboard',
      reason: expect.stringMatching(
        /^sign-out is unavailable: the Cognito revocation endpoint localhost:\d+ cannot be reached: /,
      ),
    });
    expect(app.logs.slice(logged).join('\n')).not.toContain(refreshToken);
    // Not revoked, as the warning says: it stays valid at Cognito until it expires.
    expect((await refreshAtCognito(refreshToken)).status).toBe(200);
  });

  it('keeps a page from before the move working: /dashboard/logout and the old refresh cookie path', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('old.tab@example.com', 'Correct-horse-9');
    await signIn(b, user.email, user.password);
    const refreshToken = b.cookie(host, 'sdo_refresh')!;
    // A refresh cookie set at the old path is moved under /dashboard/auth at the next login…
    b.forge(host, 'sdo_refresh', refreshToken, '/dashboard/login');
    const hop = await b.fetch(`${app.url}/dashboard/login?next=/dashboard`);
    expect(hop.status).toBe(302);
    const moved = b.setCookies.filter((c) => c.startsWith('sdo_refresh='));
    expect(moved).toHaveLength(2);
    expect(moved[0]).toMatch(/^sdo_refresh=; .*Path=\/dashboard\/login/);
    expect(moved[1]).toMatch(new RegExp(`^sdo_refresh=${refreshToken};.*Path=/dashboard/auth;`));
    expect(b.cookie(host, 'sdo_refresh')).toBe(refreshToken);
    // …and an old page's logout form reaches the new route with its POST kept.
    const old = await logOut(b, '/dashboard/logout');
    expect(old.status).toBe(307);
    expect(old.headers.get('location')).toBe('/dashboard/auth/logout');
    const revocations = app.hosted.revokeRequests.length;
    const out = await logOut(b, old.headers.get('location')!);
    expect(out.status).toBe(303);
    expect(app.hosted.revokeRequests.slice(revocations)).toEqual([
      { token: refreshToken, client_id: hostedClientId },
    ]);
  });

  it('sends a signed-in user in no org from an org page to "create your organization", and back after', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('no.org.yet@example.com', 'Correct-horse-9');
    await signIn(b, user.email, user.password);
    const nodes = await b.fetch(`${app.url}/dashboard/nodes`);
    expect(nodes.status).toBe(303);
    expect(nodes.headers.get('location')).toBe('/dashboard?next=%2Fdashboard%2Fnodes');
    const onboarding = await b.fetch(`${app.url}${nodes.headers.get('location')}`);
    expect(onboarding.status).toBe(200);
    const page = await onboarding.text();
    expect(page).toContain('<h1>Create an organization</h1>');
    expect(page).toContain('<input type="hidden" name="next" value="/dashboard/nodes" />');
    // `next` is only ever one of our pages.
    const offsite = await b.fetch(`${app.url}/dashboard?next=https://evil.example/`);
    expect(await offsite.text()).toContain(
      '<input type="hidden" name="next" value="/dashboard" />',
    );
    const created = await b.fetch(
      `${app.url}/dashboard/orgs`,
      form({ name: 'Late Org', next: '/dashboard/nodes' }),
    );
    expect(created.status).toBe(303);
    expect(created.headers.get('location')).toBe('/dashboard/nodes');
    const after = await b.fetch(`${app.url}/dashboard/nodes`);
    expect(after.status).toBe(200);
    expect(await after.text()).toMatch(/<option value="org_\w+" selected>Late Org<\/option>/);
  });

  it('shows a page, not an error, when the sign-in state is missing, forged or the code is absent', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('states@example.com', 'Correct-horse-9');
    const callback = new URL(await toCallback(b, user.email, user.password));

    const stranger = new Browser();
    await expectFailure(
      stranger,
      await stranger.fetch(callback.toString()),
      400,
      'this sign-in was not started in this browser',
    );

    const forged = new URL(callback);
    forged.searchParams.set('state', 'x'.repeat(43));
    await expectFailure(
      b,
      await b.fetch(forged.toString()),
      400,
      'the sign-in state does not match',
    );
    // The attempt is single use: even the genuine state is now unknown.
    await expectFailure(
      b,
      await b.fetch(callback.toString()),
      400,
      'this sign-in was not started in this browser',
    );

    const again = new URL(await toCallback(b, user.email, user.password));
    again.searchParams.delete('code');
    await expectFailure(
      b,
      await b.fetch(again.toString()),
      400,
      'the sign-in page sent no authorization code back',
    );
  });

  it('shows what Cognito said when the user cancels (access_denied)', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('cancels@example.com', 'Correct-horse-9');
    const callback = await toCallback(b, user.email, '', 'cancel');
    expect(new URL(callback).searchParams.get('error')).toBe('access_denied');
    await expectFailure(
      b,
      await b.fetch(callback),
      400,
      'Cognito says access_denied (sign-in was cancelled or refused): User cancelled login',
    );
  });

  it('shows the token endpoint refusal (invalid_grant) for a code used twice', async () => {
    const b = new Browser();
    const user = app.hosted.addUser('replay@example.com', 'Correct-horse-9');
    const used = new URL(await toCallback(b, user.email, user.password));
    expect((await b.fetch(used.toString())).status).toBe(200);
    // Another browser's attempt, answered with the redeemed code.
    const other = new Browser();
    const started = await login(other);
    const replay = new URL(used);
    replay.searchParams.set(
      'state',
      new URL(started.headers.get('location')!).searchParams.get('state')!,
    );
    const res = await other.fetch(replay.toString());
    await expectFailure(other, res, 400, 'Cognito refused the sign-in code: invalid_grant');
  });

  it('refuses tokens from another user pool or issued to another app client', async () => {
    for (const [tamper, message] of [
      [
        { issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool' },
        'the API refused the signed-in session: session token iss claim is missing or invalid',
      ],
      [
        { clientId: 'someotherclient' },
        'the API refused the signed-in session: session token was issued to another app client',
      ],
    ] as const) {
      const b = new Browser();
      const user = app.hosted.addUser(
        `tampered${Object.keys(tamper)[0]}@example.com`,
        'Correct-horse-9',
      );
      const callback = await toCallback(b, user.email, user.password);
      app.hosted.tamperNext(tamper);
      await expectFailure(b, await b.fetch(callback), 401, message);
    }
  });

  it('tells a Cognito user with no selfdevop user what to do next', async () => {
    // A user made before Cognito holds the address, so the tokens trigger provisions nobody.
    await app.system.api.store.identity.createUser({
      id: 'usr_before1',
      email: 'taken@example.com',
      passwordHash: 'x',
      createdAt: new Date().toISOString(),
    });
    const b = new Browser();
    const user = app.hosted.addUser('taken@example.com', 'Correct-horse-9');
    const page = await expectFailure(
      b,
      await b.fetch(await toCallback(b, user.email, user.password)),
      401,
      'session token belongs to no selfdevop user',
    );
    expect(page).toContain('ask an operator of this installation to link the two');
  });

  it('works through the Lambda handler too: API Gateway v2 carries each cookie in `cookies`', async () => {
    const lambda = createApiHandler(app.system.api) as unknown as LambdaHttpHandler;
    const user = app.hosted.addUser('lambda@example.com', 'Correct-horse-9');
    const hop = await lambda(
      toProxyEventV2('GET', '/dashboard/login?next=/dashboard', {}, undefined),
    );
    expect(hop.statusCode).toBe(302);
    const login = await lambda(toProxyEventV2('GET', String(hop.headers?.location), {}, undefined));
    expect(login.statusCode).toBe(302);
    const attempt = login.cookies?.find((c) => c.startsWith('sdo_signin='));
    // Behind API Gateway the dashboard is https: every cookie is Secure.
    expect(attempt).toMatch(/; Secure/);
    const b = new Browser();
    const authorize = await b.fetch(String(login.headers?.location));
    const submitted = await b.fetch(
      `${app.hosted.url}/login`,
      form({
        ...hiddenFields(await authorize.text()),
        username: user.email,
        password: user.password,
        action: 'signin',
      }),
    );
    const callback = new URL(submitted.headers.get('location')!);
    const back = await lambda(
      toProxyEventV2(
        'GET',
        `${callback.pathname}${callback.search}`,
        { cookie: attempt!.split(';')[0]! },
        undefined,
      ),
    );
    expect(back.statusCode, back.body).toBe(200);
    const names = (back.cookies ?? []).map((c) => c.split('=')[0]).sort();
    expect(names).toEqual(['sdo_refresh', 'sdo_session', 'sdo_signin']);
    for (const c of back.cookies ?? []) expect(c).toMatch(/; Secure/);
  });
});
