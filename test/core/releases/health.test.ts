import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { waitUntilHealthy, type HealthAttempt } from '../../../core/releases/health.ts';

const url = 'http://127.0.0.1:49153/health';
const policy = { intervalMs: 1000, timeoutMs: 2000, successes: 2, deadlineMs: 10_000 };
const ok = MemoryHealthProbe.healthy;
const s500 = MemoryHealthProbe.status(500);

function setup(...answers: Parameters<MemoryHealthProbe['script']>[1][]) {
  const clock = new ManualClock('2026-01-01T00:00:00.000Z');
  const probe = new MemoryHealthProbe().script(url, ...answers);
  const elapsed = () => clock.now().getTime() - Date.parse('2026-01-01T00:00:00.000Z');
  return { clock, probe, elapsed };
}

describe('waitUntilHealthy', () => {
  it('passes as soon as the required consecutive successes are seen, without fixed sleeps', async () => {
    const { clock, probe, elapsed } = setup(ok);
    const seen: HealthAttempt[] = [];
    const r = await waitUntilHealthy({
      probe,
      clock,
      url,
      policy,
      onAttempt: (a) => void seen.push(a),
    });
    expect(r).toEqual({ healthy: true, attempts: 2, lastError: null });
    expect(elapsed()).toBe(1000);
    expect(seen).toEqual([
      { ok: true, status: 200, error: null, attempt: 1, streak: 1 },
      { ok: true, status: 200, error: null, attempt: 2, streak: 2 },
    ]);
    expect(probe.calls).toEqual([
      { url, timeoutMs: 2000 },
      { url, timeoutMs: 2000 },
    ]);
  });

  it('restarts the streak after a failure', async () => {
    const { clock, probe } = setup(s500, ok, s500, ok, ok);
    const r = await waitUntilHealthy({ probe, clock, url, policy });
    expect(r).toEqual({ healthy: true, attempts: 5, lastError: '500' });
  });

  it('gives up at the deadline with the last failure', async () => {
    const { clock, probe, elapsed } = setup(s500);
    const r = await waitUntilHealthy({ probe, clock, url, policy });
    expect(r).toEqual({ healthy: false, attempts: 10, lastError: '500' });
    expect(elapsed()).toBe(10_000);
  });

  it('counts a hanging probe against the deadline and cuts the last timeout to the time left', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00.000Z');
    const probe = new MemoryHealthProbe().script(
      url,
      MemoryHealthProbe.hang((ms) => clock.advance(ms)),
    );
    const r = await waitUntilHealthy({
      probe,
      clock,
      url,
      policy: { ...policy, deadlineMs: 5000 },
    });
    expect(r).toEqual({ healthy: false, attempts: 2, lastError: 'timed out after 2000 ms' });
    // 2000 probe + 1000 interval + 2000 probe = 5000: the deadline.
    expect(probe.calls.map((c) => c.timeoutMs)).toEqual([2000, 2000]);

    const clock2 = new ManualClock('2026-01-01T00:00:00.000Z');
    const probe2 = new MemoryHealthProbe().script(
      url,
      MemoryHealthProbe.hang((ms) => clock2.advance(ms)),
    );
    await waitUntilHealthy({
      probe: probe2,
      clock: clock2,
      url,
      policy: { ...policy, deadlineMs: 4500 },
    });
    expect(probe2.calls.map((c) => c.timeoutMs)).toEqual([2000, 1500]);
  });

  it('keeps what the app answered when the last probe, cut to the time left, times out', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00.000Z');
    const probe = new MemoryHealthProbe().script(
      url,
      MemoryHealthProbe.status(404),
      MemoryHealthProbe.hang((ms) => clock.advance(ms)),
    );
    // 404 at 0, a hang of 2000 ms from 1000, then a probe cut to the last 500 ms that hangs too.
    const r = await waitUntilHealthy({
      probe,
      clock,
      url,
      policy: { ...policy, deadlineMs: 4500 },
    });
    expect(probe.calls.map((c) => c.timeoutMs)).toEqual([2000, 2000, 500]);
    // The full-length timeout is a real finding and replaces the 404; the cut one is not.
    expect(r).toEqual({ healthy: false, attempts: 3, lastError: 'timed out after 2000 ms' });

    const clock2 = new ManualClock('2026-01-01T00:00:00.000Z');
    const probe2 = new MemoryHealthProbe().script(
      url,
      MemoryHealthProbe.status(404),
      MemoryHealthProbe.status(404),
      MemoryHealthProbe.hang((ms) => clock2.advance(ms)),
    );
    const r2 = await waitUntilHealthy({
      probe: probe2,
      clock: clock2,
      url,
      policy: { ...policy, deadlineMs: 2500 },
    });
    expect(probe2.calls.map((c) => c.timeoutMs)).toEqual([2000, 1500, 500]);
    expect(r2).toEqual({ healthy: false, attempts: 3, lastError: '404' });
  });

  it('reports refused connections by their error', async () => {
    const { clock, probe } = setup(MemoryHealthProbe.refused);
    const r = await waitUntilHealthy({
      probe,
      clock,
      url,
      policy: { ...policy, deadlineMs: 3000 },
    });
    expect(r).toEqual({ healthy: false, attempts: 3, lastError: 'connect ECONNREFUSED' });
  });

  it('needs at least one success even when the policy asks for zero', async () => {
    const { clock, probe } = setup(s500, ok);
    expect(
      await waitUntilHealthy({ probe, clock, url, policy: { ...policy, successes: 0 } }),
    ).toEqual({
      healthy: true,
      attempts: 2,
      lastError: '500',
    });
  });

  it('stays bounded when time does not move', async () => {
    const { probe } = setup(s500);
    const frozen = { now: () => new Date(0), sleep: async () => {} };
    const r = await waitUntilHealthy({
      probe,
      clock: frozen,
      url,
      policy: { ...policy, intervalMs: 0, deadlineMs: 50 },
    });
    expect(r).toEqual({ healthy: false, attempts: 52, lastError: '500' });
  });

  it('stops when aborted', async () => {
    const { clock, probe } = setup(s500);
    const ac = new AbortController();
    const run = waitUntilHealthy({
      probe,
      clock,
      url,
      policy,
      signal: ac.signal,
      onAttempt: (a) => {
        if (a.attempt === 2) ac.abort(new Error('worker stopping'));
      },
    });
    await expect(run).rejects.toThrow('worker stopping');
    expect(probe.calls).toHaveLength(2);
  });

  it('reports a deadline of zero as unhealthy without probing', async () => {
    const { clock, probe } = setup(ok);
    expect(
      await waitUntilHealthy({ probe, clock, url, policy: { ...policy, deadlineMs: 0 } }),
    ).toEqual({
      healthy: false,
      attempts: 0,
      lastError: 'not enough consecutive successes',
    });
  });
});

describe('waitUntilHealthy in slices', () => {
  it('gives the wait up at the end of its slice, with no verdict', async () => {
    const { clock, probe, elapsed } = setup(s500);
    const r = await waitUntilHealthy({ probe, clock, url, policy, sliceMs: 3000 });
    expect(r).toEqual({ healthy: false, pending: true, attempts: 4, lastError: '500' });
    expect(elapsed()).toBe(3000);
  });

  it('finishes a streak of successes under way at the end of the slice', async () => {
    const { clock, probe } = setup(s500, s500, s500, ok, ok);
    const r = await waitUntilHealthy({ probe, clock, url, policy, sliceMs: 3000 });
    expect(r).toEqual({ healthy: true, attempts: 5, lastError: '500' });
  });

  it('keeps the deadline of the first slice', async () => {
    const { clock, probe, elapsed } = setup(s500);
    const deadlineAt = clock.now().getTime() + 2500;
    const r = await waitUntilHealthy({ probe, clock, url, policy, deadlineAt, sliceMs: 5000 });
    expect(r).toEqual({ healthy: false, attempts: 3, lastError: '500' });
    expect(elapsed()).toBe(2500);
  });
});
