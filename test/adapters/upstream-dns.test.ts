import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startUpstreamDns,
  UpstreamDnsStartFailed,
  type SpawnDnsThread,
  type UpstreamDnsServer,
} from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
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

describe('the edge DNS server while the main event loop is busy', () => {
  /**
   * Caddy's side: a resolver in another process, asking one route's SRV every 5 ms for at
   * most 3 s, printing "ready" once it has an answer, then each answer's wall-clock time and
   * latency as JSON lines.
   */
  const asker = `
    const { Resolver } = require('node:dns/promises');
    const [server, name] = process.argv.slice(1);
    const r = new Resolver({ timeout: 3000, tries: 1 });
    r.setServers([server]);
    (async () => {
      await r.resolveSrv(name);
      console.log('ready');
      const end = Date.now() + 3000;
      for (let i = 0; i < 400 && Date.now() < end; i++) {
        const t0 = performance.now();
        const ok = await r.resolveSrv(name).then((a) => a.length === 2, () => false);
        console.log(JSON.stringify({ at: Date.now(), ms: performance.now() - t0, ok }));
        await new Promise((res) => setTimeout(res, 5));
      }
    })();`;

  it('answers a mirrored route from its own thread while the main thread is blocked', async () => {
    const registry = new MemoryUpstreamRegistry();
    await registry.set('sdo-busy', ['127.0.0.1:5001', '127.0.0.1:5002']);
    const dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0 });
    const child = spawn(process.execPath, ['-e', asker, dns.address, `_sdo-busy._tcp.${zone}`]);
    try {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
      const deadline = Date.now() + 20_000;
      while (!out.includes('ready') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(out).toContain('ready');
      // The main thread does nothing else for 1.5 s: a release engine's long synchronous
      // stretch, exaggerated. An answer that needed this loop would wait the whole time.
      const blockedFrom = Date.now();
      while (Date.now() < blockedFrom + 1_500) {
        /* busy */
      }
      const blockedUntil = Date.now();
      await new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const answers = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { at: number; ms: number; ok: boolean });
      const during = answers.filter((a) => a.at > blockedFrom + 100 && a.at < blockedUntil);
      // Answered all along (a loaded machine answers fewer, but not none), each well within
      // the block: the answer path does not wait for the main thread.
      expect(during.length).toBeGreaterThan(10);
      expect(during.every((a) => a.ok)).toBe(true);
      expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(500);
    } finally {
      child.kill();
      await dns.close();
    }
  }, 30_000);
});

describe("the edge DNS server's socket thread", () => {
  const srv = (label: string) => `_${label}._tcp.${zone}`;
  const resolverOf = (address: string) => {
    const r = new Resolver({ timeout: 500, tries: 1 });
    r.setServers([address]);
    return r;
  };
  /** Spawns the real thread and keeps each Worker, so a test can end one. */
  const watched = () => {
    const workers: Worker[] = [];
    const spawnThread: SpawnDnsThread = (source, options) => {
      const w = new Worker(source, options);
      workers.push(w);
      return w;
    };
    return { workers, spawnThread };
  };
  const exited = (w: Worker) =>
    new Promise<number>((resolve) => {
      if (w.threadId === -1) resolve(0);
      else w.once('exit', resolve);
    });

  it('binds and answers when the mirror loads slower than the thread binds', async () => {
    // The Compose worker's hang: the first thread bound while the mirror's load still waited
    // on PostgreSQL, and its "bound" was dropped by a Worker nobody listened to yet.
    class SlowLoad extends MemoryUpstreamRegistry {
      override async all() {
        await new Promise((resolve) => setTimeout(resolve, 400));
        return super.all();
      }
    }
    const registry = new SlowLoad();
    await registry.set('sdo-slow', ['127.0.0.1:6001']);
    const started = Date.now();
    const dns = await startUpstreamDns({
      registry,
      zone,
      host: '127.0.0.1',
      port: 0,
      bindTimeoutMs: 5_000,
    });
    try {
      expect(Date.now() - started).toBeLessThan(4_000);
      const answer = await resolverOf(dns.address).resolveSrv(srv('sdo-slow'));
      expect(answer.map((a) => a.port)).toEqual([6001]);
    } finally {
      await dns.close();
    }
  });

  it('fails start-up with the OS error when its port is taken', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => taken.bind(0, '127.0.0.1', resolve));
    const port = taken.address().port;
    try {
      const registry = new MemoryUpstreamRegistry();
      await expect(
        startUpstreamDns({ registry, zone, host: '127.0.0.1', port }),
      ).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', port });
    } finally {
      taken.close();
    }
  });

  it('fails start-up naming the cause when its thread cannot load', async () => {
    const { workers, spawnThread } = watched();
    const broken: SpawnDnsThread = (source, options) =>
      spawnThread(`throw new Error('dgram is not in this runtime');\n${source}`, options);
    const start = startUpstreamDns({
      registry: new MemoryUpstreamRegistry(),
      zone,
      host: '127.0.0.1',
      port: 0,
      spawnThread: broken,
    });
    await expect(start).rejects.toBeInstanceOf(UpstreamDnsStartFailed);
    await expect(start).rejects.toThrow(
      /upstream DNS thread failed to load: dgram is not in this runtime/,
    );
    await exited(workers[0]!);
  });

  it('fails start-up within its bound when its thread never binds', async () => {
    const { workers, spawnThread } = watched();
    const idle: SpawnDnsThread = (_source, options) =>
      spawnThread('setInterval(() => undefined, 1000);', options);
    const started = Date.now();
    await expect(
      startUpstreamDns({
        registry: new MemoryUpstreamRegistry(),
        zone,
        host: '127.0.0.1',
        port: 0,
        bindTimeoutMs: 300,
        spawnThread: idle,
      }),
    ).rejects.toThrow(/upstream DNS thread did not bind 127\.0\.0\.1:0 within 0\.3 s/);
    expect(Date.now() - started).toBeLessThan(3_000);
    // Not left running behind the failed start.
    await exited(workers[0]!);
  });

  it('starts another thread on the same port when its thread dies, with every route', async () => {
    const registry = new MemoryUpstreamRegistry();
    await registry.set('sdo-kept', ['127.0.0.1:7001', '127.0.0.1:7002']);
    const logger = new MemoryLogger();
    const { workers, spawnThread } = watched();
    const dns = await startUpstreamDns({
      registry,
      zone,
      host: '127.0.0.1',
      port: 0,
      restartDelayMs: 20,
      logger,
      spawnThread,
    });
    try {
      const r = resolverOf(dns.address);
      expect((await r.resolveSrv(srv('sdo-kept'))).length).toBe(2);
      await workers[0]!.terminate();
      const diedAt = Date.now();
      let ports: number[] = [];
      for (let i = 0; i < 100 && ports.length !== 2; i++) {
        ports = await r.resolveSrv(srv('sdo-kept')).then(
          (a) => a.map((x) => x.port).sort(),
          () => [],
        );
        if (ports.length !== 2) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(ports).toEqual([7001, 7002]);
      expect(Date.now() - diedAt).toBeLessThan(5_000);
      expect(workers).toHaveLength(2);
      expect(logger.entries.some((e) => e.level === 'error' && /thread died/.test(e.msg!))).toBe(
        true,
      );
      // The new thread follows writes like the first did.
      await registry.set('sdo-kept', ['127.0.0.1:7003']);
      for (let i = 0; i < 100 && ports[0] !== 7003; i++) {
        ports = (await r.resolveSrv(srv('sdo-kept'))).map((x) => x.port);
        if (ports[0] !== 7003) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(ports).toEqual([7003]);
    } finally {
      await dns.close();
    }
  });

  it('stops its thread and frees its port on close', async () => {
    const { workers, spawnThread } = watched();
    const dns = await startUpstreamDns({
      registry: new MemoryUpstreamRegistry(),
      zone,
      host: '127.0.0.1',
      port: 0,
      spawnThread,
    });
    const gone = exited(workers[0]!);
    await dns.close();
    await gone;
    // The same port binds again: the socket went with the thread.
    const port = Number(dns.address.split(':').pop());
    const again = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(port, '127.0.0.1', resolve);
    });
    again.close();
  });

  it("reports its thread's own heap while it runs, and none once closed", async () => {
    const { workers, spawnThread } = watched();
    const dns = await startUpstreamDns({
      registry: new MemoryUpstreamRegistry(),
      zone,
      host: '127.0.0.1',
      port: 0,
      spawnThread,
    });
    const heap = await dns.threadHeap();
    // The thread's isolate, not this one: the same figures as its Worker's own statistics.
    const own = await workers[0]!.getHeapStatistics();
    expect(heap!.used).toBeGreaterThan(0);
    expect(heap!.total).toBeGreaterThanOrEqual(heap!.used);
    expect(Math.abs(heap!.total - own.total_heap_size)).toBeLessThanOrEqual(1_048_576);
    await dns.close();
    expect(await dns.threadHeap()).toBeNull();
  });
});
