import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { MemoryAuth } from '../../adapters/auth/memory.ts';
import { Unauthenticated } from '../../core/errors.ts';
import { runAuthProviderContract } from '../contracts/auth-provider.case.ts';

runAuthProviderContract({ make: ({ clock, ttlSeconds }) => new MemoryAuth({ clock, ttlSeconds }) });

describe('MemoryAuth', () => {
  it('does not know sessions issued by another instance', async () => {
    const clock = new ManualClock();
    const token = await new MemoryAuth({ clock }).issueSession('usr_1');
    await expect(new MemoryAuth({ clock }).verifySession(token)).rejects.toThrow(Unauthenticated);
  });

  it('lasts 12 hours unless told otherwise', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00.000Z');
    const auth = new MemoryAuth({ clock });
    const { expiresAt } = await auth.verifySession(await auth.issueSession('usr_1'));
    expect(expiresAt.toISOString()).toBe('2026-01-01T12:00:00.000Z');
  });
});
