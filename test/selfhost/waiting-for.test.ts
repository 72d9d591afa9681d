/**
 * Start-up's bounded waits (functions/selfhost/start-errors.ts `waitingFor`): silent while
 * short, then saying what it waits for, again at each interval, and failing at its bound
 * with the wait, its cause and the fix named; a step that ends in time leaves no timer.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StartupError, waitingFor } from '../../functions/selfhost/start-errors.ts';

describe('waitingFor', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const options = (said: string[]) => ({
    timeoutMs: 60_000,
    cause: 'PostgreSQL does not answer',
    fix: 'Set DATABASE_URL to a server that answers.',
    say: (line: string) => void said.push(line),
  });

  it('says nothing for a step that ends within 3 s, and leaves no timer behind', async () => {
    const said: string[] = [];
    const done = waitingFor('the database', options(said), async () => {
      await new Promise((r) => setTimeout(r, 2_000));
      return 42;
    });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await done).toBe(42);
    expect(said).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('says what it waits for after 3 s and every 15 s after, then fails at its bound naming cause and fix', async () => {
    const said: string[] = [];
    const done = waitingFor('the database', options(said), () => new Promise<never>(() => {}));
    const failed = done.catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(said).toEqual(['waiting for the database (up to 60 s)']);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(said.slice(1)).toEqual([
      'still waiting for the database (18 s so far)',
      'still waiting for the database (33 s so far)',
    ]);
    await vi.advanceTimersByTimeAsync(27_000);
    const e = await failed;
    expect(e).toBeInstanceOf(StartupError);
    expect((e as Error).message).toBe(
      'the database did not finish within 60 s (START_TIMEOUT_SECONDS): PostgreSQL does not answer\n  Set DATABASE_URL to a server that answers.',
    );
    expect(vi.getTimerCount()).toBe(0);
  });

  it("passes a step's own failure on as it is", async () => {
    const said: string[] = [];
    const boom = new Error('ECONNREFUSED 127.0.0.1:5432');
    await expect(
      waitingFor('the database', options(said), () => Promise.reject(boom)),
    ).rejects.toBe(boom);
    expect(vi.getTimerCount()).toBe(0);
  });
});
