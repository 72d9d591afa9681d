/**
 * The Cognito hosted UI adapter against a local token endpoint: the URLs it builds and how
 * each kind of token endpoint answer becomes tokens or a CoreError.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CognitoHostedUi } from '../../adapters/auth/cognito-hosted-ui.ts';
import { Unauthenticated, Unavailable } from '../../core/errors.ts';

let server: Server;
let base: string;
/** What the next token request is answered with. */
let answer: { status: number; body: string } = { status: 200, body: '{}' };
let lastForm: Record<string, string> = {};

beforeAll(async () => {
  server = createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    lastForm = {
      ...Object.fromEntries(new URLSearchParams(text)),
      '(content-type)': String(req.headers['content-type']),
      '(path)': String(req.url),
    };
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const make = (baseUrl = base) =>
  new CognitoHostedUi({
    baseUrl,
    clientId: 'client1',
    callbackUrl: 'https://console.example.com/dashboard/auth/callback',
    signedOutUrl: 'https://console.example.com/dashboard/signed-out',
    timeoutMs: 2_000,
  });

describe('CognitoHostedUi', () => {
  it('builds the authorize and logout URLs Cognito documents', () => {
    const hosted = new CognitoHostedUi({
      baseUrl: 'https://acme.auth.eu-west-1.amazoncognito.com',
      clientId: 'client1',
      callbackUrl: 'https://console.example.com/dashboard/auth/callback',
      signedOutUrl: 'https://console.example.com/dashboard/signed-out',
    });
    expect(hosted.authorizeUrl({ state: 'st', codeChallenge: 'ch' })).toBe(
      'https://acme.auth.eu-west-1.amazoncognito.com/oauth2/authorize?response_type=code&client_id=client1' +
        '&redirect_uri=https%3A%2F%2Fconsole.example.com%2Fdashboard%2Fauth%2Fcallback&scope=openid+email' +
        '&state=st&code_challenge=ch&code_challenge_method=S256',
    );
    expect(hosted.logoutUrl()).toBe(
      'https://acme.auth.eu-west-1.amazoncognito.com/logout?client_id=client1&logout_uri=https%3A%2F%2Fconsole.example.com%2Fdashboard%2Fsigned-out',
    );
  });

  it('posts the code form-encoded with its verifier and redirect_uri, and reads the tokens', async () => {
    answer = {
      status: 200,
      body: JSON.stringify({
        access_token: 'a.b.c',
        id_token: 'i.d.t',
        refresh_token: 'r',
        token_type: 'Bearer',
        expires_in: 3600,
      }),
    };
    expect(await make().exchangeCode('code1', 'verifier1')).toEqual({
      accessToken: 'a.b.c',
      refreshToken: 'r',
      expiresIn: 3600,
    });
    expect(lastForm).toEqual({
      grant_type: 'authorization_code',
      client_id: 'client1',
      code: 'code1',
      redirect_uri: 'https://console.example.com/dashboard/auth/callback',
      code_verifier: 'verifier1',
      '(content-type)': 'application/x-www-form-urlencoded',
      '(path)': '/oauth2/token',
    });
    answer = { status: 200, body: JSON.stringify({ access_token: 'x.y.z', expires_in: 60 }) };
    expect(await make().refresh('r')).toEqual({ accessToken: 'x.y.z', expiresIn: 60 });
    expect(lastForm).toMatchObject({
      grant_type: 'refresh_token',
      client_id: 'client1',
      refresh_token: 'r',
    });
  });

  it('turns a refused grant into Unauthenticated with the OAuth error, and the rest into Unavailable', async () => {
    answer = {
      status: 400,
      body: JSON.stringify({ error: 'invalid_grant', error_description: 'code expired' }),
    };
    const refused = await make()
      .exchangeCode('c', 'v')
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Unauthenticated);
    expect((refused as Error).message).toBe(
      'Cognito refused the sign-in code: invalid_grant (code expired)',
    );
    answer = { status: 400, body: 'not json' };
    expect(
      (
        (await make()
          .refresh('r')
          .catch((e: unknown) => e)) as Error
      ).message,
    ).toBe('Cognito refused the refresh token: HTTP 400');

    answer = { status: 503, body: '{}' };
    const down = await make()
      .exchangeCode('c', 'v')
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(Unavailable);
    expect((down as Error).message).toBe(
      'sign-in is unavailable: the Cognito token endpoint answered HTTP 503',
    );
    answer = { status: 200, body: JSON.stringify({ token_type: 'Bearer' }) };
    expect(
      (
        (await make()
          .exchangeCode('c', 'v')
          .catch((e: unknown) => e)) as Error
      ).message,
    ).toContain('answered without an access token');

    // Nothing listens on port 1.
    const unreachable = await make('http://127.0.0.1:1')
      .exchangeCode('c', 'v')
      .catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(Unavailable);
    expect((unreachable as Error).message).toMatch(
      /^sign-in is unavailable: the Cognito token endpoint 127\.0\.0\.1:1 cannot be reached: /,
    );
  });

  it('revokes a refresh token at /oauth2/revoke as a public client, and any failure is Unavailable', async () => {
    // Cognito answers a revocation with 200 and an empty body.
    answer = { status: 200, body: '' };
    await expect(make().revoke('refresh1')).resolves.toBeUndefined();
    expect(lastForm).toEqual({
      token: 'refresh1',
      client_id: 'client1',
      '(content-type)': 'application/x-www-form-urlencoded',
      '(path)': '/oauth2/revoke',
    });

    answer = { status: 400, body: JSON.stringify({ error: 'unsupported_token_type' }) };
    const refused = await make()
      .revoke('r')
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(Unavailable);
    expect((refused as Error).message).toBe(
      'sign-out is unavailable: the Cognito revocation endpoint answered unsupported_token_type',
    );
    answer = { status: 503, body: 'busy' };
    expect(
      (
        (await make()
          .revoke('r')
          .catch((e: unknown) => e)) as Error
      ).message,
    ).toBe('sign-out is unavailable: the Cognito revocation endpoint answered HTTP 503');
    const unreachable = await make('http://127.0.0.1:1')
      .revoke('r')
      .catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(Unavailable);
    expect((unreachable as Error).message).toMatch(
      /^sign-out is unavailable: the Cognito revocation endpoint 127\.0\.0\.1:1 cannot be reached: /,
    );
  });

  it('gives up on a revocation endpoint that does not answer within its bound', async () => {
    const silent = createServer(() => {
      // never answers
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const hosted = new CognitoHostedUi({
        baseUrl: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
        clientId: 'client1',
        callbackUrl: 'https://console.example.com/dashboard/auth/callback',
        signedOutUrl: 'https://console.example.com/dashboard/signed-out',
        revokeTimeoutMs: 200,
      });
      const started = Date.now();
      const e = await hosted.revoke('r').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(Unavailable);
      expect((e as Error).message).toMatch(/cannot be reached: no answer within 0\.2 s$/);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
