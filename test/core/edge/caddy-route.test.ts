import { describe, expect, it } from 'vitest';

/** The handler that gives a request without an X-Request-Id one, before the proxy. */
const requestId = {
  handler: 'subroute',
  routes: [
    {
      match: [{ not: [{ header: { 'X-Request-Id': ['*'] } }] }],
      handle: [
        { handler: 'headers', request: { set: { 'X-Request-Id': ['{http.request.uuid}'] } } },
      ],
    },
  ],
};
import { isCoreError } from '../../../core/errors.ts';
import type { RouteSpec } from '../../../core/ports.ts';
import {
  assertRouteSpec,
  caddyBaseConfig,
  caddyRouteFromSpec,
  durationSeconds,
  mergeRoutes,
  restoreRoutes,
  routeInsertIndex,
  routeRank,
  routeSpecFromCaddy,
  inFlightFromCaddy,
} from '../../../core/edge/caddy-route.ts';

const aRoute = (over: Partial<RouteSpec> = {}): RouteSpec => ({
  id: 'svc_web_production',
  hosts: ['web.apps.example.com'],
  upstreams: ['10.0.0.5:32768'],
  sticky: false,
  drainSeconds: 600,
  ...over,
});

describe('caddyRouteFromSpec', () => {
  it('plans a single-upstream route with a stream close delay and round robin', () => {
    expect(caddyRouteFromSpec(aRoute())).toStrictEqual({
      '@id': 'svc_web_production',
      match: [{ host: ['web.apps.example.com'] }],
      handle: [
        requestId,
        {
          handler: 'reverse_proxy',
          upstreams: [{ dial: '10.0.0.5:32768' }],
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

  it('plans a sticky route over two upstreams with a cookie and passive health checks', () => {
    const spec = aRoute({
      hosts: ['a.example', 'www.a.example'],
      upstreams: ['10.0.0.5:1', '10.0.0.6:2'],
      sticky: true,
      drainSeconds: 3,
    });
    expect(caddyRouteFromSpec(spec)).toStrictEqual({
      '@id': 'svc_web_production',
      match: [{ host: ['a.example', 'www.a.example'] }],
      handle: [
        requestId,
        {
          handler: 'reverse_proxy',
          upstreams: [{ dial: '10.0.0.5:1' }, { dial: '10.0.0.6:2' }],
          load_balancing: {
            // Caddy's own fallback is random: a client whose replica left must be placed
            // by the route's balancing.
            selection_policy: {
              policy: 'cookie',
              name: 'sdo_sticky',
              fallback: { policy: 'round_robin' },
            },
            try_duration: '5s',
          },
          stream_close_delay: '3s',
          health_checks: { passive: { fail_duration: '10s', max_fails: 3 } },
          headers: {
            response: { set: { 'X-Request-Id': ['{http.request.header.X-Request-Id}'] } },
          },
        },
      ],
      terminal: true,
    });
  });

  it('leaves the stream close delay out when there is nothing to drain', () => {
    const [, proxy] = caddyRouteFromSpec(aRoute({ drainSeconds: 0 })).handle;
    expect(proxy.handler).toBe('reverse_proxy');
    expect(proxy).not.toHaveProperty('stream_close_delay');
  });

  it('copies hosts so later changes to the spec do not leak into the plan', () => {
    const spec = aRoute();
    const route = caddyRouteFromSpec(spec);
    spec.hosts.push('other.example');
    expect(route.match[0].host).toStrictEqual(['web.apps.example.com']);
  });
});

describe('routeSpecFromCaddy', () => {
  it.each([
    aRoute(),
    aRoute({ sticky: true, upstreams: ['[::1]:8080', '127.0.0.1:9000'], drainSeconds: 0 }),
    aRoute({ sticky: true, loadBalancing: 'least_conn' }),
    aRoute({ hosts: ['*.apps.example.com', 'x.example'], drainSeconds: 86400 }),
  ])('round-trips %o', (spec) => {
    expect(routeSpecFromCaddy(caddyRouteFromSpec(spec))).toStrictEqual(spec);
  });

  it('survives a JSON round trip, as Caddy hands it back', () => {
    const spec = aRoute({ sticky: true, upstreams: ['a:1', 'b:2'] });
    expect(routeSpecFromCaddy(JSON.parse(JSON.stringify(caddyRouteFromSpec(spec))))).toStrictEqual(
      spec,
    );
  });

  it('reads durations written by others', () => {
    const route = {
      ...caddyRouteFromSpec(aRoute()),
      handle: [
        { handler: 'reverse_proxy', upstreams: [{ dial: 'a:1' }], stream_close_delay: '10m' },
      ],
    };
    expect(routeSpecFromCaddy(route)).toStrictEqual(
      aRoute({ upstreams: ['a:1'], drainSeconds: 600 }),
    );
  });

  it.each([
    ['null', null],
    ['an array', []],
    [
      'a route without @id',
      { match: [{ host: ['a'] }], handle: [{ handler: 'reverse_proxy', upstreams: [] }] },
    ],
    [
      'a static response',
      { '@id': 'x', match: [{ host: ['a'] }], handle: [{ handler: 'static_response' }] },
    ],
    [
      'a path matcher',
      {
        '@id': 'x',
        match: [{ host: ['a'], path: ['/api/*'] }],
        handle: [{ handler: 'reverse_proxy', upstreams: [] }],
      },
    ],
    [
      'two handlers',
      {
        '@id': 'x',
        match: [{ host: ['a'] }],
        handle: [{ handler: 'reverse_proxy', upstreams: [] }, { handler: 'file_server' }],
      },
    ],
    [
      'an odd duration',
      {
        '@id': 'x',
        match: [{ host: ['a'] }],
        handle: [{ handler: 'reverse_proxy', upstreams: [], stream_close_delay: 'soon' }],
      },
    ],
  ])('is null for %s', (_what, json) => {
    expect(routeSpecFromCaddy(json)).toBeNull();
  });
});

describe('durationSeconds', () => {
  it.each([
    ['3s', 3],
    ['10m', 600],
    ['1h', 3600],
    ['1500ms', 2],
    [5e9, 5],
    ['5 s', null],
    [undefined, null],
  ])('%o is %o', (value, seconds) => {
    expect(durationSeconds(value)).toBe(seconds);
  });
});

describe('assertRouteSpec', () => {
  it('accepts a usual route', () => {
    expect(() =>
      assertRouteSpec(
        aRoute({ hosts: ['*.a.example', 'localhost'], upstreams: ['[::1]:80', 'web-1:3000'] }),
      ),
    ).not.toThrow();
  });

  it.each([
    ['id', aRoute({ id: '' })],
    ['id', aRoute({ id: 'a/b' })],
    ['id', aRoute({ id: '-x' })],
    ['hosts', aRoute({ hosts: [] })],
    ['hosts', aRoute({ hosts: ['bad host'] })],
    ['hosts', aRoute({ hosts: ['a.example/path'] })],
    ['hosts', aRoute({ hosts: ['a.example', 'a.example'] })],
    ['upstreams', aRoute({ upstreams: [] })],
    ['upstreams', aRoute({ upstreams: ['10.0.0.5'] })],
    ['upstreams', aRoute({ upstreams: ['10.0.0.5:70000'] })],
    ['upstreams', aRoute({ upstreams: ['http://10.0.0.5:80'] })],
    ['upstreams', aRoute({ upstreams: ['a:1', 'a:1'] })],
    ['sticky', aRoute({ sticky: 'yes' as unknown as boolean })],
    ['drainSeconds', aRoute({ drainSeconds: -1 })],
    ['drainSeconds', aRoute({ drainSeconds: 1.5 })],
  ])('rejects a bad %s', (field, spec) => {
    let caught: unknown;
    try {
      assertRouteSpec(spec);
    } catch (e) {
      caught = e;
    }
    expect(isCoreError(caught) && caught.kind === 'invalid' && caught.details).toStrictEqual({
      field,
    });
  });
});

describe('route order', () => {
  const exact = caddyRouteFromSpec(aRoute({ id: 'exact' }));
  const wildcard = caddyRouteFromSpec(aRoute({ id: 'wild', hosts: ['*.apps.example.com'] }));
  const catchAll = {
    '@id': 'fallback',
    handle: [{ handler: 'static_response', status_code: 404 }],
  };

  it('ranks exact hosts before wildcards before catch-alls', () => {
    expect([exact, wildcard, catchAll, { match: [{ path: ['/x'] }] }].map(routeRank)).toStrictEqual(
      [0, 1, 2, 2],
    );
  });

  it('inserts a route before the first of its rank or lower', () => {
    expect(routeInsertIndex([], exact)).toBe(0);
    expect(routeInsertIndex([exact, wildcard, catchAll], exact)).toBe(0);
    expect(routeInsertIndex([exact, wildcard, catchAll], wildcard)).toBe(1);
    expect(routeInsertIndex([exact, catchAll], wildcard)).toBe(1);
    expect(routeInsertIndex([exact, wildcard], catchAll)).toBe(2);
  });

  it('merges specs: replaces in place, inserts new ones by rank, keeps foreign routes', () => {
    const merged = mergeRoutes(
      [exact, wildcard, catchAll],
      [
        aRoute({ id: 'wild', hosts: ['*.apps.example.com'], upstreams: ['10.0.0.9:1'] }),
        aRoute({ id: 'new', hosts: ['new.example'] }),
        aRoute({ id: 'wild2', hosts: ['*.other.example'] }),
      ],
    );
    expect(merged.map((r) => (r as { '@id': string })['@id'])).toStrictEqual([
      'new',
      'exact',
      'wild2',
      'wild',
      'fallback',
    ]);
    expect(routeSpecFromCaddy(merged[3])?.upstreams).toStrictEqual(['10.0.0.9:1']);
    expect(merged[4]).toBe(catchAll);
  });
});

describe('caddyBaseConfig', () => {
  it('plans a plain-HTTP edge with automatic HTTPS off', () => {
    expect(
      caddyBaseConfig({
        adminListen: '127.0.0.1:2019',
        httpListen: '127.0.0.1:8080',
        serverName: 'selfdevop',
        storageRoot: '/tmp/c',
      }),
    ).toStrictEqual({
      admin: { listen: '127.0.0.1:2019' },
      storage: { module: 'file_system', root: '/tmp/c' },
      apps: {
        http: {
          servers: {
            selfdevop: {
              listen: ['127.0.0.1:8080'],
              routes: [],
              automatic_https: { disable: true },
              logs: {},
            },
          },
          metrics: { per_host: true },
        },
      },
    });
  });

  it('plans an HTTPS edge whose ports Caddy uses for ACME and redirects', () => {
    expect(
      caddyBaseConfig({
        adminListen: '127.0.0.1:2019',
        httpListen: ':80',
        httpsListen: ':443',
        serverName: 'edge',
      }),
    ).toStrictEqual({
      admin: { listen: '127.0.0.1:2019' },
      apps: {
        http: {
          http_port: 80,
          https_port: 443,
          servers: { edge: { listen: [':80', ':443'], routes: [], logs: {} } },
          metrics: { per_host: true },
        },
      },
    });
  });
});

describe('restoreRoutes', () => {
  const web = aRoute({ id: 'web', hosts: ['web.apps.example.com'] });
  const api = aRoute({ id: 'api', hosts: ['api.apps.example.com'], upstreams: ['10.0.0.6:30001'] });
  const catchAll = {
    '@id': 'selfdevop-control',
    handle: [{ handler: 'reverse_proxy' }],
    terminal: true,
  };

  it('puts back missing routes by rank, ahead of the catch-all', () => {
    expect(restoreRoutes([catchAll], [web, api])).toStrictEqual({
      routes: [caddyRouteFromSpec(api), caddyRouteFromSpec(web), catchAll],
      restored: { routes: ['web', 'api'], hosts: [] },
    });
  });

  it('adds missing hosts to a route that is there and keeps its handler as it is', () => {
    // A deploy switched the route to another upstream after the database was read.
    const switched = caddyRouteFromSpec({
      ...web,
      upstreams: ['10.0.0.9:31000'],
      hosts: ['web.apps.example.com', 'old.example.com'],
    });
    const planned = { ...web, hosts: ['web.apps.example.com', 'shop.example.com'] };
    expect(restoreRoutes([switched, catchAll], [planned])).toStrictEqual({
      routes: [
        {
          ...switched,
          match: [{ host: ['web.apps.example.com', 'old.example.com', 'shop.example.com'] }],
        },
        catchAll,
      ],
      restored: { routes: [], hosts: ['shop.example.com on web'] },
    });
  });

  it('is null when nothing is missing, and leaves routes it does not manage alone', () => {
    const foreign = {
      '@id': 'web',
      match: [{ path: ['/x'] }],
      handle: [{ handler: 'static_response' }],
    };
    expect(restoreRoutes([caddyRouteFromSpec(api), foreign], [api, web])).toBeNull();
  });

  it('plans dynamic routes when the edge reads upstreams from DNS', () => {
    const dynamic = { zone: 'upstreams.test', resolver: '127.0.0.1:5354', refreshMs: 100 };
    expect(restoreRoutes([], [web], dynamic)?.routes).toStrictEqual([
      caddyRouteFromSpec(web, dynamic),
    ]);
  });
});

describe('inFlightFromCaddy', () => {
  it("reads Caddy's upstream list back to host:port, dynamic SRV targets included, the larger of two listings winning", () => {
    const answer = [
      { address: '10.0.0.5:32768', num_requests: 2, fails: 0 },
      // The in-flight table and the dynamic hosts both list a dynamic upstream.
      { address: 'ip-10-0-0-6.upstreams.selfdevop.internal.:32769', num_requests: 3, fails: 0 },
      { address: 'ip-10-0-0-6.upstreams.selfdevop.internal.:32769', num_requests: 1, fails: 0 },
      { address: 'app.upstreams.selfdevop.internal:8080', num_requests: 4, fails: 0 },
      { address: '10.0.0.9:1', num_requests: 7, fails: 0 },
      { nonsense: true },
    ];
    expect(
      inFlightFromCaddy(
        answer,
        ['10.0.0.5:32768', '10.0.0.6:32769', 'app:8080', '10.0.0.7:80'],
        'upstreams.selfdevop.internal',
      ),
    ).toStrictEqual({ '10.0.0.5:32768': 2, '10.0.0.6:32769': 3, 'app:8080': 4, '10.0.0.7:80': 0 });
  });

  it('refuses an answer that is not a list (an edge too old to report it)', () => {
    expect(() => inFlightFromCaddy({ error: 'not found' }, ['10.0.0.5:1'])).toThrow(/not a list/);
  });
});
