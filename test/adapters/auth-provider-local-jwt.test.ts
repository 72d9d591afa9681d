import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { LocalJwtAuth } from '../../adapters/auth/local-jwt.ts';
import { Unauthenticated } from '../../core/errors.ts';
import { runAuthProviderContract } from '../contracts/auth-provider.case.ts';

const secret = 'a-test-secret-that-is-long-enough-for-hs256!';

runAuthProviderContract({
  make: ({ clock, ttlSeconds }) =>
    new LocalJwtAuth({ jwtSecret: secret, ttlSeconds, clock, bcryptCost: 4 }),
});

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Builds a JWT by hand, so the tests do not trust the library they are checking. */
function forge(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signWith: (input: string) => string,
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signWith(input)}`;
}

const hmac = (alg: 'sha256' | 'sha512', key: string) => (input: string) =>
  createHmac(alg, key).update(input).digest('base64url');

describe('LocalJwtAuth', () => {
  const clock = new ManualClock('2026-03-01T10:00:00.000Z');
  const now = Math.floor(clock.now().getTime() / 1000);
  const auth = new LocalJwtAuth({ jwtSecret: secret, clock, bcryptCost: 4 });
  const claims = { sub: 'usr_1', iss: 'selfdevop', aud: 'selfdevop-api', iat: now, exp: now + 600 };

  const rejects = async (token: string, message: string | RegExp) => {
    await expect(auth.verifySession(token)).rejects.toThrow(Unauthenticated);
    await expect(auth.verifySession(token)).rejects.toThrow(message);
  };

  it('accepts a token built by hand with the same secret and claims (so the forgeries below differ only in what they test)', async () => {
    const token = forge({ alg: 'HS256', typ: 'JWT' }, claims, hmac('sha256', secret));
    expect(await auth.verifySession(token)).toEqual({
      userId: 'usr_1',
      expiresAt: new Date((now + 600) * 1000),
    });
  });

  it('issues HS256 tokens with sub, iat, exp 12 h later, iss selfdevop and aud selfdevop-api', async () => {
    const token = await auth.issueSession('usr_9');
    const [header, payload] = token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()) as unknown);
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload).toEqual({
      sub: 'usr_9',
      iss: 'selfdevop',
      aud: 'selfdevop-api',
      iat: now,
      exp: now + 12 * 3600,
      // The session's own id, which logout revokes.
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });

  it('refuses a token whose payload was changed', async () => {
    const [header, , signature] = (await auth.issueSession('usr_1')).split('.');
    await rejects(
      `${header}.${b64({ ...claims, sub: 'usr_admin' })}.${signature}`,
      'session token signature is invalid',
    );
  });

  it('refuses a token whose signature was changed', async () => {
    const token = await auth.issueSession('usr_1');
    const signature = token.split('.')[2] ?? '';
    const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
    await rejects(
      `${token.split('.').slice(0, 2).join('.')}.${flipped}`,
      'session token signature is invalid',
    );
  });

  it('refuses alg none', async () => {
    await rejects(
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
      'session token algorithm none is not accepted (only HS256)',
    );
    await rejects(`${b64({ alg: 'none' })}.${b64(claims)}`, 'session token is malformed');
  });

  it('refuses HS512, even signed with the right secret', async () => {
    await rejects(
      forge({ alg: 'HS512', typ: 'JWT' }, claims, hmac('sha512', secret)),
      'session token algorithm HS512 is not accepted',
    );
  });

  it('refuses RS256', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = forge({ alg: 'RS256', typ: 'JWT' }, claims, (input) =>
      sign('sha256', Buffer.from(input), privateKey).toString('base64url'),
    );
    await rejects(token, 'session token algorithm RS256 is not accepted');
  });

  it('refuses a token signed with another secret', async () => {
    await rejects(
      forge({ alg: 'HS256' }, claims, hmac('sha256', 'another-secret-that-is-also-long-enough')),
      'session token signature is invalid',
    );
    const other = new LocalJwtAuth({ jwtSecret: 'another-secret-that-is-also-long-enough', clock });
    await rejects(await other.issueSession('usr_1'), 'session token signature is invalid');
  });

  it('refuses the wrong issuer or audience, or no audience', async () => {
    await rejects(
      forge({ alg: 'HS256' }, { ...claims, iss: 'someone-else' }, hmac('sha256', secret)),
      'session token iss claim is missing or invalid',
    );
    await rejects(
      forge({ alg: 'HS256' }, { ...claims, aud: 'another-api' }, hmac('sha256', secret)),
      'session token aud claim is missing or invalid',
    );
    const { aud: _aud, ...noAudience } = claims;
    await rejects(
      forge({ alg: 'HS256' }, noAudience, hmac('sha256', secret)),
      'session token aud claim is missing or invalid',
    );
  });

  it('refuses a token without sub, exp or iat', async () => {
    for (const claim of ['sub', 'exp', 'iat'] as const) {
      const { [claim]: _dropped, ...rest } = claims;
      await rejects(
        forge({ alg: 'HS256' }, rest, hmac('sha256', secret)),
        `session token ${claim} claim is missing or invalid`,
      );
    }
    await rejects(
      forge({ alg: 'HS256' }, { ...claims, sub: '' }, hmac('sha256', secret)),
      'session token has no user',
    );
  });

  it('refuses a token whose parts are not JSON', async () => {
    await rejects(
      `${b64('not json')}.${b64(claims)}.${hmac('sha256', secret)('x')}`,
      'session token is malformed',
    );
    const input = `${b64({ alg: 'HS256' })}.${b64('not json')}`;
    await rejects(`${input}.${hmac('sha256', secret)(input)}`, 'session token is malformed');
  });

  it('refuses an expired token built by hand', async () => {
    await rejects(
      forge({ alg: 'HS256' }, { ...claims, iat: now - 7200, exp: now - 1 }, hmac('sha256', secret)),
      'session token has expired',
    );
  });

  it('refuses a JWT_SECRET shorter than 32 bytes, naming the variable', () => {
    expect(() => new LocalJwtAuth({ jwtSecret: 'x'.repeat(31) })).toThrow(
      'JWT_SECRET must be at least 32 bytes, got 31',
    );
    expect(() => new LocalJwtAuth({ jwtSecret: undefined as unknown as string })).toThrow(
      'JWT_SECRET must be at least 32 bytes, got 0',
    );
    expect(() => new LocalJwtAuth({ jwtSecret: 'x'.repeat(32) })).not.toThrow();
  });

  it('refuses a nonsensical ttl or cost', () => {
    expect(() => new LocalJwtAuth({ jwtSecret: secret, ttlSeconds: 0 })).toThrow(
      'session ttlSeconds must be a positive integer, got 0',
    );
    expect(() => new LocalJwtAuth({ jwtSecret: secret, bcryptCost: 3 })).toThrow(
      'bcryptCost must be an integer from 4 to 31, got 3',
    );
    expect(() => new LocalJwtAuth({ jwtSecret: secret, bcryptCost: 32 })).toThrow(
      'bcryptCost must be an integer from 4 to 31',
    );
  });

  it('hashes with bcrypt at the configured cost, 12 by default', async () => {
    expect(await auth.hashPassword('pw')).toMatch(/^\$2b\$04\$/);
    const byDefault = new LocalJwtAuth({ jwtSecret: secret });
    expect(byDefault.bcryptCost).toBe(12);
    const hash = await byDefault.hashPassword('pw');
    expect(hash).toMatch(/^\$2b\$12\$.{53}$/);
    expect(await auth.verifyPassword('pw', hash)).toBe(true);
  });
});
