/**
 * The control route and edge server settings against a real Caddy (caddy-control.ts), as
 * the worker reconciles them at start and periodically: app routes stay where they are,
 * writes are idempotent, and a control domain gets a TLS policy of its own ahead of the
 * on-demand policy (otherwise the ask endpoint, custom domains only, would refuse it).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readEdgeCertificate } from '../../adapters/edge/caddy-certificate.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { controlRoute } from '../../core/edge/caddy-control.ts';
import { caddyBaseConfig } from '../../core/edge/caddy-route.ts';
import { aRouteSpec } from '../contracts/edge-router.case.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { available } from '../support/services.ts';

describe.skipIf(!(await available('caddy')))('CaddyEdgeRouter.reconcileControl', () => {
  let caddy: TestCaddy;
  let edge: CaddyEdgeRouter;
  let listen: { http: string; https: string };
  const onDemand = { issuers: [{ module: 'acme' }], on_demand: true };

  const read = async (path: string) => (await caddy.admin.read(path))?.value;

  beforeAll(async () => {
    caddy = await startCaddy();
    edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    listen = { http: `127.0.0.1:${caddy.httpPort}`, https: `127.0.0.1:${await freePort()}` };
  });
  afterAll(async () => {
    await caddy?.stop();
  });
  beforeEach(async () => {
    // The shipped shape: on-demand TLS for custom domains, plain HTTP until a domain is set.
    await caddy.admin.load(
      caddyBaseConfig({
        adminListen: new URL(caddy.adminUrl).host,
        httpListen: listen.http,
        serverName: caddy.serverName,
        onDemandTls: { askUrl: 'http://127.0.0.1:1/api/domains/ask' },
      }),
    );
  });

  it('adds the catch-all control route behind the app routes, once', async () => {
    await edge.put(aRouteSpec({ id: 'app' }));
    // Custom domains (on-demand TLS) need the HTTPS listener even without a control domain.
    expect(await edge.reconcileControl({ upstream: '127.0.0.1:3000', listen })).toStrictEqual([
      `listen ${listen.http} ${listen.https}`,
      'automatic_https',
      'control route (any host) → 127.0.0.1:3000',
    ]);
    const routes = (await read(`/config/apps/http/servers/${caddy.serverName}/routes`)) as {
      '@id': string;
    }[];
    expect(routes.map((r) => r['@id'])).toStrictEqual(['app', 'selfdevop-control']);
    expect(routes[1]).toStrictEqual(controlRoute(undefined, '127.0.0.1:3000'));
    expect(await edge.reconcileControl({ upstream: '127.0.0.1:3000', listen })).toStrictEqual([]);
    expect(await read('/config/apps/tls/automation/policies')).toStrictEqual([onDemand]);
  });

  it('serves a control domain over HTTPS with its own TLS policy, and undoes it without one', async () => {
    await edge.put(aRouteSpec({ id: 'app' }));
    const domain = 'deploy.localhost';
    expect(
      await edge.reconcileControl({ domain, upstream: '127.0.0.1:3000', listen }),
    ).toStrictEqual([
      `listen ${listen.http} ${listen.https}`,
      'automatic_https',
      `control route ${domain} → 127.0.0.1:3000`,
      `tls policy of ${domain}`,
    ]);
    const server = (await read(`/config/apps/http/servers/${caddy.serverName}`)) as {
      listen: string[];
      routes: { '@id': string }[];
    };
    expect(server.listen).toStrictEqual([listen.http, listen.https]);
    expect(server.routes.map((r) => r['@id'])).toStrictEqual(['selfdevop-control', 'app']);
    expect(await read('/config/apps/tls/automation/policies')).toStrictEqual([
      { '@id': 'selfdevop-control-tls', subjects: [domain] },
      onDemand,
    ]);
    expect(
      await edge.reconcileControl({ domain, upstream: '127.0.0.1:3000', listen }),
    ).toStrictEqual([]);
    // The control domain gets a certificate without the ask endpoint (down here) saying
    // yes: a *.localhost name is issued by Caddy's own CA, which the probe names. Without
    // the policy the handshake fails (on-demand, refused). Issuance follows the reload.
    const deadline = Date.now() + 10_000;
    let served = await readEdgeCertificate(listen.https, domain, 5_000);
    while (!/Caddy Local Authority/.test(served.detail ?? '') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      served = await readEdgeCertificate(listen.https, domain, 5_000);
    }
    expect(served.detail).toMatch(/Caddy Local Authority/);

    expect(await edge.reconcileControl({ upstream: '127.0.0.1:3000', listen })).toStrictEqual([
      'control route (any host) → 127.0.0.1:3000',
      'tls policy of (no control domain)',
    ]);
    expect(await read('/config/apps/tls/automation/policies')).toStrictEqual([onDemand]);
  });

  it('keeps an edge without custom domains on plain HTTP until a control domain is set', async () => {
    await caddy.admin.load(
      caddyBaseConfig({
        adminListen: new URL(caddy.adminUrl).host,
        httpListen: listen.http,
        serverName: caddy.serverName,
      }),
    );
    expect(await edge.reconcileControl({ upstream: '127.0.0.1:3000', listen })).toStrictEqual([
      'control route (any host) → 127.0.0.1:3000',
    ]);
    const server = (await read(`/config/apps/http/servers/${caddy.serverName}`)) as Record<
      string,
      unknown
    >;
    expect(server.listen).toStrictEqual([listen.http]);
    expect(server.automatic_https).toStrictEqual({ disable: true });
  });

  it('names the missing server instead of creating one', async () => {
    await caddy.admin.load({ admin: { listen: new URL(caddy.adminUrl).host } });
    await expect(edge.reconcileControl({ upstream: '127.0.0.1:3000', listen })).rejects.toThrow(
      /caddy has no server selfdevop .*is the edge's base config loaded\?/,
    );
  });
});
