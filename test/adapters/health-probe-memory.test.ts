import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { MemoryHealthProbe } from '../../adapters/probe/memory.ts';
import { runHealthProbeContract } from '../contracts/health-probe.case.ts';

runHealthProbeContract({
  make: async () => {
    const urls = {
      ok: 'http://app/ok',
      redirect: 'http://app/redirect',
      serverError: 'http://app/fail',
      hang: 'http://app/hang',
      refused: 'http://gone/health',
    };
    const probe = new MemoryHealthProbe()
      .script(urls.ok, MemoryHealthProbe.healthy)
      .script(urls.redirect, MemoryHealthProbe.status(302))
      .script(urls.serverError, MemoryHealthProbe.status(500))
      .script(urls.hang, MemoryHealthProbe.hang());
    return { probe, urls };
  },
});

describe('MemoryHealthProbe', () => {
  it('answers a script in order, repeats the last answer, and records calls', async () => {
    const probe = new MemoryHealthProbe().script(
      'u',
      MemoryHealthProbe.status(503),
      MemoryHealthProbe.healthy,
    );
    expect((await probe.check('u', 5)).status).toBe(503);
    expect((await probe.check('u', 5)).status).toBe(200);
    expect((await probe.check('u', 5)).status).toBe(200);
    expect(probe.calls).toEqual([
      { url: 'u', timeoutMs: 5 },
      { url: 'u', timeoutMs: 5 },
      { url: 'u', timeoutMs: 5 },
    ]);
  });

  it('answers unscripted urls from the default, refused until set', async () => {
    const probe = new MemoryHealthProbe();
    expect(await probe.check('x', 1)).toEqual(MemoryHealthProbe.refused);
    probe.setDefault(MemoryHealthProbe.healthy);
    expect(await probe.check('x', 1)).toEqual(MemoryHealthProbe.healthy);
  });

  it('lets a hanging probe move a manual clock by its timeout', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00.000Z');
    const probe = new MemoryHealthProbe().script(
      'u',
      MemoryHealthProbe.hang((ms) => clock.advance(ms)),
    );
    expect(await probe.check('u', 750)).toEqual({
      ok: false,
      status: null,
      error: 'timed out after 750 ms',
    });
    expect(clock.now().toISOString()).toBe('2026-01-01T00:00:00.750Z');
  });

  it('refuses an empty script', () => {
    expect(() => new MemoryHealthProbe().script('u')).toThrow('script needs at least one answer');
    expect(() => new MemoryHealthProbe().setDefault()).toThrow(
      'setDefault needs at least one answer',
    );
  });
});
