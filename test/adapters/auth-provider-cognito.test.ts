import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CognitoAuth, type ResolveUserId } from '../../adapters/auth/cognito.ts';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { Unauthenticated, Unavailable } from '../../core/errors.ts';
import { runAuthProviderContract } from '../contracts/auth-provider.case.ts';
import { startJwks, type LocalJwks } from '../support/jwks.ts';

const clientId = 'testclient123';
let jwks: LocalJwks;
beforeAll(async () => {
  jwks = await startJwks();
});
afterAll(async () => jwks?.stop());

// Cognito subjects are UUIDs of its own; the lookup maps them to selfdevop user ids.
const bySub: ResolveUserId = async (sub) => (sub.startsWith('sub-') ? sub.slice(4) : null);

const make = (clock: ManualClock, resolveUserId: ResolveUserId = bySub) =>
  new CognitoAuth({
    region: jwks.region,
    userPoolId: jwks.userPoolId,
    clientId,
    resolveUserId,
    jwksUrl: jwks.url,
    clock,
  });

runAuthProviderContract({
  make: ({ clock }) => make(clock),
  issue: (userId, { clock, ttlSeconds }) =>
    jwks.sign({
      sub: `sub-${userId}`,
      iat: Math.floor(clock.now().getTime() / 1000),
      ttlSeconds,
      clientId,
    }),
});

describe('CognitoAuth', () => {
  let clock: ManualClock;
  let auth: CognitoAuth;
  const iat = () => Math.floor(clock.now().getTime() / 1000);
  const refuses = async (token: string, message: string) => {
    const error = await auth.verifySession(token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Unauthenticated);
    expect((error as Error).message).toBe(message);
  };

  beforeEach(() => {
    clock = new ManualClock('2026-03-01T10:00:00.000Z');
    auth = make(clock);
  });

  it('checks iss against the pool it was given', async () => {
    expect(auth.issuer).toBe(`https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool1`);
    const other = await jwks.sign({
      sub: 'sub-usr_1',
      iat: iat(),
      ttlSeconds: 600,
      clientId,
      issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OtherPool',
    });
    await refuses(other, 'session token iss claim is missing or invalid');
  });

  it('refuses an access token issued to another app client', async () => {
    await refuses(
      await jwks.sign({ sub: 'sub-usr_1', iat: iat(), ttlSeconds: 600, clientId: 'otherclient' }),
      'session token was issued to another app client',
    );
  });

  it('refuses an id token in place of an access token', async () => {
    const idToken = await jwks.sign({
      sub: 'sub-usr_1',
      iat: iat(),
      ttlSeconds: 600,
      clientId,
      tokenUse: 'id',
    });
    // An id token has aud instead of client_id; either check refuses it.
    const error = await auth.verifySession(idToken).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Unauthenticated);
    expect((error as Error).message).toMatch(/client_id claim|not an access token/);
  });

  it('refuses an expired token', async () => {
    const token = await jwks.sign({
      sub: 'sub-usr_1',
      iat: iat() - 7200,
      ttlSeconds: 3600,
      clientId,
    });
    await refuses(token, 'session token has expired');
  });

  it('refuses a token signed with a key the pool does not publish', async () => {
    const token = await jwks.sign({
      sub: 'sub-usr_1',
      iat: iat(),
      ttlSeconds: 600,
      clientId,
      unknownKey: true,
    });
    await refuses(token, 'session token was signed with a key the user pool does not publish');
  });

  it('refuses HS256, even with a kid the pool publishes', async () => {
    const token = await new SignJWT({ token_use: 'access', client_id: clientId })
      .setProtectedHeader({ alg: 'HS256', kid: 'test-key-1' })
      .setSubject('sub-usr_1')
      .setIssuer(jwks.issuer)
      .setIssuedAt(iat())
      .setExpirationTime(iat() + 600)
      .sign(new TextEncoder().encode('x'.repeat(32)));
    await refuses(token, 'session token algorithm HS256 is not accepted (only RS256)');
  });

  it('refuses a valid token whose subject maps to no user', async () => {
    await refuses(
      await jwks.sign({ sub: 'stranger', iat: iat(), ttlSeconds: 600, clientId }),
      'session token belongs to no selfdevop user',
    );
  });

  it('passes the subject and any email to the lookup', async () => {
    const seen: Array<[string, string | undefined]> = [];
    const withEmail = make(clock, async (sub, email) => {
      seen.push([sub, email]);
      return 'usr_7';
    });
    const token = await jwks.sign({
      sub: 'c0ffee',
      iat: iat(),
      ttlSeconds: 600,
      clientId,
      email: 'a@example.com',
    });
    expect((await withEmail.verifySession(token)).userId).toBe('usr_7');
    expect(seen).toEqual([['c0ffee', 'a@example.com']]);
  });

  it('fetches the key set once and reuses it', async () => {
    const fresh = make(clock);
    const before = jwks.fetches();
    for (let i = 0; i < 5; i++) {
      await fresh.verifySession(
        await jwks.sign({ sub: `sub-usr_${i}`, iat: iat(), ttlSeconds: 600, clientId }),
      );
    }
    expect(jwks.fetches() - before).toBe(1);
  });

  it('answers Unavailable, not Unauthenticated, when the keys cannot be fetched', async () => {
    const down = createServer();
    await new Promise<void>((resolve) => down.listen(0, '127.0.0.1', resolve));
    const { port } = down.address() as AddressInfo;
    await new Promise<void>((resolve) => down.close(() => resolve()));
    const unreachable = new CognitoAuth({
      region: jwks.region,
      userPoolId: jwks.userPoolId,
      clientId,
      resolveUserId: bySub,
      jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      clock,
    });
    const token = await jwks.sign({ sub: 'sub-usr_1', iat: iat(), ttlSeconds: 600, clientId });
    await expect(unreachable.verifySession(token)).rejects.toBeInstanceOf(Unavailable);
  });

  it('refuses bad settings, naming the variable', () => {
    const base = {
      region: 'eu-west-1',
      userPoolId: 'eu-west-1_Abc',
      clientId,
      resolveUserId: bySub,
    };
    expect(() => new CognitoAuth({ ...base, region: 'mars' })).toThrow(
      /^COGNITO_REGION must be an AWS region/,
    );
    expect(() => new CognitoAuth({ ...base, userPoolId: 'pool' })).toThrow(
      /^COGNITO_USER_POOL_ID must look like/,
    );
    expect(() => new CognitoAuth({ ...base, clientId: '' })).toThrow(/^COGNITO_CLIENT_ID must be/);
  });
});
