import http from 'node:http';
import type { HealthProbe, HealthProbeResult } from '../../core/ports.ts';

/**
 * Health probes over plain HTTP with node:http: one fresh connection per probe (no
 * keep-alive, so a probe never rides a socket to a container that is going away), a hard
 * timeout, and no throws: every failure comes back as `{ ok: false, error }`.
 */
export class HttpHealthProbe implements HealthProbe {
  async check(url: string, timeoutMs: number): Promise<HealthProbeResult> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return { ok: false, status: null, error: `invalid url: ${url}` };
    }
    if (target.protocol !== 'http:') {
      return {
        ok: false,
        status: null,
        error: `unsupported protocol ${target.protocol} in ${url}`,
      };
    }
    return get(target, timeoutMs);
  }
}

function get(target: URL, timeoutMs: number): Promise<HealthProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: HealthProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = http.request(
      target,
      {
        method: 'GET',
        agent: false,
        headers: { connection: 'close', 'user-agent': 'selfdevop-health/1' },
      },
      (res) => {
        const status = res.statusCode ?? null;
        done({ ok: status !== null && status >= 200 && status < 400, status, error: null });
        // The status is the answer; the body (maybe endless) is not read.
        res.resume();
        req.destroy();
      },
    );
    const timer = setTimeout(() => {
      done({ ok: false, status: null, error: `timed out after ${timeoutMs} ms` });
      req.destroy();
    }, timeoutMs);
    req.on('error', (e) => done({ ok: false, status: null, error: e.message }));
    req.end();
  });
}
