/** Store contract: the attempt counters and revoked sessions every API process shares. */
import { describe, expect, it } from 'vitest';
import { ids } from './builders.ts';
import { store } from './context.ts';

export function authGuardCases(): void {
  describe('auth guards', () => {
    const t0 = new Date('2030-01-01T00:00:00.000Z');
    const later = (ms: number) => new Date(t0.getTime() + ms);

    it('counts attempts in a fixed window that restarts after it ends', async () => {
      const key = `login:${ids.newSecret(6)}`;
      expect(await store.authGuards.countAttempt(key, 60_000, t0)).toEqual({
        count: 1,
        windowStart: t0,
      });
      expect(await store.authGuards.countAttempt(key, 60_000, later(59_999))).toEqual({
        count: 2,
        windowStart: t0,
      });
      expect(await store.authGuards.countAttempt(key, 60_000, later(60_000))).toEqual({
        count: 1,
        windowStart: later(60_000),
      });
    });

    it('counts concurrent attempts without losing one, and clears a key alone', async () => {
      const key = `login:${ids.newSecret(6)}`;
      const other = `login:${ids.newSecret(6)}`;
      await store.authGuards.countAttempt(other, 60_000, t0);
      await Promise.all(
        Array.from({ length: 10 }, () => store.authGuards.countAttempt(key, 60_000, t0)),
      );
      expect((await store.authGuards.countAttempt(key, 60_000, t0)).count).toBe(11);
      await store.authGuards.clearAttempts(key);
      expect((await store.authGuards.countAttempt(key, 60_000, t0)).count).toBe(1);
      expect((await store.authGuards.countAttempt(other, 60_000, t0)).count).toBe(2);
    });

    it('remembers revoked sessions, once each', async () => {
      const id = ids.newSecret(8);
      expect(await store.authGuards.isSessionRevoked(id)).toBe(false);
      await store.authGuards.revokeSession(id, later(3_600_000));
      await store.authGuards.revokeSession(id, later(3_600_000));
      expect(await store.authGuards.isSessionRevoked(id)).toBe(true);
      expect(await store.authGuards.isSessionRevoked(ids.newSecret(8))).toBe(false);
    });
  });
}
