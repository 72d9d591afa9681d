import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HealthProbe } from '../../core/ports.ts';

export interface HealthProbeFixture {
  probe: HealthProbe;
  /** Urls that answer 200, 302, 500, never answer, and refuse the connection. */
  urls: { ok: string; redirect: string; serverError: string; hang: string; refused: string };
  close?: () => Promise<void>;
}

/** The behaviour every HealthProbe shares: 2xx/3xx are healthy, nothing throws, timeouts hold. */
export function runHealthProbeContract({
  make,
}: {
  make: () => Promise<HealthProbeFixture>;
}): void {
  describe('HealthProbe contract', () => {
    let f: HealthProbeFixture;
    beforeAll(async () => {
      f = await make();
    });
    afterAll(async () => {
      await f.close?.();
    });

    it('reports a 200 as healthy', async () => {
      expect(await f.probe.check(f.urls.ok, 2000)).toEqual({ ok: true, status: 200, error: null });
    });

    it('reports a redirect as healthy without following it', async () => {
      expect(await f.probe.check(f.urls.redirect, 2000)).toEqual({
        ok: true,
        status: 302,
        error: null,
      });
    });

    it('reports a 500 as unhealthy with its status', async () => {
      expect(await f.probe.check(f.urls.serverError, 2000)).toEqual({
        ok: false,
        status: 500,
        error: null,
      });
    });

    it('gives up on a server that does not answer within the timeout', async () => {
      const started = Date.now();
      expect(await f.probe.check(f.urls.hang, 200)).toEqual({
        ok: false,
        status: null,
        error: 'timed out after 200 ms',
      });
      expect(Date.now() - started).toBeLessThan(2000);
    });

    it('reports a refused connection as an error, without throwing', async () => {
      const r = await f.probe.check(f.urls.refused, 2000);
      expect(r.ok).toBe(false);
      expect(r.status).toBeNull();
      expect(r.error).toMatch(/ECONNREFUSED/);
    });

    it('answers the same url again (no state kept between probes)', async () => {
      expect((await f.probe.check(f.urls.ok, 2000)).ok).toBe(true);
      expect((await f.probe.check(f.urls.serverError, 2000)).ok).toBe(false);
      expect((await f.probe.check(f.urls.ok, 2000)).ok).toBe(true);
    });
  });
}
