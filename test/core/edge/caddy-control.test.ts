import { describe, expect, it } from 'vitest';
import {
  composeEdgeBaseConfig,
  controlRoute,
  edgeServerSettings,
  hasOnDemandTls,
  withControlRoute,
  withControlTlsPolicy,
} from '../../../core/edge/caddy-control.ts';

const proxy = { handler: 'reverse_proxy', upstreams: [{ dial: 'api:3000' }] };
const app = { '@id': 'sdo-svc_1-env_1', match: [{ host: ['web.example.test'] }], terminal: true };

describe('controlRoute', () => {
  it('is a catch-all without a control domain', () => {
    expect(controlRoute(undefined, 'api:3000')).toStrictEqual({
      '@id': 'selfdevop-control',
      handle: [proxy],
      terminal: true,
    });
  });

  it('matches the control domain and redirects its plain HTTP to HTTPS', () => {
    expect(controlRoute('deploy.example.com', 'api:3000')).toStrictEqual({
      '@id': 'selfdevop-control',
      match: [{ host: ['deploy.example.com'] }],
      handle: [
        {
          handler: 'subroute',
          routes: [
            {
              match: [{ protocol: 'http' }],
              handle: [
                {
                  handler: 'static_response',
                  status_code: 308,
                  headers: { Location: ['https://{http.request.host}{http.request.uri}'] },
                },
              ],
            },
            { handle: [proxy] },
          ],
        },
      ],
      terminal: true,
    });
  });
});

describe('edgeServerSettings', () => {
  it('listens for HTTPS with a control domain, or when told the edge serves custom domains', () => {
    expect(edgeServerSettings(undefined, undefined, true)).toStrictEqual({
      listen: [':80', ':443'],
      automatic_https: { disable_redirects: true },
    });
    expect(edgeServerSettings(undefined)).toStrictEqual({
      listen: [':80'],
      automatic_https: { disable: true },
    });
    expect(edgeServerSettings('deploy.example.com')).toStrictEqual({
      listen: [':80', ':443'],
      automatic_https: { disable_redirects: true },
    });
    expect(
      edgeServerSettings('d.example.com', { http: '127.0.0.1:8080', https: '127.0.0.1:8443' })
        .listen,
    ).toStrictEqual(['127.0.0.1:8080', '127.0.0.1:8443']);
  });
});

describe('withControlRoute', () => {
  it('puts a host route first and the catch-all last, replacing the one there', () => {
    const old = controlRoute(undefined, 'old:3000');
    expect(withControlRoute([old, app], controlRoute('d.example.com', 'api:3000'))).toStrictEqual([
      controlRoute('d.example.com', 'api:3000'),
      app,
    ]);
    expect(withControlRoute([old, app], controlRoute(undefined, 'api:3000'))).toStrictEqual([
      app,
      controlRoute(undefined, 'api:3000'),
    ]);
  });
});

describe('withControlTlsPolicy', () => {
  const onDemand = { issuers: [{ module: 'acme' }], on_demand: true };

  it('keeps the control domain out of on-demand TLS with a policy of its own, first', () => {
    expect(withControlTlsPolicy([onDemand], 'd.example.com')).toStrictEqual([
      { '@id': 'selfdevop-control-tls', subjects: ['d.example.com'] },
      onDemand,
    ]);
  });

  it('replaces the policy when the domain changes and drops it without one', () => {
    const planned = withControlTlsPolicy([onDemand], 'old.example.com');
    expect(withControlTlsPolicy(planned, 'new.example.com')).toStrictEqual([
      { '@id': 'selfdevop-control-tls', subjects: ['new.example.com'] },
      onDemand,
    ]);
    expect(withControlTlsPolicy(planned, undefined)).toStrictEqual([onDemand]);
  });
});

describe('composeEdgeBaseConfig', () => {
  it('ships the catch-all control route and on-demand TLS gated by the API ask endpoint', () => {
    const config = composeEdgeBaseConfig() as {
      admin: unknown;
      apps: { http: { servers: { selfdevop: { routes: unknown[] } } }; tls: unknown };
    };
    expect(config.admin).toStrictEqual({
      listen: ':2019',
      origins: ['caddy:2019', '127.0.0.1:2019'],
    });
    expect(config.apps.http.servers.selfdevop.routes).toStrictEqual([
      controlRoute(undefined, 'api:3000'),
    ]);
    expect(config.apps.tls).toStrictEqual({
      automation: {
        policies: [{ issuers: [{ module: 'acme', ca: '{env.ACME_CA}' }], on_demand: true }],
        on_demand: { permission: { module: 'http', endpoint: 'http://api:3000/api/domains/ask' } },
      },
    });
  });
});

describe('hasOnDemandTls', () => {
  it('is true when a policy obtains certificates on demand', () => {
    expect(hasOnDemandTls([{ subjects: ['a.test'] }, { on_demand: true }])).toBe(true);
    expect(hasOnDemandTls([{ subjects: ['a.test'] }])).toBe(false);
    expect(hasOnDemandTls(undefined)).toBe(false);
  });
});
