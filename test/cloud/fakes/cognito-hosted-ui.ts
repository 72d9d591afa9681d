/**
 * A stand-in for Cognito's hosted UI and OAuth 2.0 endpoints on a loopback port, strict
 * where Cognito is strict: /oauth2/authorize (a plain sign-in form; the hosted session
 * cookie lets a signed-in browser straight through), /login (the form's target), /oauth2/token
 * (authorization_code with PKCE S256, registered redirect_uri, client_id and single-use
 * codes; refresh_token), /oauth2/revoke (a revoked refresh token is then an invalid_grant),
 * /logout (registered logout_uri only). Tokens are RS256, signed with
 * the local JWKS's key and shaped as Cognito's (access token without email, as Cognito's).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalJwks } from '../../support/jwks.ts';

export interface HostedUser {
  sub: string;
  email: string;
  password: string;
}

/** What Cognito would hand its pre token generation trigger (the fields selfdevop reads). */
export type TokenGenerationHook = (event: {
  version: string;
  triggerSource: string;
  region: string;
  userPoolId: string;
  userName: string;
  request: { userAttributes: Record<string, string> };
  response: Record<string, unknown>;
}) => Promise<unknown>;

export interface FakeHostedUi {
  /** The hosted UI's base URL (stands for https://<COGNITO_DOMAIN>). */
  url: string;
  addUser(email: string, password: string): HostedUser;
  /** The app client's registered callback and sign-out URLs. */
  register(urls: { callbackUrl: string; signedOutUrl: string }): void;
  /** Changes the next tokens issued (a pool that is not the one configured, another client). */
  tamperNext(claims: { issuer?: string; clientId?: string }): void;
  /** Lifetime of the access tokens issued from now on. */
  accessTtlSeconds: number;
  /** Every token endpoint request body, as form fields, in order. */
  tokenRequests: Record<string, string>[];
  /** Every revocation endpoint request body, as form fields, in order. */
  revokeRequests: Record<string, string>[];
  /** `down`: the revocation endpoint drops every connection, as an unreachable one would. */
  revocation: 'up' | 'down';
  stop(): Promise<void>;
}

interface Grant {
  sub: string;
  redirectUri: string;
  challenge: string;
  expiresAt: number;
}

const page = (body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · fake Cognito</title></head><body>${body}</body></html>`;
const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return Object.fromEntries(new URLSearchParams(text));
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(/;\s*/)) {
    const [k, ...v] = part.split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

export async function startFakeHostedUi(options: {
  jwks: LocalJwks;
  clientId: string;
  onTokenGeneration?: TokenGenerationHook;
}): Promise<FakeHostedUi> {
  const { jwks, clientId } = options;
  const users = new Map<string, HostedUser>();
  const codes = new Map<string, Grant>();
  const refreshTokens = new Map<string, string>();
  const hostedSessions = new Map<string, string>();
  let registered: { callbackUrl: string; signedOutUrl: string } | null = null;
  let tamper: { issuer?: string; clientId?: string } = {};
  const fake = {
    accessTtlSeconds: 3600,
    tokenRequests: [] as Record<string, string>[],
    revokeRequests: [] as Record<string, string>[],
    revocation: 'up' as 'up' | 'down',
  };

  const send = (
    res: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string> = {},
  ) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const back = (
    res: ServerResponse,
    redirectUri: string,
    params: Record<string, string>,
    headers: Record<string, string> = {},
  ) => {
    const to = new URL(redirectUri);
    for (const [k, v] of Object.entries(params)) to.searchParams.set(k, v);
    res.writeHead(302, { location: to.toString(), ...headers });
    res.end();
  };

  /** The authorize request's parameters, or the reason Cognito would refuse it. */
  function checkAuthorize(q: URLSearchParams): string | null {
    if (q.get('response_type') !== 'code') return 'unsupported_response_type';
    if (q.get('client_id') !== clientId) return 'invalid client_id';
    if (!registered || q.get('redirect_uri') !== registered.callbackUrl) return 'redirect_mismatch';
    if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge'))
      return 'PKCE S256 challenge required';
    const scopes = (q.get('scope') ?? '').split(' ');
    if (!scopes.includes('openid') || !scopes.includes('email')) return 'invalid_scope';
    return null;
  }

  function grant(
    res: ServerResponse,
    q: URLSearchParams,
    user: HostedUser,
    headers: Record<string, string> = {},
  ) {
    const code = randomBytes(16).toString('hex');
    codes.set(code, {
      sub: user.sub,
      redirectUri: q.get('redirect_uri')!,
      challenge: q.get('code_challenge')!,
      expiresAt: Date.now() + 5 * 60_000,
    });
    back(res, q.get('redirect_uri')!, { code, state: q.get('state') ?? '' }, headers);
  }

  function loginForm(q: URLSearchParams, error?: string) {
    const hidden = [...q]
      .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
      .join('');
    return page(`<h1>Sign in</h1>${error ? `<p role="alert">${esc(error)}</p>` : ''}
      <form method="post" action="/login">${hidden}
        <label for="username">Email</label><input id="username" name="username" type="email">
        <label for="password">Password</label><input id="password" name="password" type="password">
        <button type="submit" name="action" value="signin">Sign in</button>
        <button type="submit" name="action" value="cancel">Cancel</button>
      </form><p>Need an account? <a href="/signup">Sign up</a></p>`);
  }

  async function issue(user: HostedUser, refresh: boolean) {
    await options.onTokenGeneration?.({
      version: '1',
      triggerSource: refresh ? 'TokenGeneration_RefreshTokens' : 'TokenGeneration_HostedAuth',
      region: jwks.region,
      userPoolId: jwks.userPoolId,
      userName: user.sub,
      request: { userAttributes: { sub: user.sub, email: user.email, email_verified: 'true' } },
      response: {},
    });
    const iat = Math.floor(Date.now() / 1000);
    const claims = {
      sub: user.sub,
      iat,
      ttlSeconds: fake.accessTtlSeconds,
      clientId: tamper.clientId ?? clientId,
      issuer: tamper.issuer,
    };
    tamper = {};
    return {
      access_token: await jwks.sign(claims),
      id_token: await jwks.sign({ ...claims, tokenUse: 'id', email: user.email }),
      token_type: 'Bearer',
      expires_in: fake.accessTtlSeconds,
    };
  }

  async function token(req: IncomingMessage, res: ServerResponse) {
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
      return json(res, 400, {
        error: 'invalid_request',
        error_description: 'form-encoded body expected',
      });
    const f = await readForm(req);
    fake.tokenRequests.push(f);
    if (f.client_id !== clientId) return json(res, 400, { error: 'invalid_client' });
    if (f.grant_type === 'authorization_code') {
      const g = codes.get(f.code ?? '');
      codes.delete(f.code ?? ''); // single use, even when the rest is wrong
      if (!g || g.expiresAt < Date.now()) return json(res, 400, { error: 'invalid_grant' });
      if (f.redirect_uri !== g.redirectUri) return json(res, 400, { error: 'invalid_grant' });
      const challenge = createHash('sha256')
        .update(f.code_verifier ?? '')
        .digest('base64url');
      if (challenge !== g.challenge) return json(res, 400, { error: 'invalid_grant' });
      const user = [...users.values()].find((u) => u.sub === g.sub)!;
      const refreshToken = randomBytes(32).toString('base64url');
      refreshTokens.set(refreshToken, user.sub);
      return json(res, 200, { ...(await issue(user, false)), refresh_token: refreshToken });
    }
    if (f.grant_type === 'refresh_token') {
      const sub = refreshTokens.get(f.refresh_token ?? '');
      if (!sub) return json(res, 400, { error: 'invalid_grant' });
      return json(
        res,
        200,
        await issue(
          [...users.values()].find((u) => u.sub === sub)!,
          true,
        ),
      );
    }
    return json(res, 400, { error: 'unsupported_grant_type' });
  }

  /** As Cognito's: 200 with an empty body, also for a token unknown or already revoked (RFC 7009). */
  async function revoke(req: IncomingMessage, res: ServerResponse) {
    if (fake.revocation === 'down') return void req.socket.destroy();
    if (req.headers['content-type'] !== 'application/x-www-form-urlencoded')
      return json(res, 400, { error: 'invalid_request' });
    const f = await readForm(req);
    fake.revokeRequests.push(f);
    if (!f.token) return json(res, 400, { error: 'invalid_request' });
    if (f.client_id !== clientId) return json(res, 401, { error: 'invalid_client' });
    refreshTokens.delete(f.token);
    res.writeHead(200);
    res.end();
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const handle = async () => {
      if (req.method === 'GET' && url.pathname === '/oauth2/authorize') {
        const refused = checkAuthorize(url.searchParams);
        if (refused) return send(res, 400, page(`<p role="alert">${esc(refused)}</p>`));
        const signedIn = hostedSessions.get(cookieOf(req, 'cognito') ?? '');
        if (signedIn) return grant(res, url.searchParams, users.get(signedIn)!);
        return send(res, 200, loginForm(url.searchParams));
      }
      if (req.method === 'POST' && url.pathname === '/login') {
        const f = await readForm(req);
        const q = new URLSearchParams(
          Object.entries(f).filter(([k]) => !['username', 'password', 'action'].includes(k)),
        );
        const refused = checkAuthorize(q);
        if (refused) return send(res, 400, page(`<p role="alert">${esc(refused)}</p>`));
        if (f.action === 'cancel')
          return back(res, q.get('redirect_uri')!, {
            error: 'access_denied',
            error_description: 'User cancelled login',
            state: q.get('state') ?? '',
          });
        const user = users.get((f.username ?? '').toLowerCase());
        if (!user || user.password !== f.password)
          return send(res, 200, loginForm(q, 'Incorrect username or password.'));
        const session = randomBytes(16).toString('hex');
        hostedSessions.set(session, user.email);
        return grant(res, q, user, {
          'set-cookie': `cognito=${session}; Path=/; HttpOnly; SameSite=Lax`,
        });
      }
      if (req.method === 'POST' && url.pathname === '/oauth2/token') return token(req, res);
      if (req.method === 'POST' && url.pathname === '/oauth2/revoke') return revoke(req, res);
      if (req.method === 'GET' && url.pathname === '/logout') {
        if (
          url.searchParams.get('client_id') !== clientId ||
          url.searchParams.get('logout_uri') !== registered?.signedOutUrl
        )
          return send(res, 400, page('<p role="alert">invalid logout_uri</p>'));
        hostedSessions.delete(cookieOf(req, 'cognito') ?? '');
        res.writeHead(302, {
          location: registered.signedOutUrl,
          'set-cookie': 'cognito=; Path=/; Max-Age=0',
        });
        return res.end();
      }
      send(res, 404, page('not found'));
    };
    handle().catch((e: Error) =>
      json(res, 500, { error: 'internal', error_description: e.message }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    // "localhost", not 127.0.0.1: to a browser another site than the dashboard's, as Cognito is.
    url: `http://localhost:${port}`,
    addUser(email: string, password: string) {
      const user = { sub: crypto.randomUUID(), email: email.toLowerCase(), password };
      users.set(user.email, user);
      return user;
    },
    register(urls: { callbackUrl: string; signedOutUrl: string }) {
      registered = urls;
    },
    tamperNext(claims: { issuer?: string; clientId?: string }) {
      tamper = claims;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}
