import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import type { UpstreamRegistry } from '../../core/ports.ts';

const zone = 'upstreams.selfdevop.internal';

describe('the edge DNS server', () => {
  const registry = new MemoryUpstreamRegistry();
  let failing = false;
  const flaky: UpstreamRegistry = {
    set: (l, u) => registry.set(l, u),
    remove: (l) => registry.remove(l),
    get: async (l) => {
      if (failing) throw new Error('database is down');
      return registry.get(l);
    },
  };
  let dns: UpstreamDnsServer;
  let resolver: Resolver;

  beforeAll(async () => {
    dns = await startUpstreamDns({ registry: flaky, zone, host: '127.0.0.1', port: 0, cacheMs: 0 });
    resolver = new Resolver({ timeout: 1_000, tries: 1 });
    resolver.setServers([dns.address]);
  });
  afterAll(async () => dns?.close());

  it('answers a route as SRV records whose targets resolve to the upstream hosts', async () => {
    await registry.set('sdo-web', ['127.0.0.1:30001', '10.1.2.3:30002']);
    const srv = await resolver.resolveSrv(`_sdo-web._tcp.${zone}`);
    expect(srv.map((r) => `${r.name}:${r.port}`).sort()).toEqual([
      `ip-10-1-2-3.${zone}:30002`,
      `ip-127-0-0-1.${zone}:30001`,
    ]);
    expect(await resolver.resolve4(`ip-10-1-2-3.${zone}`)).toEqual(['10.1.2.3']);
  });

  it('answers a route that is not there with NXDOMAIN, and another zone with REFUSED', async () => {
    await expect(resolver.resolveSrv(`_sdo-missing._tcp.${zone}`)).rejects.toMatchObject({
      code: 'ENOTFOUND',
    });
    await expect(resolver.resolveSrv('_x._tcp.example.com')).rejects.toMatchObject({
      code: 'EREFUSED',
    });
  });

  it('answers SERVFAIL, not "no such route", when the registry cannot be read', async () => {
    failing = true;
    try {
      await expect(resolver.resolveSrv(`_sdo-web._tcp.${zone}`)).rejects.toMatchObject({
        code: 'ESERVFAIL',
      });
    } finally {
      failing = false;
    }
  });

  it('serves a change at once when the cache for it is dropped', async () => {
    const cached = await startUpstreamDns({
      registry,
      zone,
      host: '127.0.0.1',
      port: 0,
      cacheMs: 60_000,
    });
    const r = new Resolver({ timeout: 1_000, tries: 1 });
    r.setServers([cached.address]);
    try {
      await registry.set('sdo-cached', ['127.0.0.1:1000']);
      expect((await r.resolveSrv(`_sdo-cached._tcp.${zone}`))[0]!.port).toBe(1000);
      await registry.set('sdo-cached', ['127.0.0.1:2000']);
      expect((await r.resolveSrv(`_sdo-cached._tcp.${zone}`))[0]!.port).toBe(1000);
      cached.invalidate('sdo-cached');
      expect((await r.resolveSrv(`_sdo-cached._tcp.${zone}`))[0]!.port).toBe(2000);
    } finally {
      await cached.close();
    }
  });
});
