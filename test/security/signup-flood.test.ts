/**
 * Hole 10 (accounts): signup was unlimited and hashed passwords on the main thread, so a
 * signup flood stalled every request, /health included. Replayed against an API process on
 * PostgreSQL at a real bcrypt cost: signups are limited per source, and /health stays fast
 * while 200 signups (from 200 sources, so that all of them hash) are served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, sharedDatabase, startApiProcess, type ApiProcess } from './support/stack.ts';

const password = 'correct horse battery';
const signups = 200;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('signup flood', () => {
  let api: ApiProcess;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const db = await sharedDatabase({ bcryptCost: 10 });
    drop = db.drop;
    api = await startApiProcess(db.settings);
  }, 60_000);

  afterAll(async () => {
    await api?.stop();
    await drop?.();
  });

  it('limits signups per source with a 429 and Retry-After; another source still signs up', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 24; i++) {
      const res = await api.request('POST', '/api/auth/local/signup', {
        body: { email: `flood${i}@one-source.test`, password },
        headers: from('203.0.113.9'),
      });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    expect(statuses).toEqual([...Array(20).fill(201), ...Array(4).fill(429)]);
    const other = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'someone@other-source.test', password },
      headers: from('198.51.100.20'),
    });
    expect(other.status).toBe(201);
  }, 60_000);

  it(`serves every one of ${signups} signups, and /health throughout, while they hash`, async () => {
    const health = async () => {
      const t = performance.now();
      const res = await fetch(`${api.url}/health`);
      await res.arrayBuffer();
      return performance.now() - t;
    };
    const idle: number[] = [];
    for (let i = 0; i < 50; i++) idle.push(await health());

    let flooding = true;
    const start = performance.now();
    const flood = Promise.all(
      Array.from({ length: signups }, (_, i) =>
        api.request('POST', '/api/auth/local/signup', {
          body: { email: `flood${i}@many-sources.test`, password },
          headers: from(`10.${Math.floor(i / 250)}.${i % 250}.77`),
        }),
      ),
    ).finally(() => (flooding = false));
    const during: number[] = [];
    while (flooding) {
      during.push(await health());
      await new Promise((r) => setTimeout(r, 20));
    }
    const results = await flood;
    const took = performance.now() - start;
    const p = (v: number[]) =>
      `p50 ${percentile(v, 50).toFixed(1)} ms, p99 ${percentile(v, 99).toFixed(1)} ms`;
    console.log(
      `/health idle: ${p(idle)}; during ${signups} signups (${(took / 1000).toFixed(1)} s, ${during.length} probes): ${p(during)}`,
    );
    const byStatus: Record<number, number> = {};
    for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    // Before, hashing on the main thread starved the database pool: only 28–41 of the 200
    // signups succeeded (the rest 503). Off the main thread nearly all do; a CI machine
    // running other suites beside this one may still time a few out at the pool.
    expect(
      byStatus[201] ?? 0,
      `${JSON.stringify(byStatus)} ${JSON.stringify(results.find((r) => r.status !== 201)?.body)}`,
    ).toBeGreaterThanOrEqual(signups * 0.9);
    // Every probe was answered while the flood hashed; how fast is the benchmark's business
    // (figures printed above), not a timed assertion's.
    expect(during.length).toBeGreaterThan(10);
  }, 240_000);
});
