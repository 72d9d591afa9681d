/**
 * The cloud collector's cost per round for the edge's figures: a real Caddy serving
 * `services` service environments (two hosts each, 200s, 404s, 500s), and per round the
 * collector's own steps — `CaddyEdgeRouter.traffic()` (GET /metrics and its parse), the
 * deltas, each service's share and quantiles, and the EMF lines — timed in CPU of this
 * process (Caddy's own work answering /metrics is apart: it runs on the edge, not in the
 * worker function). Loopback only; requests and rounds are bounded.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { EmfUsageSink } from '../../adapters/metrics/usage-emf.ts';
import {
  EdgeTrafficHistory,
  serviceTraffic,
  type TrafficTarget,
} from '../../core/stats/edge-traffic.ts';
import { startCaddy } from '../../test/support/caddy.ts';
import { round } from '../support/stats.ts';

/**
 * The bound on collection (`collectionCpuPctOfCore`: ≤ 3 % of one core) applied to the
 * cloud's edge read: its CPU per round over the round's interval (a minute, the usage-collect
 * schedule).
 */
export const edgeTrafficGoals = { edgeCollectionCpuPctOfCore: 3 };
const roundIntervalMs = 60_000;

function get(port: number, host: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { Host: host }, agent: false, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve());
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function edgeTrafficCost(
  log: (line: string) => void,
  services = Number(process.env.BENCH_EDGE_SERVICES ?? 500),
  rounds = 10,
) {
  const caddy = await startCaddy();
  const app = http.createServer((req, res) => {
    res.statusCode = req.url === '/fail' ? 500 : req.url === '/missing' ? 404 : 200;
    res.end('x');
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const dial = `127.0.0.1:${(app.address() as AddressInfo).port}`;
  try {
    const edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    const targets: TrafficTarget[] = Array.from({ length: services }, (_, i) => ({
      orgId: `org_${i % 50}`,
      serviceId: `svc_${i}`,
      environmentId: 'env_prod',
      hosts: [`web${i}-production.apps.test`, `shop${i}.example.test`],
      thresholds: (i % 10 === 0 ? { http_5xx_spike: 0.2 } : {}) as Record<string, number>,
    }));
    await edge.putMany(
      targets.map((t) => ({
        id: t.serviceId,
        hosts: [...t.hosts],
        upstreams: [dial],
        sticky: false,
        drainSeconds: 0,
      })),
    );
    // Every host, every status: the /metrics answer at its size for these routes.
    const paths = ['/', '/missing', '/fail'];
    const all = targets.flatMap((t) => t.hosts.flatMap((h) => paths.map((p) => [h, p] as const)));
    for (let i = 0; i < all.length; i += 16)
      await Promise.all(all.slice(i, i + 16).map(([h, p]) => get(caddy.httpPort, h, p)));
    log(`edge: ${services} services, ${all.length} warm-up requests sent`);

    const history = new EdgeTrafficHistory();
    const sink = new EmfUsageSink({ destination: { write: () => undefined } });
    let bodyBytes = 0;
    const cpuMs: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      // A little traffic between rounds (bounded: 64 requests).
      await Promise.all(
        all
          .slice((r * 64) % all.length, ((r * 64) % all.length) + 64)
          .map(([h, p]) => get(caddy.httpPort, h, p)),
      );
      const before = process.cpuUsage();
      const counters = await edge.traffic();
      history.observe(counters, r * 60_000);
      const traffic = serviceTraffic(history, targets);
      sink.publish({ at: new Date(r * 60_000).toISOString(), replicas: [], nodes: [], traffic });
      const used = process.cpuUsage(before);
      // Round 0 is the baseline (and the first parse warms the code).
      if (r > 0) cpuMs.push((used.user + used.system) / 1000);
      if (r === rounds) {
        bodyBytes = Buffer.byteLength((await edge.admin.request('GET', '/metrics')).body);
        if (traffic.length !== services)
          throw new Error(`expected ${services} services' traffic, got ${traffic.length}`);
      }
    }
    const sorted = [...cpuMs].sort((a, b) => a - b);
    const median = round(sorted[Math.floor(sorted.length / 2)]!, 1);
    const max = round(sorted[sorted.length - 1]!, 1);
    return {
      detail: {
        services,
        hosts: services * 2,
        rounds,
        metricsBodyKb: round(bodyBytes / 1024, 0),
        cpuMsMedian: median,
        cpuMsMax: max,
      },
      goals: {
        edgeCollectionCpuPctOfCore: {
          goal: `<= ${edgeTrafficGoals.edgeCollectionCpuPctOfCore} (median round's CPU over its minute, ${services} service environments)`,
          got: round((median / roundIntervalMs) * 100, 2),
          met: (median / roundIntervalMs) * 100 <= edgeTrafficGoals.edgeCollectionCpuPctOfCore,
        },
      },
    };
  } finally {
    await new Promise<void>((resolve) => app.close(() => resolve()));
    await caddy.stop();
  }
}
