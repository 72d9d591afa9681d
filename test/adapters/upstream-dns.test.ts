import { Resolver } from 'node:dns/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import type { UpstreamRegistry } from '../../core/ports.ts';

const zone = 'upstreams.selfdevop.internal';

/** An edge DNS server on a loopback port over `registry`, and a resolver that asks only it. */
async function serve(
  registry: Parameters<typeof startUpstreamDns>[0]['registry'],
  cacheMs: number,
) {
  const dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs });
  const r = new Resolver({ timeout: 1_000, tries: 1 });
  r.setServers([dns.address]);
  return { dns, r };
}

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

  it('serves a change at once when the cache for it is dropped (a registry without a feed)', async () => {
    const featureless = {
      set: registry.set.bind(registry),
      get: registry.get.bind(registry),
      remove: registry.remove.bind(registry),
    };
    const { dns: cached, r } = await serve(featureless, 60_000);
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

describe('the edge DNS server over a registry with a feed', () => {
  /** Counts the registry's reads, so a test can tell a mirrored answer from a read. */
  class CountingRegistry extends MemoryUpstreamRegistry {
    gets = 0;
    alls = 0;
    override async get(label: string) {
      this.gets++;
      return super.get(label);
    }
    override async all() {
      this.alls++;
      return super.all();
    }
  }
  const srv = (label: string) => `_${label}._tcp.${zone}`;
  const ports = async (r: Resolver, label: string) =>
    (await r.resolveSrv(srv(label))).map((x) => x.port).sort();
  const eventually = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await check()); i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
  };

  it('answers from its mirror without reading the registry, and follows each write', async () => {
    const registry = new CountingRegistry();
    await registry.set('sdo-a', ['127.0.0.1:1001', '127.0.0.1:1002']);
    // A long answer cache: only the feed can make a write show.
    const { dns, r } = await serve(registry, 60_000);
    try {
      await eventually(async () => registry.alls > 0);
      const before = registry.gets;
      for (let i = 0; i < 20; i++) expect(await ports(r, 'sdo-a')).toEqual([1001, 1002]);
      expect(registry.gets).toBe(before);
      await registry.set('sdo-a', ['127.0.0.1:2001']);
      await eventually(async () => (await ports(r, 'sdo-a'))[0] === 2001);
      expect(await ports(r, 'sdo-a')).toEqual([2001]);
      await registry.remove('sdo-a');
      await eventually(() =>
        r.resolveSrv(srv('sdo-a')).then(
          () => false,
          () => true,
        ),
      );
      await expect(r.resolveSrv(srv('sdo-a'))).rejects.toMatchObject({ code: 'ENOTFOUND' });
    } finally {
      await dns.close();
    }
  });

  it('reads the registry for a route its mirror does not hold yet', async () => {
    const registry = new CountingRegistry();
    // A feed whose words never come: the route must still be served, from a read.
    const deaf = Object.assign(Object.create(registry) as CountingRegistry, {
      watch: async (onChange: (label: string | null) => void) => {
        queueMicrotask(() => onChange(null));
        return { close: async () => undefined };
      },
    });
    const { dns, r } = await serve(deaf, 0);
    try {
      await registry.set('sdo-new', ['127.0.0.1:3001']);
      expect(await ports(r, 'sdo-new')).toEqual([3001]);
      expect(deaf.gets).toBeGreaterThan(0);
    } finally {
      await dns.close();
    }
  });

  it('reloads every route after the feed says writes may have been missed', async () => {
    const registry = new CountingRegistry();
    let say: (label: string | null) => void = () => undefined;
    const lossy = Object.assign(Object.create(registry) as CountingRegistry, {
      watch: async (onChange: (label: string | null) => void) => {
        say = onChange;
        queueMicrotask(() => onChange(null));
        return { close: async () => undefined };
      },
    });
    await registry.set('sdo-r', ['127.0.0.1:4001']);
    const { dns, r } = await serve(lossy, 60_000);
    try {
      expect(await ports(r, 'sdo-r')).toEqual([4001]);
      // Written while the feed was away: no word of it.
      await registry.set('sdo-r', ['127.0.0.1:4002']);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await ports(r, 'sdo-r')).toEqual([4001]);
      say(null);
      await eventually(async () => (await ports(r, 'sdo-r'))[0] === 4002);
      expect(await ports(r, 'sdo-r')).toEqual([4002]);
    } finally {
      await dns.close();
    }
  });
});
