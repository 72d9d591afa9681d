import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { InvalidInput, Unauthenticated } from '../../core/errors.ts';
import type { AuthProvider } from '../../core/ports.ts';

export interface AuthProviderFixture {
  /** A provider whose sessions last ttlSeconds on clock. */
  make: (options: {
    clock: ManualClock;
    ttlSeconds: number;
  }) => AuthProvider | Promise<AuthProvider>;
  /**
   * For providers that only verify (Cognito): mints a session for userId the way the
   * identity service would. Defaults to the provider's own issueSession.
   */
  issue?: (userId: string, options: { clock: ManualClock; ttlSeconds: number }) => Promise<string>;
}

/** The behaviour every AuthProvider (local JWT, Cognito, memory) shares. */
export function runAuthProviderContract({ make, issue }: AuthProviderFixture): void {
  describe('AuthProvider contract', () => {
    const ttlSeconds = 3600;
    let clock: ManualClock;
    let auth: AuthProvider;
    let issueFor: (userId: string) => Promise<string>;

    beforeEach(async () => {
      clock = new ManualClock('2026-03-01T10:00:00.000Z');
      auth = await make({ clock, ttlSeconds });
      issueFor = async (userId) => {
        if (issue) return issue(userId, { clock, ttlSeconds });
        if (!auth.issueSession)
          throw new Error('the fixture must pass issue() for a provider without issueSession');
        return auth.issueSession(userId);
      };
    });

    it('verifies an issued session to its user and expiry', async () => {
      const token = await issueFor('usr_1');
      expect(typeof token).toBe('string');
      // A provider may add the token's id (sessionId), which logout revokes.
      expect(await auth.verifySession(token)).toMatchObject({
        userId: 'usr_1',
        expiresAt: new Date(clock.now().getTime() + ttlSeconds * 1000),
      });
    });

    it('keeps sessions of different users apart', async () => {
      const a = await issueFor('usr_a');
      const b = await issueFor('usr_b');
      expect(a).not.toBe(b);
      expect((await auth.verifySession(a)).userId).toBe('usr_a');
      expect((await auth.verifySession(b)).userId).toBe('usr_b');
    });

    it('refuses a missing or empty token', async () => {
      for (const token of ['', '   ']) {
        await expect(auth.verifySession(token)).rejects.toThrow(Unauthenticated);
        await expect(auth.verifySession(token)).rejects.toThrow('session token is missing');
      }
      await expect(auth.verifySession(undefined as unknown as string)).rejects.toThrow(
        Unauthenticated,
      );
    });

    it('refuses garbage', async () => {
      const token = await issueFor('usr_1');
      for (const garbage of [
        'garbage',
        'a.b.c',
        'x.y',
        `Bearer ${token}`,
        `${token}x`,
        token.slice(0, -3),
        Buffer.from('{"sub":"usr_1"}').toString('base64url'),
      ]) {
        await expect(auth.verifySession(garbage)).rejects.toThrow(Unauthenticated);
      }
    });

    it('refuses an expired session, and says so', async () => {
      const token = await issueFor('usr_1');
      clock.advance((ttlSeconds - 1) * 1000);
      expect((await auth.verifySession(token)).userId).toBe('usr_1');
      clock.advance(2 * 1000);
      await expect(auth.verifySession(token)).rejects.toThrow(Unauthenticated);
      await expect(auth.verifySession(token)).rejects.toThrow('session token has expired');
    });

    it('refuses to issue a session without a user', async () => {
      if (!auth.issueSession) return;
      await expect(auth.issueSession('')).rejects.toThrow(InvalidInput);
    });

    describe('passwords (local mode)', () => {
      const hashing = () => auth as Required<Pick<AuthProvider, 'hashPassword' | 'verifyPassword'>>;
      const supported = () => Boolean(auth.hashPassword && auth.verifyPassword);

      it('verifies the right password and refuses a wrong one', async () => {
        if (!supported()) return;
        const hash = await hashing().hashPassword('correct horse battery staple');
        expect(hash).not.toContain('correct horse');
        expect(await hashing().verifyPassword('correct horse battery staple', hash)).toBe(true);
        expect(await hashing().verifyPassword('correct horse battery stapl', hash)).toBe(false);
        expect(await hashing().verifyPassword('Correct horse battery staple', hash)).toBe(false);
        expect(await hashing().verifyPassword('', hash)).toBe(false);
      });

      it('salts: the same password hashes differently each time', async () => {
        if (!supported()) return;
        const a = await hashing().hashPassword('pässwörd ✓');
        const b = await hashing().hashPassword('pässwörd ✓');
        expect(a).not.toBe(b);
        expect(await hashing().verifyPassword('pässwörd ✓', a)).toBe(true);
        expect(await hashing().verifyPassword('pässwörd ✓', b)).toBe(true);
      });

      it('accepts a 72-byte password and refuses a longer one, naming the field', async () => {
        if (!supported()) return;
        const exact = 'p'.repeat(72);
        const hash = await hashing().hashPassword(exact);
        expect(await hashing().verifyPassword(exact, hash)).toBe(true);
        for (const tooLong of ['p'.repeat(73), 'é'.repeat(37)]) {
          const error = await hashing()
            .hashPassword(tooLong)
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(InvalidInput);
          expect((error as InvalidInput).message).toMatch(/^password must be at most 72 bytes/);
          expect((error as InvalidInput).details).toEqual({ field: 'password' });
        }
        // A longer guess sharing the first 72 bytes must not pass for the password.
        expect(await hashing().verifyPassword(`${exact}extra`, hash)).toBe(false);
      });

      it('refuses to verify against a malformed hash', async () => {
        if (!supported()) return;
        for (const hash of ['', 'not-a-hash', '$2b$04$short', 'plain:only']) {
          expect(await hashing().verifyPassword('password', hash)).toBe(false);
        }
      });
    });
  });
}
