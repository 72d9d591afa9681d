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
import {
  caddyRouteFromSpec,
  hostOfTarget,
  labelOfSrvName,
  routeSpecFromCaddy,
  srvNameOf,
  upstreamLabel,
} from '../../../core/edge/caddy-route.ts';

const zone = 'upstreams.selfdevop.internal';

describe('dynamic upstream names', () => {
  it('turns a route id into one DNS label, short ids as they read', () => {
    expect(upstreamLabel('sdo-svc_abc-env_def')).toBe('sdo-svc-abc-env-def');
    const long = `sdo-svc_${'a'.repeat(26)}-env_${'b'.repeat(26)}`;
    const label = upstreamLabel(long);
    expect(label.length).toBeLessThanOrEqual(63);
    expect(label).toMatch(/^[a-z0-9][a-z0-9-]*$/);
    expect(upstreamLabel(long.replace('a', 'c'))).not.toBe(label);
  });

  it('round-trips SRV names and IP targets, and refuses other zones', () => {
    expect(srvNameOf('sdo-web', zone)).toBe(`_sdo-web._tcp.${zone}`);
    expect(labelOfSrvName(`_sdo-web._tcp.${zone}.`, zone)).toBe('sdo-web');
    expect(labelOfSrvName('_sdo-web._tcp.example.com', zone)).toBeNull();
    expect(hostOfTarget(`ip-10-0-0-5.${zone}`, zone)).toBe('10.0.0.5');
    expect(hostOfTarget(`ip-10-0-0-500.${zone}`, zone)).toBeNull();
    expect(hostOfTarget('ip-10-0-0-5.example.com', zone)).toBeNull();
  });
});

describe('a route with dynamic upstreams', () => {
  const spec = {
    id: 'sdo-web',
    hosts: ['web.example.test'],
    upstreams: ['127.0.0.1:30001', '127.0.0.1:30002'],
    sticky: false,
    drainSeconds: 300,
  };

  it('names its upstreams by DNS and does not change when they do', () => {
    const plan = { zone, resolver: '127.0.0.1:5354', refreshMs: 250 };
    expect(caddyRouteFromSpec(spec, plan)).toEqual({
      '@id': 'sdo-web',
      match: [{ host: ['web.example.test'] }],
      handle: [
        requestId,
        {
          handler: 'reverse_proxy',
          dynamic_upstreams: {
            source: 'srv',
            name: `_sdo-web._tcp.${zone}`,
            refresh: '250ms',
            grace_period: '2s',
            resolver: { addresses: ['udp/127.0.0.1:5354'] },
          },
          transport: { protocol: 'http', resolver: { addresses: ['udp/127.0.0.1:5354'] } },
          load_balancing: { selection_policy: { policy: 'round_robin' }, try_duration: '5s' },
          stream_close_delay: '300s',
          headers: {
            response: { set: { 'X-Request-Id': ['{http.request.header.X-Request-Id}'] } },
          },
        },
      ],
      terminal: true,
    });
    expect(caddyRouteFromSpec({ ...spec, upstreams: ['10.0.0.9:1'] }, plan)).toEqual(
      caddyRouteFromSpec(spec, plan),
    );
  });

  it('reads back with its upstreams left to the registry', () => {
    const json = JSON.parse(
      JSON.stringify(
        caddyRouteFromSpec(spec, { zone, resolver: '127.0.0.1:5354', refreshMs: 250 }),
      ),
    );
    expect(routeSpecFromCaddy(json)).toEqual({ ...spec, upstreams: [] });
  });
});
