/**
 * The Caddy edge's custom-domain capabilities against a real Caddy: changing only a
 * route's hosts (never undoing a concurrent upstream switch) and reading certificates
 * back with a TLS handshake.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { changeRouteHosts } from '../../core/domains/route-hosts.ts';
import type { RouteSpec } from '../../core/ports.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { available } from '../support/services.ts';

const route = (o: Partial<RouteSpec> = {}): RouteSpec => ({
  id: 'sdo-svc_1-env_1',
  hosts: ['web-production-abc123.apps.example.test'],
  upstreams: ['127.0.0.1:20001'],
  sticky: false,
  drainSeconds: 300,
  ...o,
});

describe.skipIf(!(await available('caddy')))('CaddyEdgeRouter custom-domain hooks', () => {
  let caddy: TestCaddy;
  let edge: CaddyEdgeRouter;

  beforeAll(async () => {
    caddy = await startCaddy();
    edge = new CaddyEdgeRouter({
      adminUrl: caddy.adminUrl,
      server: caddy.serverName,
      tlsAddress: `127.0.0.1:${caddy.httpPort}`,
      tlsTimeoutMs: 3000,
    });
  });
  afterAll(async () => {
    await caddy?.stop();
  });
  beforeEach(async () => {
    await caddy.reset();
  });

  it('answers null for a route that does not exist (the service never served)', async () => {
    expect(await edge.updateHosts('sdo-nothing-here', { add: ['shop.example.com'] })).toBeNull();
    expect(await edge.list()).toEqual([]);
  });

  it('adds and removes hosts, keeping the rest of the route exactly as it was', async () => {
    await edge.put(route({ sticky: true, upstreams: ['127.0.0.1:20001', '127.0.0.1:20002'] }));
    const before = JSON.parse((await caddy.admin.request('GET', `/id/${route().id}`)).body);
    const added = await edge.updateHosts(route().id, {
      add: ['shop.example.com', 'www.example.com'],
    });
    expect(added).toEqual(
      route({
        sticky: true,
        upstreams: ['127.0.0.1:20001', '127.0.0.1:20002'],
        hosts: [route().hosts[0]!, 'shop.example.com', 'www.example.com'],
      }),
    );
    const after = JSON.parse((await caddy.admin.request('GET', `/id/${route().id}`)).body);
    expect(after.handle).toEqual(before.handle);
    // Adding a host that is there already changes nothing.
    expect((await edge.updateHosts(route().id, { add: ['shop.example.com'] }))!.hosts).toHaveLength(
      3,
    );
    const removed = await edge.updateHosts(route().id, { remove: ['shop.example.com'] });
    expect(removed!.hosts).toEqual([route().hosts[0], 'www.example.com']);
  });

  it('never leaves a route without a host', async () => {
    await edge.put(route());
    expect((await edge.updateHosts(route().id, { remove: route().hosts }))!.hosts).toEqual(
      route().hosts,
    );
  });

  it('refuses a host Caddy could not be given safely', async () => {
    await edge.put(route());
    await expect(edge.updateHosts(route().id, { add: ['bad host"}'] })).rejects.toMatchObject({
      details: { field: 'hosts' },
    });
    expect((await edge.get(route().id))!.hosts).toEqual(route().hosts);
  });

  it('never undoes an upstream switched at the same time by another writer', async () => {
    const other = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    await edge.put(route());
    for (let i = 0; i < 8; i++) {
      const upstream = `127.0.0.1:${21000 + i}`;
      // A deploy reads the hosts, then puts its new upstream; a domain joins meanwhile.
      const existing = (await other.get(route().id))!;
      await Promise.all([
        other.put({ ...existing, upstreams: [upstream] }),
        edge.updateHosts(route().id, { add: [`d${i}.example.com`] }),
      ]);
      expect((await edge.get(route().id))!.upstreams).toEqual([upstream]);
      // The deploy may have dropped the new host (it wrote what it had read); the worker re-adds it.
      await changeRouteHosts(edge, route().id, { add: [`d${i}.example.com`] });
      expect((await edge.get(route().id))!.hosts).toContain(`d${i}.example.com`);
    }
  });

  it('reports a certificate as missing when the edge answers no TLS, and Caddy as unavailable when nothing listens', async () => {
    const cert = await edge.certificate('shop.example.com');
    expect(cert).toMatchObject({ status: 'missing', issuer: null });
    expect(cert.detail).toMatch(/no certificate for shop\.example\.com/);
    const nobody = new CaddyEdgeRouter({
      adminUrl: caddy.adminUrl,
      tlsAddress: `127.0.0.1:${await freePort()}`,
    });
    await expect(nobody.certificate('shop.example.com')).rejects.toMatchObject({
      code: 'caddy_unavailable',
    });
    await expect(
      new CaddyEdgeRouter({ adminUrl: caddy.adminUrl }).certificate('shop.example.com'),
    ).rejects.toThrow(/no tlsAddress/);
  });
});
