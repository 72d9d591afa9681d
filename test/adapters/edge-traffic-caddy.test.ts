/**
 * The cloud's edge figures from a real Caddy: requests of known status and duration go
 * through the edge's own routes, `CaddyEdgeRouter.traffic()` reads Caddy's `/metrics`, and
 * the core takes the deltas between readings, the 5xx share against the rule's floor and the
 * service's threshold, and the p95 from the buckets, as the collector does each round.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { caddyTrafficFromMetrics } from '../../adapters/edge/caddy-traffic.ts';
import {
  EdgeTrafficHistory,
  histogramQuantile,
  serviceTraffic,
  type TrafficTarget,
} from '../../core/stats/edge-traffic.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { available } from '../support/services.ts';

const ready = await available('caddy');

/**
 * An app: `/fail` answers 500, `/missing` 404, `/slow` after 300 ms, `/hold` once `release()`
 * is called, a WebSocket handshake with 101 and the socket held open until `release()`,
 * anything else 200.
 */
async function app(): Promise<{
  dial: string;
  held: () => number;
  release: () => void;
  close: () => Promise<void>;
}> {
  const holding: (() => void)[] = [];
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/fail') res.statusCode = 500;
    if (path === '/missing') res.statusCode = 404;
    if (path === '/slow') setTimeout(() => res.end('slow'), 300);
    else if (path === '/hold') holding.push(() => res.end('held'));
    else res.end('ok');
  });
  // No frames are needed: Caddy counts the proxied socket in flight for as long as it is open.
  server.on('upgrade', (_req, socket: Socket) => {
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    );
    holding.push(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    held: () => holding.length,
    release: () => holding.splice(0).forEach((end) => end()),
    close: () => {
      holding.splice(0).forEach((end) => end());
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A WebSocket opened through the edge to `host`: the client's socket once upgraded. */
function openWebSocket(port: number, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    http
      .request({
        host: '127.0.0.1',
        port,
        path: '/socket',
        headers: { Host: host, Connection: 'Upgrade', Upgrade: 'websocket' },
        agent: false,
      })
      .on('upgrade', (_res, socket: Socket) => resolve(socket))
      .on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)))
      .on('error', reject)
      .end();
  });
}

function get(port: number, host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { Host: host }, agent: false, timeout: 10_000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!ready)('edge traffic from a real Caddy', () => {
  let caddy: TestCaddy;
  let upstream: Awaited<ReturnType<typeof app>>;
  let edge: CaddyEdgeRouter;
  const web: TrafficTarget = {
    orgId: 'org_a',
    serviceId: 'svc_web',
    environmentId: 'env_prod',
    hosts: ['web-prod-b12345.apps.test', 'Shop.Example.test'],
    thresholds: {},
  };
  const api: TrafficTarget = {
    orgId: 'org_b',
    serviceId: 'svc_api',
    environmentId: 'env_prod',
    hosts: ['api-prod-c12345.apps.test'],
    thresholds: {},
  };
  /** `n` requests of `path` to `host`, at most 8 at a time. */
  const send = async (host: string, path: string, n: number) => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i += 8)
      statuses.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(8, n - i) }, () => get(caddy.httpPort, host, path)),
        )),
      );
    return statuses;
  };

  beforeAll(async () => {
    caddy = await startCaddy();
    upstream = await app();
    edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    for (const t of [web, api])
      await edge.put({
        id: `${t.serviceId}-${t.environmentId}`,
        hosts: t.hosts.map((h) => h.toLowerCase()),
        upstreams: [upstream.dial],
        sticky: false,
        drainSeconds: 0,
      });
  }, 30_000);
  afterAll(async () => {
    await upstream?.close();
    await caddy?.stop();
  });

  it('counts each request once per host, by status, with its duration in the buckets', async () => {
    const history = new EdgeTrafficHistory();
    const t0 = Date.parse('2026-12-03T12:00:00Z');
    history.observe(await edge.traffic(), t0);
    // Before any round: nothing to publish.
    expect(serviceTraffic(history, [web, api])).toEqual([]);

    expect(await send('web-prod-b12345.apps.test', '/', 30)).toEqual(Array(30).fill(200));
    expect(await send('shop.example.test', '/', 10)).toEqual(Array(10).fill(200));
    expect(await send('web-prod-b12345.apps.test', '/fail', 10)).toEqual(Array(10).fill(500));
    expect(await send('shop.example.test', '/missing', 3)).toEqual(Array(3).fill(404));
    expect(await send('shop.example.test', '/slow', 5)).toEqual(Array(5).fill(200));
    expect(await send('api-prod-c12345.apps.test', '/', 20)).toEqual(Array(20).fill(200));

    const raw = await edge.traffic();
    const webHost = raw.find((h) => h.host === 'web-prod-b12345.apps.test')!;
    expect(webHost).toMatchObject({ requests: 40, responses4xx: 0, responses5xx: 10 });
    expect(webHost.buckets.at(-1)).toEqual({ le: Infinity, count: 40 });
    history.observe(raw, t0 + 60_000);

    const [w, a] = serviceTraffic(history, [web, api]);
    // The service's two hosts summed: 58 requests, 10 of them 500s, 3 404s.
    expect(w).toMatchObject({
      orgId: 'org_a',
      serviceId: 'svc_web',
      seconds: 60,
      requests: 58,
      responses4xx: 3,
      responses5xx: 10,
    });
    expect(w!.http5xxShare).toBeCloseTo(10 / 58, 10);
    // 10 errors in the minute meet the floor of 5; the share is 3.4 times the default 5 %.
    expect(w!.ofThreshold.http_5xx_spike).toBeCloseTo(10 / 58 / 0.05, 10);
    // 5 of 58 took 300 ms: the 95th percentile (rank 55.1) falls among them, in Caddy's
    // (0.25, 0.5] bucket, and the median among the quick ones.
    expect(w!.latencyP95Seconds).toBeGreaterThan(0.25);
    expect(w!.latencyP95Seconds).toBeLessThanOrEqual(0.5);
    expect(w!.latencyP50Seconds).toBeLessThan(0.1);
    expect(w!.latencyP95WindowSeconds).toBe(w!.latencyP95Seconds);
    expect(w!.ofThreshold.latency_p95).toBeCloseTo(w!.latencyP95Seconds! / 1, 10);
    // The other org's service: its own host only, no errors, so a share of 0, not breaching.
    expect(a).toMatchObject({ orgId: 'org_b', requests: 20, responses5xx: 0 });
    expect(a!.ofThreshold.http_5xx_spike).toBe(0);

    // A service's own threshold is honoured: 20 % allowed, the same minute is under it.
    const [lenient] = serviceTraffic(history, [
      { ...web, thresholds: { http_5xx_spike: 0.2, latency_p95: 0.1 } },
    ]);
    expect(lenient!.ofThreshold.http_5xx_spike).toBeCloseTo(10 / 58 / 0.2, 10);
    expect(lenient!.ofThreshold.http_5xx_spike).toBeLessThan(1);
    // …and a p95 threshold of 100 ms is past.
    expect(lenient!.ofThreshold.latency_p95).toBeGreaterThan(2.5);

    // The next round counts only what happened since: 4 errors of 4 requests is a 100 %
    // share, but under the floor of 5 in the minute, so 0 (the Prometheus rule's `and`).
    await send('web-prod-b12345.apps.test', '/fail', 4);
    history.observe(await edge.traffic(), t0 + 120_000);
    const [quiet] = serviceTraffic(history, [web]);
    expect(quiet).toMatchObject({ requests: 4, responses5xx: 4, responses4xx: 0 });
    expect(quiet!.http5xxShare).toBe(1);
    expect(quiet!.ofThreshold.http_5xx_spike).toBe(0);
    // The p95 reads 5 minutes: both rounds so far (the first reading is the baseline),
    // still holding the slow requests of the minute before.
    expect(quiet!.latencyP95WindowSeconds).toBeGreaterThan(0.25);

    // A fifth error in the minute meets the floor.
    await send('web-prod-b12345.apps.test', '/fail', 5);
    history.observe(await edge.traffic(), t0 + 180_000);
    const [failing] = serviceTraffic(history, [web]);
    expect(failing).toMatchObject({ requests: 5, responses5xx: 5 });
    expect(failing!.ofThreshold.http_5xx_spike).toBe(1 / 0.05);
  }, 60_000);

  it('counts a WebSocket and a slow request open through the edge once per host, and none once they end', async () => {
    const history = new EdgeTrafficHistory();
    const t0 = Date.parse('2026-12-03T13:00:00Z');
    const open = (hosts: Awaited<ReturnType<CaddyEdgeRouter['traffic']>>) =>
      Object.fromEntries(hosts.map((h) => [h.host, h.openConnections]));
    // Every host served once, so each has its series (Caddy has none before a first request).
    for (const h of ['web-prod-b12345.apps.test', 'shop.example.test', 'api-prod-c12345.apps.test'])
      expect(await get(caddy.httpPort, h, '/')).toBe(200);
    history.observe(await edge.traffic(), t0);

    // One WebSocket on the web service's default host, one request held on its custom host.
    const ws = await openWebSocket(caddy.httpPort, 'web-prod-b12345.apps.test');
    const slow = get(caddy.httpPort, 'shop.example.test', '/hold');
    for (let i = 0; i < 100 && upstream.held() < 2; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(upstream.held()).toBe(2);
    const during = await edge.traffic();
    expect(open(during)).toEqual({
      'web-prod-b12345.apps.test': 1,
      'shop.example.test': 1,
      'api-prod-c12345.apps.test': 0,
    });
    history.observe(during, t0 + 60_000);
    const [w, a] = serviceTraffic(history, [web, api]);
    // The environment's hosts summed; the other org's service has none open.
    expect(w).toMatchObject({ serviceId: 'svc_web', openConnections: 2 });
    expect(a).toMatchObject({ serviceId: 'svc_api', openConnections: 0 });

    upstream.release();
    expect(await slow).toBe(200);
    ws.destroy();
    // Caddy lowers the gauge once the proxied socket's copy loop returns: read until it has.
    let after = await edge.traffic();
    for (let i = 0; i < 100 && Object.values(open(after)).some((n) => n !== 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await edge.traffic();
    }
    expect(open(after)).toEqual({
      'web-prod-b12345.apps.test': 0,
      'shop.example.test': 0,
      'api-prod-c12345.apps.test': 0,
    });
    // A gauge, not a total: the next round reads 0, not −2 nor the 2 of the round before.
    history.observe(after, t0 + 120_000);
    expect(serviceTraffic(history, [web])[0]).toMatchObject({ openConnections: 0 });
  }, 30_000);

  it('reads only the selfdevop server’s counters, and a host Caddy never served is no series', async () => {
    const res = await edge.admin.request('GET', '/metrics');
    expect(res.status).toBe(200);
    // Caddy labels a request with its route's first handler (the request-id subroute), once:
    // the sum over handlers above equals the requests sent.
    expect(res.body).toMatch(/caddy_http_request_duration_seconds_count\{[^}]*handler="subroute"/);
    expect(res.body).not.toMatch(
      /caddy_http_request_duration_seconds_count\{[^}]*handler="reverse_proxy"/,
    );
    // The in-flight gauge is per host too (`per_host`), under the selfdevop server.
    expect(res.body).toMatch(
      /caddy_http_requests_in_flight\{[^}]*host="shop\.example\.test"[^}]*server="selfdevop"/,
    );
    expect(caddyTrafficFromMetrics(res.body, 'another-server')).toEqual([]);
    const hosts = (await edge.traffic()).map((h) => h.host);
    expect(hosts).toContain('shop.example.test');
    expect(hosts).not.toContain('nobody.apps.test');
  });
});

describe('histogram quantiles and rounds (Prometheus semantics)', () => {
  const b = (...pairs: [number, number][]) => pairs.map(([le, count]) => ({ le, count }));
  /** One host's counters, every request under 100 ms; no connection open. */
  const counts = (requests: number, responses5xx: number, host = 'a.test') => ({
    host,
    requests,
    responses4xx: 0,
    responses5xx,
    buckets: b([0.1, requests], [Infinity, requests]),
    openConnections: 0,
  });
  /** The environment serving a.test, with the shipped thresholds. */
  const aTarget: TrafficTarget = {
    orgId: 'o',
    serviceId: 's',
    environmentId: 'e',
    hosts: ['a.test'],
    thresholds: {},
  };

  it('interpolates within the bucket the rank falls in, as histogram_quantile does', () => {
    // 100 requests: 50 ≤ 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
    const h = b([0.1, 50], [0.5, 90], [1, 100], [Infinity, 100]);
    expect(histogramQuantile(0.5, h)).toBeCloseTo(0.1, 10);
    expect(histogramQuantile(0.95, h)).toBeCloseTo(0.75, 10); // half-way through (0.5, 1]
    expect(histogramQuantile(0.25, h)).toBeCloseTo(0.05, 10); // from 0 in the first bucket
    // Past the highest finite bound: that bound, as Prometheus answers.
    expect(histogramQuantile(0.95, b([0.1, 1], [Infinity, 10]))).toBe(0.1);
    expect(histogramQuantile(0.95, b([0.1, 0], [Infinity, 0]))).toBeNull();
    expect(histogramQuantile(0.95, [])).toBeNull();
  });

  it('reads Caddy’s text exactly: whole label names, escapes, +Inf, other servers and families left out', () => {
    const f = 'caddy_http_request_duration_seconds';
    const text = [
      '# TYPE caddy_http_request_duration_seconds histogram',
      `${f}_bucket{code="500",handler="subroute",host="A.test",method="GET",server="selfdevop",le="0.1"} 2`,
      `${f}_bucket{code="500",handler="subroute",host="A.test",method="GET",server="selfdevop",le="+Inf"} 3`,
      `${f}_count{code="500",handler="subroute",host="A.test",method="GET",server="selfdevop"} 3`,
      `${f}_sum{code="500",handler="subroute",host="A.test",method="GET",server="selfdevop"} 9.5`,
      `${f}_count{code="404",handler="subroute",host="a.test",method="POST",server="selfdevop"} 4`,
      `${f}_count{code="200",handler="subroute",host="a.test",method="GET",server="selfdevop"} 10`,
      // A label whose name ends in "host" is not the host; an escaped value is read whole.
      `${f}_count{code="200",handler="subroute",host="q\\"x.test",method="GET",server="selfdevop",xhost="a.test"} 1`,
      `${f}_count{code="500",handler="subroute",host="a.test",method="GET",server="admin"} 50`,
      `caddy_http_request_size_bytes_count{code="500",handler="subroute",host="a.test",method="GET",server="selfdevop"} 70`,
      // The gauge, summed over handlers; another server's is left out; a host whose first
      // request is still in flight has no histogram yet but is seen.
      '# TYPE caddy_http_requests_in_flight gauge',
      `caddy_http_requests_in_flight{handler="subroute",host="A.test",server="selfdevop"} 2`,
      `caddy_http_requests_in_flight{handler="reverse_proxy",host="a.test",server="selfdevop"} 1`,
      `caddy_http_requests_in_flight{handler="subroute",host="a.test",server="admin"} 40`,
      `caddy_http_requests_in_flight{handler="subroute",host="q\\"x.test",server="selfdevop"} 0`,
      `caddy_http_requests_in_flight{handler="subroute",host="new.test",server="selfdevop"} 1`,
      `caddy_http_requests_in_flight_total{handler="subroute",host="a.test",server="selfdevop"} 9`,
    ].join('\n');
    const hosts = caddyTrafficFromMetrics(text, 'selfdevop');
    expect(hosts).toEqual([
      {
        host: 'a.test',
        requests: 17,
        responses4xx: 4,
        responses5xx: 3,
        buckets: [
          { le: 0.1, count: 2 },
          { le: Infinity, count: 3 },
        ],
        openConnections: 3,
      },
      {
        host: 'q"x.test',
        requests: 1,
        responses4xx: 0,
        responses5xx: 0,
        buckets: [],
        openConnections: 0,
      },
      {
        host: 'new.test',
        requests: 0,
        responses4xx: 0,
        responses5xx: 0,
        buckets: [],
        openConnections: 1,
      },
    ]);
  });

  it('takes a restarted edge’s totals, and a host first seen after a reading, as what happened since', () => {
    const history = new EdgeTrafficHistory();
    const c = counts;
    const target = aTarget;
    history.observe([c(1000, 10)], 0);
    // A first reading (a cold start) is a baseline: its totals may span hours.
    expect(serviceTraffic(history, [target])).toEqual([]);
    history.observe([c(1100, 10), { ...c(7, 7), host: 'new.test' }], 60_000);
    expect(serviceTraffic(history, [target])[0]).toMatchObject({ requests: 100, responses5xx: 0 });
    expect(serviceTraffic(history, [{ ...target, hosts: ['new.test'] }])[0]).toMatchObject({
      requests: 7,
      responses5xx: 7,
    });
    // The edge restarted: 30 requests since, not −1070.
    history.observe([c(30, 6)], 120_000);
    const [after] = serviceTraffic(history, [target]);
    expect(after).toMatchObject({ requests: 30, responses5xx: 6 });
    expect(after!.ofThreshold.http_5xx_spike).toBeCloseTo(0.2 / 0.05, 10);
  });

  it('scales the floor to the rule’s minute when a round spans more (a missed collection)', () => {
    const history = new EdgeTrafficHistory();
    const c = (requests: number, e5: number) => [counts(requests, e5)];
    const target = aTarget;
    history.observe(c(0, 0), 0);
    // 8 errors over two minutes is 4 a minute: under the floor.
    history.observe(c(8, 8), 120_000);
    expect(serviceTraffic(history, [target])[0]!.ofThreshold.http_5xx_spike).toBe(0);
    // The p95 window sums rounds up to its 5 minutes, no further.
    for (let i = 1; i <= 6; i++) history.observe(c(8 + i * 10, 8), 120_000 + i * 60_000);
    const [t] = serviceTraffic(history, [target]);
    expect(t!.seconds).toBe(60);
    expect(t!.requests).toBe(10);
  });

  it('takes open connections as the newest reading’s gauge, summed over an environment’s own hosts', () => {
    const history = new EdgeTrafficHistory();
    const c = (host: string, requests: number, openConnections: number) => ({
      ...counts(requests, 0, host),
      openConnections,
    });
    // A host listed twice, in another case, counts once.
    const target = { ...aTarget, hosts: ['a.test', 'B.test', 'b.test', 'gone.test'] };
    const other: TrafficTarget = { ...target, environmentId: 'staging', hosts: ['c.test'] };
    history.observe([c('a.test', 10, 7), c('b.test', 0, 1), c('c.test', 5, 100)], 0);
    history.observe([c('a.test', 20, 3), c('b.test', 0, 2), c('c.test', 5, 100)], 60_000);
    const [t, o] = serviceTraffic(history, [target, other]);
    // 3 + 2 now: not the 7 and 1 of the reading before, nor a delta (−4 + 1), nor c's 100.
    expect(t).toMatchObject({ requests: 10, openConnections: 5 });
    // No request in the round, and still its connections open (a long-lived WebSocket).
    expect(o).toMatchObject({ requests: 0, openConnections: 100 });
    // A restarted edge: the gauge is simply what it reads.
    history.observe([c('a.test', 1, 1)], 120_000);
    expect(serviceTraffic(history, [target])[0]).toMatchObject({ requests: 1, openConnections: 1 });
  });
});
