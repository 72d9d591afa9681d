import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter, CaddyRejected } from '../../adapters/edge/caddy.ts';
import { caddyRouteFromSpec } from '../../core/edge/caddy-route.ts';
import { aRouteSpec, runEdgeRouterContract } from '../contracts/edge-router.case.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { available } from '../support/services.ts';

/** A loopback HTTP server that answers every request with its own name. */
async function namedUpstream(name: string): Promise<{ dial: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => res.end(name));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** GET / on Caddy's HTTP port for `host`, as a browser would send it. */
function getThroughEdge(
  port: number,
  host: string,
  cookie?: string,
): Promise<{ status: number; body: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        headers: { Host: host, ...(cookie ? { Cookie: cookie } : {}) },
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
            setCookie: res.headers['set-cookie'] ?? [],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!(await available('caddy')))('CaddyEdgeRouter (real Caddy 2.11)', () => {
  let caddy: TestCaddy;
  let closedPort: number;
  const upstreams: Awaited<ReturnType<typeof namedUpstream>>[] = [];

  beforeAll(async () => {
    caddy = await startCaddy();
    closedPort = await freePort();
    upstreams.push(await namedUpstream('A'), await namedUpstream('B'), await namedUpstream('C'));
  });

  afterAll(async () => {
    await Promise.all(upstreams.map((u) => u.close()));
    await caddy?.stop();
  });

  const router = () => new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
  const [a, b] = [() => upstreams[0]!, () => upstreams[1]!];

  runEdgeRouterContract({
    make: async () => {
      await caddy.reset();
      return router();
    },
    makeUnreachable: () =>
      new CaddyEdgeRouter({ adminUrl: `http://127.0.0.1:${closedPort}`, timeoutMs: 2000 }),
  });

  it('names the admin URL when Caddy cannot be reached', async () => {
    const edge = new CaddyEdgeRouter({ adminUrl: `http://127.0.0.1:${closedPort}` });
    await expect(edge.ping()).rejects.toMatchObject({
      code: 'caddy_unavailable',
      message: expect.stringContaining(`127.0.0.1:${closedPort}`),
    });
  });

  it('stores exactly the planned JSON, addressable by @id', async () => {
    await caddy.reset();
    await router().put(
      aRouteSpec({
        id: 'svc_x',
        hosts: ['x.example.test'],
        upstreams: ['127.0.0.1:30001'],
        drainSeconds: 600,
      }),
    );
    const stored = await caddy.admin.request('GET', '/id/svc_x');
    expect(JSON.parse(stored.body)).toStrictEqual({
      '@id': 'svc_x',
      match: [{ host: ['x.example.test'] }],
      handle: [
        {
          handler: 'subroute',
          routes: [
            {
              match: [{ not: [{ header: { 'X-Request-Id': ['*'] } }] }],
              handle: [
                {
                  handler: 'headers',
                  request: { set: { 'X-Request-Id': ['{http.request.uuid}'] } },
                },
              ],
            },
          ],
        },
        {
          handler: 'reverse_proxy',
          upstreams: [{ dial: '127.0.0.1:30001' }],
          load_balancing: { selection_policy: { policy: 'round_robin' }, try_duration: '5s' },
          stream_close_delay: '600s',
          headers: {
            response: { set: { 'X-Request-Id': ['{http.request.header.X-Request-Id}'] } },
          },
        },
      ],
      terminal: true,
    });
  });

  it('sends traffic for a host to its upstream, and to the new one after a put', async () => {
    await caddy.reset();
    const edge = router();
    await edge.put(aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: [a().dial] }));
    expect(await getThroughEdge(caddy.httpPort, 'x.example.test')).toMatchObject({
      status: 200,
      body: 'A',
    });
    await edge.put(aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: [b().dial] }));
    expect(await getThroughEdge(caddy.httpPort, 'x.example.test')).toMatchObject({
      status: 200,
      body: 'B',
    });
    // No route for this host: Caddy's empty 200 rather than either upstream.
    expect((await getThroughEdge(caddy.httpPort, 'other.example.test')).body).toBe('');
  });

  it('balances a plain route over both upstreams', async () => {
    await caddy.reset();
    await router().put(
      aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: [a().dial, b().dial] }),
    );
    const seen = new Set<string>();
    for (let i = 0; i < 6; i += 1)
      seen.add((await getThroughEdge(caddy.httpPort, 'x.example.test')).body);
    expect([...seen].sort()).toStrictEqual(['A', 'B']);
  });

  it('pins a client to one upstream with the sticky cookie', async () => {
    await caddy.reset();
    await router().put(
      aRouteSpec({
        id: 'svc_x',
        hosts: ['x.example.test'],
        upstreams: [a().dial, b().dial],
        sticky: true,
      }),
    );
    const first = await getThroughEdge(caddy.httpPort, 'x.example.test');
    const cookie = first.setCookie
      .map((c) => c.split(';')[0])
      .find((c) => c?.startsWith('sdo_sticky='));
    expect(cookie).toBeDefined();
    const bodies = new Set<string>([first.body]);
    for (let i = 0; i < 8; i += 1)
      bodies.add((await getThroughEdge(caddy.httpPort, 'x.example.test', cookie)).body);
    expect(bodies.size).toBe(1);
  });

  it("places new sticky clients by the route's balancing, not Caddy's random default", async () => {
    await caddy.reset();
    const dials = upstreams.map((u) => u.dial);
    await router().put(
      aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: dials, sticky: true }),
    );
    const counts: Record<string, number> = {};
    for (let i = 0; i < 9; i += 1) {
      const r = await getThroughEdge(caddy.httpPort, 'x.example.test');
      expect(r.status).toBe(200);
      counts[r.body] = (counts[r.body] ?? 0) + 1;
    }
    // Round robin gives each of three exactly three of nine; random would only by luck (~9 %).
    expect(counts).toStrictEqual({ A: 3, B: 3, C: 3 });
  });

  it('moves a sticky client whose replica left to another one, without an error, and pins it there', async () => {
    await caddy.reset();
    const edge = router();
    const dials = upstreams.map((u) => u.dial);
    await edge.put(
      aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: dials, sticky: true }),
    );
    const stickyOf = (r: { setCookie: string[] }) =>
      r.setCookie.map((c) => c.split(';')[0]).find((c) => c?.startsWith('sdo_sticky='));
    const first = await getThroughEdge(caddy.httpPort, 'x.example.test');
    const cookie = stickyOf(first)!;
    expect(cookie).toBeDefined();
    const pinned = upstreams.find((_, i) => 'ABC'[i] === first.body)!;
    // The pinned replica is removed (a scale down, a drain): the route lists the others.
    await edge.put(
      aRouteSpec({
        id: 'svc_x',
        hosts: ['x.example.test'],
        upstreams: dials.filter((d) => d !== pinned.dial),
        sticky: true,
      }),
    );
    const moved = await getThroughEdge(caddy.httpPort, 'x.example.test', cookie);
    expect(moved.status).toBe(200);
    expect(['A', 'B', 'C'].filter((n) => n !== first.body)).toContain(moved.body);
    const repinned = stickyOf(moved);
    expect(repinned).toBeDefined();
    expect(repinned).not.toBe(cookie);
    for (let i = 0; i < 5; i += 1)
      expect(await getThroughEdge(caddy.httpPort, 'x.example.test', repinned)).toMatchObject({
        status: 200,
        body: moved.body,
      });
  });

  it('keeps a catch-all route that was there last, and leaves it out of list()', async () => {
    await caddy.reset();
    const routesPath = `/config/apps/http/servers/${caddy.serverName}/routes`;
    const catchAll = {
      '@id': 'fallback',
      handle: [{ handler: 'static_response', status_code: 404, body: 'no such app' }],
    };
    expect((await caddy.admin.request('POST', routesPath, catchAll)).status).toBe(200);
    const edge = router();
    await edge.put(aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: [a().dial] }));
    await edge.putMany([
      aRouteSpec({ id: 'svc_y', hosts: ['*.wild.example.test'], upstreams: [b().dial] }),
    ]);
    const ids = (
      JSON.parse((await caddy.admin.request('GET', routesPath)).body) as {
        '@id': string;
      }[]
    ).map((r) => r['@id']);
    expect(ids).toStrictEqual(['svc_x', 'svc_y', 'fallback']);
    expect((await edge.list()).map((r) => r.id).sort()).toStrictEqual(['svc_x', 'svc_y']);
    expect(await getThroughEdge(caddy.httpPort, 'x.example.test')).toMatchObject({
      status: 200,
      body: 'A',
    });
    expect(await getThroughEdge(caddy.httpPort, 'q.wild.example.test')).toMatchObject({
      status: 200,
      body: 'B',
    });
    expect(await getThroughEdge(caddy.httpPort, 'nope.example.test')).toMatchObject({
      status: 404,
      body: 'no such app',
    });
    await expect(edge.get('fallback')).rejects.toThrow(/fallback is not a route selfdevop manages/);
  });

  it('serialises concurrent puts so none is lost', async () => {
    await caddy.reset();
    const edge = router();
    const routes = Array.from({ length: 8 }, (_, i) =>
      aRouteSpec({ id: `svc_${i}`, hosts: [`h${i}.example.test`] }),
    );
    await Promise.all(routes.map((r) => edge.put(r)));
    expect((await edge.list()).map((r) => r.id).sort()).toStrictEqual(
      routes.map((r) => r.id).sort(),
    );
  });

  it('loses and mixes up nothing when several routers (processes) change routes at once', async () => {
    await caddy.reset();
    const old = Array.from({ length: 3 }, (_, i) =>
      aRouteSpec({ id: `old_${i}`, hosts: [`o${i}.example.test`] }),
    );
    await router().putMany(old);
    const routes = Array.from({ length: 6 }, (_, i) =>
      aRouteSpec({
        id: `svc_${i}`,
        hosts: [`h${i}.example.test`],
        upstreams: [`127.0.0.1:${32000 + i}`],
      }),
    );
    await Promise.all([
      ...routes.map((r) => router().put(r)),
      ...old.map((r) => router().remove(r.id)),
    ]);
    const listed = await router().list();
    expect(listed.sort((x, y) => x.id.localeCompare(y.id))).toStrictEqual(routes);
  });

  it('restores lost routes and hosts in one load, never rewriting a route that is there', async () => {
    await caddy.reset();
    const edge = router();
    const switched = aRouteSpec({
      id: 'sdo-web',
      hosts: ['web.example.test'],
      upstreams: ['127.0.0.1:30009'],
    });
    await edge.put(switched);
    const loaded = await edge.restore([
      // Planned from the database before a deploy switched the route: its upstream is older.
      {
        ...switched,
        upstreams: ['127.0.0.1:30001'],
        hosts: ['web.example.test', 'shop.example.test'],
      },
      aRouteSpec({ id: 'sdo-api', hosts: ['api.example.test'], upstreams: ['127.0.0.1:30002'] }),
    ]);
    expect(loaded).toEqual({ routes: ['sdo-api'], hosts: ['shop.example.test on sdo-web'] });
    expect(await edge.get('sdo-web')).toEqual({
      ...switched,
      hosts: ['web.example.test', 'shop.example.test'],
    });
    expect((await edge.get('sdo-api'))?.upstreams).toEqual(['127.0.0.1:30002']);
  });

  it('creates its server when the config has none, if told where to listen', async () => {
    const port = await freePort();
    expect(
      (
        await caddy.admin.request('POST', '/load', {
          admin: { listen: new URL(caddy.adminUrl).host },
        })
      ).status,
    ).toBe(200);
    await expect(router().put(aRouteSpec())).rejects.toThrow(
      /no server selfdevop and no listen address/,
    );
    const edge = new CaddyEdgeRouter({
      adminUrl: caddy.adminUrl,
      server: 'fresh',
      listen: { httpListen: `127.0.0.1:${port}` },
    });
    await edge.put(aRouteSpec({ id: 'svc_x', hosts: ['x.example.test'], upstreams: [a().dial] }));
    expect(await getThroughEdge(port, 'x.example.test')).toMatchObject({ status: 200, body: 'A' });
    expect(await edge.list()).toHaveLength(1);
    await caddy.reset();
  });

  it('lists nothing when its server does not exist', async () => {
    await caddy.reset();
    expect(
      await new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: 'absent' }).list(),
    ).toStrictEqual([]);
  });
});

describe('CaddyEdgeRouter against an admin API that misbehaves', () => {
  /** A loopback stand-in for the admin API whose answers each test chooses. */
  async function fakeAdmin(answer: (method: string, path: string) => [number, unknown]) {
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const [status, body] = answer(req.method ?? '', req.url ?? '');
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('throws when the route read back is not the one put', async () => {
    // Accepts the write, then shows routes without it.
    const admin = await fakeAdmin((method) => (method === 'GET' ? [200, []] : [200, null]));
    try {
      await expect(new CaddyEdgeRouter({ adminUrl: admin.url }).put(aRouteSpec())).rejects.toThrow(
        /read back differs/,
      );
    } finally {
      await admin.close();
    }
  });

  it('states what Caddy refused and why', async () => {
    const admin = await fakeAdmin((method) =>
      method === 'GET' ? [200, []] : [500, { error: 'loading new config: boom' }],
    );
    try {
      const error = await new CaddyEdgeRouter({ adminUrl: admin.url })
        .put(aRouteSpec())
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CaddyRejected);
      expect((error as Error).message).toBe(
        'caddy refused put route svc_web_production (PUT /config/apps/http/servers/selfdevop/routes/0): 500 loading new config: boom',
      );
    } finally {
      await admin.close();
    }
  });

  it('does not trust /id/ when it answers with another route (a concurrent shift)', async () => {
    const wanted = aRouteSpec({ id: 'svc_x' });
    const other = caddyRouteFromSpec(aRouteSpec({ id: 'svc_y', hosts: ['y.example.test'] }));
    const admin = await fakeAdmin((_method, path) =>
      path.startsWith('/id/') ? [200, other] : [200, [other, caddyRouteFromSpec(wanted)]],
    );
    try {
      const edge = new CaddyEdgeRouter({ adminUrl: admin.url });
      expect(await edge.get('svc_x')).toStrictEqual(wanted);
      expect(await edge.get('svc_z')).toBeNull();
    } finally {
      await admin.close();
    }
  });

  it('gives up when the routes keep changing under it', async () => {
    const admin = await fakeAdmin((method) =>
      method === 'GET'
        ? [200, []]
        : [412, { error: 'If-Match header did not match current config hash' }],
    );
    try {
      await expect(new CaddyEdgeRouter({ adminUrl: admin.url }).put(aRouteSpec())).rejects.toThrow(
        /kept changing/,
      );
    } finally {
      await admin.close();
    }
  });

  it('reports an admin API that does not answer in time as Unavailable', async () => {
    const server = http.createServer(() => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await expect(
        new CaddyEdgeRouter({ adminUrl: `http://127.0.0.1:${port}`, timeoutMs: 200 }).list(),
      ).rejects.toMatchObject({ kind: 'unavailable' });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
