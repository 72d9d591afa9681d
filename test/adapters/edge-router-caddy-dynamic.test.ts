/**
 * Caddy with dynamic upstreams served by selfdevop's DNS server: the same EdgeRouter
 * contract, and the property the design exists for — moving traffic between upstreams
 * under keep-alive load reloads nothing, so no connection is reset and no WebSocket cut.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import { aRouteSpec, runEdgeRouterContract } from '../contracts/edge-router.case.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { available } from '../support/services.ts';

const zone = 'sdo.internal';

/** An upstream answering HTTP with its name and echoing WebSocket messages prefixed by it. */
async function namedUpstream(name: string) {
  const server = http.createServer((_req, res) => res.end(name));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`${name}:${String(m)}`)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    dial: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(!(await available('caddy')))(
  'CaddyEdgeRouter with dynamic upstreams (real Caddy 2.11)',
  () => {
    let caddy: TestCaddy;
    let dns: UpstreamDnsServer;
    let registry: MemoryUpstreamRegistry;
    let closedPort: number;
    const upstreams: Awaited<ReturnType<typeof namedUpstream>>[] = [];

    beforeAll(async () => {
      registry = new MemoryUpstreamRegistry();
      dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs: 50 });
      caddy = await startCaddy();
      closedPort = await freePort();
      upstreams.push(await namedUpstream('A'), await namedUpstream('B'));
    });

    afterAll(async () => {
      await Promise.all(upstreams.map((u) => u.close()));
      await caddy?.stop();
      await dns?.close();
    });

    const router = () =>
      new CaddyEdgeRouter({
        adminUrl: caddy.adminUrl,
        server: caddy.serverName,
        dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100 },
      });

    runEdgeRouterContract({
      make: async () => {
        await caddy.reset();
        return router();
      },
      makeUnreachable: () =>
        new CaddyEdgeRouter({
          adminUrl: `http://127.0.0.1:${closedPort}`,
          timeoutMs: 2000,
          dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100 },
        }),
    });

    it("counts a request in flight to a dynamic upstream by Caddy's own count, and none once answered", async () => {
      await caddy.reset();
      const edge = router();
      // An upstream that holds its answer until told.
      let release: () => void = () => undefined;
      const held = new Promise<void>((r) => (release = r));
      const slow = http.createServer((_req, res) => void held.then(() => res.end('slow')));
      await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
      const dial = `127.0.0.1:${(slow.address() as AddressInfo).port}`;
      try {
        const host = 'inflight.example.test';
        await edge.put(aRouteSpec({ id: 'sdo-inflight', hosts: [host], upstreams: [dial] }));
        const answered = new Promise<number>((resolve, reject) =>
          http
            .get(
              {
                host: '127.0.0.1',
                port: caddy.httpPort,
                path: '/',
                headers: { host },
                agent: false,
              },
              (res) => {
                res.resume();
                res.on('end', () => resolve(res.statusCode ?? 0));
              },
            )
            .on('error', reject),
        );
        const other = upstreams[0]!.dial;
        let counts: Record<string, number> = {};
        for (let i = 0; i < 50; i++) {
          counts = await edge.inFlight([dial, other]);
          if (counts[dial] === 1) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(counts).toEqual({ [dial]: 1, [other]: 0 });
        // Switched away, the request it already has still counts: this is what a drain waits on.
        await edge.put(aRouteSpec({ id: 'sdo-inflight', hosts: [host], upstreams: [other] }));
        expect((await edge.inFlight([dial]))[dial]).toBe(1);
        release();
        expect(await answered).toBe(200);
        for (let i = 0; i < 50; i++) {
          counts = await edge.inFlight([dial]);
          if (counts[dial] === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(counts).toEqual({ [dial]: 0 });
      } finally {
        release();
        slow.closeAllConnections();
        await new Promise<void>((resolve) => slow.close(() => resolve()));
      }
    });

    it('gives a request whose dial failed to another upstream instead of answering 502', async () => {
      await caddy.reset();
      const edge = router();
      const host = 'retry.example.test';
      // One upstream refuses every connection (a replica gone or not accepting).
      await edge.put(
        aRouteSpec({
          id: 'sdo-retry',
          hosts: [host],
          upstreams: [`127.0.0.1:${closedPort}`, upstreams[0]!.dial],
        }),
      );
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++)
        statuses.push(
          await new Promise<number>((resolve, reject) =>
            http
              .get(
                {
                  host: '127.0.0.1',
                  port: caddy.httpPort,
                  path: '/',
                  headers: { host },
                  agent: false,
                },
                (res) => {
                  res.resume();
                  res.on('end', () => resolve(res.statusCode ?? 0));
                },
              )
              .on('error', reject),
          ),
        );
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    });

    it('moves a sticky client to a remaining upstream once its own leaves the SRV answer, with no error', async () => {
      await caddy.reset();
      const edge = router();
      const host = 'sticky.example.test';
      const get = (cookie?: string) =>
        new Promise<{ status: number; body: string; cookie: string | undefined }>(
          (resolve, reject) =>
            http
              .get(
                {
                  host: '127.0.0.1',
                  port: caddy.httpPort,
                  path: '/',
                  headers: { host, ...(cookie ? { cookie } : {}) },
                  agent: false,
                },
                (res) => {
                  let body = '';
                  res.setEncoding('utf8');
                  res.on('data', (c: string) => (body += c));
                  res.on('end', () =>
                    resolve({
                      status: res.statusCode ?? 0,
                      body,
                      cookie: (res.headers['set-cookie'] ?? [])
                        .map((c) => c.split(';')[0]!)
                        .find((c) => c.startsWith('sdo_sticky=')),
                    }),
                  );
                },
              )
              .on('error', reject),
        );
      const both = upstreams.map((u) => u.dial);
      await edge.put(
        aRouteSpec({ id: 'sdo-sticky', hosts: [host], upstreams: both, sticky: true }),
      );
      const first = await get();
      expect(first.status).toBe(200);
      const cookie = first.cookie!;
      expect(cookie).toBeDefined();
      const leaving = upstreams[first.body === 'A' ? 0 : 1]!;
      await edge.put(
        aRouteSpec({
          id: 'sdo-sticky',
          hosts: [host],
          upstreams: both.filter((d) => d !== leaving.dial),
          sticky: true,
        }),
      );
      // Until Caddy's next SRV refresh the old answer holds; every request answers 200.
      const seen: { status: number; body: string; cookie: string | undefined }[] = [];
      const deadline = Date.now() + 5_000;
      while (Date.now() < deadline) {
        const r = await get(cookie);
        seen.push(r);
        if (r.body !== first.body) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(seen.filter((r) => r.status !== 200)).toEqual([]);
      const moved = seen[seen.length - 1]!;
      expect(moved.body).toBe(first.body === 'A' ? 'B' : 'A');
      expect(moved.cookie).toBeDefined();
      for (let i = 0; i < 3; i++) expect((await get(moved.cookie)).body).toBe(moved.body);
    });

    it('stores a route that names its upstreams by DNS, and keeps it when they change', async () => {
      await caddy.reset();
      const edge = router();
      await edge.put(
        aRouteSpec({
          id: 'sdo-svc_a-env_b',
          hosts: ['dyn.example.test'],
          upstreams: [upstreams[0]!.dial],
        }),
      );
      const before = await caddy.admin.request('GET', '/id/sdo-svc_a-env_b');
      expect(JSON.parse(before.body).handle[1]).toMatchObject({
        dynamic_upstreams: {
          source: 'srv',
          name: `_sdo-svc-a-env-b._tcp.${zone}`,
          refresh: '100ms',
          grace_period: '2s',
        },
        transport: { protocol: 'http', resolver: { addresses: [`udp/${dns.address}`] } },
      });
      await edge.put(
        aRouteSpec({
          id: 'sdo-svc_a-env_b',
          hosts: ['dyn.example.test'],
          upstreams: [upstreams[1]!.dial],
        }),
      );
      const after = await caddy.admin.request('GET', '/id/sdo-svc_a-env_b');
      expect(after.body).toBe(before.body);
      expect((await edge.get('sdo-svc_a-env_b'))?.upstreams).toEqual([upstreams[1]!.dial]);
    });

    it('restores a lost route with the upstreams the registry holds, and fills only missing ones', async () => {
      await caddy.reset();
      const edge = router();
      const kept = aRouteSpec({
        id: 'sdo-kept',
        hosts: ['kept.example.test'],
        upstreams: [upstreams[0]!.dial],
      });
      await edge.put(kept);
      // Caddy lost its config; the registry (PostgreSQL in production) did not.
      await caddy.reset();
      const fresh = aRouteSpec({
        id: 'sdo-fresh',
        hosts: ['fresh.example.test'],
        upstreams: [upstreams[1]!.dial],
      });
      // Planned from an older database read: the registry's newer answer must win.
      const restored = await edge.restore([{ ...kept, upstreams: [upstreams[1]!.dial] }, fresh]);
      expect(restored).toEqual({ routes: ['sdo-kept', 'sdo-fresh'], hosts: [] });
      expect((await edge.get('sdo-kept'))?.upstreams).toEqual([upstreams[0]!.dial]);
      expect((await edge.get('sdo-fresh'))?.upstreams).toEqual([upstreams[1]!.dial]);
      expect(await edge.restore([kept, fresh])).toEqual({ routes: [], hosts: [] });
    });

    it('moves keep-alive traffic and held WebSockets between upstreams with no reset and no reload', async () => {
      await caddy.reset();
      const edge = router();
      const host = 'switch.example.test';
      const route = (dial: string) =>
        aRouteSpec({ id: 'sdo-switch', hosts: [host], upstreams: [dial], drainSeconds: 2 });
      await edge.put(route(upstreams[0]!.dial));
      const configBefore = (await caddy.admin.request('GET', '/config/')).body;

      // A WebSocket through Caddy, held across every switch.
      const ws = new WebSocket(`ws://127.0.0.1:${caddy.httpPort}/`, { headers: { host } });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      let wsClosed = false;
      ws.on('close', () => (wsClosed = true));

      // Keep-alive load: 4 connections, bounded in count and time.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
      const results = { ok: 0, bodies: new Set<string>(), errors: [] as string[] };
      let running = true;
      const get = () =>
        new Promise<void>((resolve) => {
          const req = http.get(
            { host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host }, agent },
            (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c));
              res.on('end', () => {
                if (res.statusCode === 200) results.ok++;
                else results.errors.push(`status ${res.statusCode}`);
                results.bodies.add(body);
                resolve();
              });
            },
          );
          req.on('error', (e) => {
            results.errors.push(e.message);
            resolve();
          });
        });
      const loops = Array.from({ length: 4 }, async () => {
        const end = Date.now() + 20_000;
        for (let i = 0; running && i < 5_000 && Date.now() < end; i++) await get();
      });

      for (let i = 0; i < 10; i++) await edge.put(route(upstreams[(i + 1) % 2]!.dial));
      running = false;
      await Promise.all(loops);
      agent.destroy();

      expect(results.errors).toEqual([]);
      expect(results.ok).toBeGreaterThan(100);
      expect([...results.bodies].sort()).toEqual(['A', 'B']);
      // After an even number of switches traffic is back on A, and the config never changed.
      const last = await new Promise<string>((resolve) =>
        http.get(
          { host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host }, agent: false },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve(body));
          },
        ),
      );
      expect(last).toBe('A');
      expect((await caddy.admin.request('GET', '/config/')).body).toBe(configBefore);

      // The held socket still talks to the upstream it was opened on.
      const echo = new Promise<string>((resolve) => ws.once('message', (m) => resolve(String(m))));
      ws.send('ping');
      expect(await echo).toBe('A:ping');
      expect(wsClosed).toBe(false);
      ws.close();
    }, 60_000);

    it('keeps routing to the last answer while the DNS server is down, longer than the grace period, and follows a switch once it is back', async () => {
      await caddy.reset();
      const edge = router();
      const host = 'grace.example.test';
      await edge.put(
        aRouteSpec({ id: 'sdo-grace', hosts: [host], upstreams: [upstreams[1]!.dial] }),
      );
      const fetchBody = () =>
        new Promise<{ status: number; body: string }>((resolve, reject) =>
          http
            .get(
              {
                host: '127.0.0.1',
                port: caddy.httpPort,
                path: '/',
                headers: { host },
                agent: false,
              },
              (res) => {
                let body = '';
                res.on('data', (c: Buffer) => (body += c));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
              },
            )
            .on('error', reject),
        );
      expect(await fetchBody()).toEqual({ status: 200, body: 'B' });
      await dns.close();
      try {
        // Three grace periods (2 s) without the DNS server: each failed retry keeps the last
        // answer again, so the route never drops.
        for (let i = 0; i < 12; i++) {
          await new Promise((r) => setTimeout(r, 500));
          expect(await fetchBody()).toEqual({ status: 200, body: 'B' });
        }
      } finally {
        const port = Number(dns.address.split(':').at(-1));
        dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port, cacheMs: 50 });
      }
      // The failed lookups left the stale answer marked fresh for one grace period, not
      // longer: a switch made now is served within it (bounded wait: 6 s).
      await edge.put(
        aRouteSpec({ id: 'sdo-grace', hosts: [host], upstreams: [upstreams[0]!.dial] }),
      );
      const deadline = Date.now() + 6_000;
      let got = await fetchBody();
      while (got.body !== 'A' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        got = await fetchBody();
      }
      expect(got).toEqual({ status: 200, body: 'A' });
    }, 30_000);
  },
);
