import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryUsageSink } from '../../../adapters/metrics/usage-memory.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import { UsageCollector } from '../../../core/stats/collect.ts';
import { aNode, anOrg } from '../releases/builders.ts';
import { aDomain, aProject, aService, anEnvironment } from '../../contracts/store/builders.ts';

describe('the usage collector', () => {
  it('measures the nodes of every org that has one, routed services or not, and never asks a lost node', async () => {
    const store = new MemoryStore();
    const runtime = new MemoryRuntime();
    // Org 1 runs only workers and data services (no route); org 2's only node is lost.
    await store.withOrg('org_000001', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000001' }));
      await r.nodes.insert(
        aNode({ id: 'node_000001', orgId: 'org_000001', dockerHost: 'tcp://10.0.0.1:2376' }),
      );
    });
    await store.withOrg('org_000002', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000002', name: 'two' }));
      await r.nodes.insert(
        aNode({
          id: 'node_000002',
          orgId: 'org_000002',
          dockerHost: 'tcp://10.0.0.2:2376',
          reachability: 'lost',
        }),
      );
    });
    const collector = new UsageCollector({
      store,
      runtime,
      vault: new MemoryKeyVault(),
      clock: new ManualClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      sink: new MemoryUsageSink(),
      config: { nodeProbeImage: 'selfdevop/debian:bookworm', nodeProbeEverySeconds: 60 },
    });
    await collector.collect();
    const asked = new Set(runtime.calls.map((c) => c.dockerHost));
    expect(asked.has('tcp://10.0.0.1:2376')).toBe(true);
    expect(asked.has('tcp://10.0.0.2:2376')).toBe(false);
  });

  it('hands the sink each active domain’s certificate expiry from the store, and no other domain’s', async () => {
    const store = new MemoryStore();
    await store.withOrg('org_000001', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000001' }));
      await r.nodes.insert(aNode({ id: 'node_000001', orgId: 'org_000001' }));
      await r.projects.insert(aProject('org_000001', { id: 'prj_1' }));
      await r.environments.insert(anEnvironment('org_000001', 'prj_1', { id: 'env_1' }));
      await r.services.insert(aService('org_000001', 'prj_1', { id: 'svc_1' }));
      await r.domains.insert(
        aDomain('org_000001', 'svc_1', 'env_1', {
          hostname: 'shop.example.test',
          status: 'active',
          certNotAfter: '2027-01-01T00:00:00.000Z',
          certIssuer: 'Pebble Intermediate CA',
        }),
      );
      // Not active (a failed one keeps its last expiry) or never certified: not exported.
      await r.domains.insert(
        aDomain('org_000001', 'svc_1', 'env_1', {
          hostname: 'gone.example.test',
          status: 'failed',
          certNotAfter: '2027-01-01T00:00:00.000Z',
        }),
      );
      await r.domains.insert(
        aDomain('org_000001', 'svc_1', 'env_1', { hostname: 'new.example.test' }),
      );
    });
    const sink = new MemoryUsageSink();
    const collector = new UsageCollector({
      store,
      runtime: new MemoryRuntime(),
      vault: new MemoryKeyVault(),
      clock: new ManualClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      sink,
      config: { nodeProbeImage: 'selfdevop/debian:bookworm', nodeProbeEverySeconds: 60 },
    });
    const snapshot = await collector.collect();
    expect(snapshot.certificates).toEqual([
      {
        orgId: 'org_000001',
        serviceId: 'svc_1',
        environmentId: 'env_1',
        hostname: 'shop.example.test',
        notAfter: '2027-01-01T00:00:00.000Z',
      },
    ]);
  });

  it('measures the messages waiting in each queue it is given, and leaves out one it cannot ask', async () => {
    const queue = new MemoryQueue();
    await queue.send('domain-checks', { n: 1 });
    await queue.send('domain-checks', { n: 2 });
    const collector = new UsageCollector({
      store: new MemoryStore(),
      runtime: new MemoryRuntime(),
      vault: new MemoryKeyVault(),
      clock: new ManualClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      sink: new MemoryUsageSink(),
      config: { nodeProbeImage: 'selfdevop/debian:bookworm', nodeProbeEverySeconds: 60 },
      // 'bad name!' is refused by the queue: left out, never reported as 0.
      queueDepths: { queue, names: ['domain-checks', 'release-steps', 'bad name!'] },
    });
    expect((await collector.collect()).queues).toEqual([
      { queue: 'domain-checks', depth: 2 },
      { queue: 'release-steps', depth: 0 },
    ]);
  });
  it('hands the sink each replica’s restarts within the crash-loop window (the cloud alarm’s figure), counted once per collection', async () => {
    const store = new MemoryStore();
    // The engine's restart count of each container, as inspect answers it.
    const restarts = new Map<string, number>();
    const runtime = new (class extends MemoryRuntime {
      override async inspect(...a: Parameters<MemoryRuntime['inspect']>) {
        const info = await super.inspect(...a);
        return info && { ...info, restarts: restarts.get(info.id) ?? 0 };
      }
    })();
    runtime.addImage('acme/web:1');
    await store.withOrg('org_000001', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000001' }));
      await r.nodes.insert(
        aNode({ id: 'node_000001', orgId: 'org_000001', dockerHost: 'tcp://10.0.0.1:2376' }),
      );
    });
    const target = { dockerHost: 'tcp://10.0.0.1:2376' } as Parameters<MemoryRuntime['start']>[0];
    const labels = {
      'selfdevop.org': 'org_000001',
      'selfdevop.role': 'web',
      'selfdevop.service': 'svc_web',
      'selfdevop.environment': 'env_prod',
      'selfdevop.release': 'rel_1',
    };
    const c = await runtime.start(target, {
      name: 'web-1',
      image: 'acme/web:1',
      env: {},
      labels,
      restartPolicy: 'unless-stopped',
    });
    const clock = new ManualClock();
    const sink = new MemoryUsageSink();
    const collector = new UsageCollector({
      store,
      runtime,
      vault: new MemoryKeyVault(),
      clock,
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      sink,
      config: { nodeProbeImage: 'selfdevop/debian:bookworm', nodeProbeEverySeconds: 60 },
    });
    const windowOf = async () => {
      const snap = await collector.collect();
      return snap.replicas.find((r) => r.serviceId === 'svc_web')?.restartsInWindow;
    };
    restarts.set(c.id, 7);
    expect(await windowOf()).toBe(0); // first sight: the 7 are from before
    clock.advance(60_000);
    restarts.set(c.id, 9);
    expect(await windowOf()).toBe(2);
    clock.advance(60_000);
    restarts.set(c.id, 10);
    expect(await windowOf()).toBe(3);
    // The snapshot the sink got is the one collect answered.
    expect(sink.snapshots.at(-1)?.replicas[0]?.restartsInWindow).toBe(3);
    // Past the 15-minute window the early restarts no longer count.
    clock.advance(15 * 60_000);
    expect(await windowOf()).toBe(0);
  });

  it('reads the edge each collection and hands the sink each live service environment’s traffic by its default and custom hosts, with its own thresholds; an unreadable edge is a gap', async () => {
    const store = new MemoryStore();
    const target = {
      orgId: 'org_000001',
      serviceId: 'svc_000123',
      serviceName: 'web',
      environmentId: 'env_000001',
      environmentName: 'production',
      customHosts: ['shop.example.test'],
      thresholds: { http_5xx_spike: 0.5 },
    };
    // The live targets as selfdevop_alert_targets() answers them (its own tests cover the join).
    Object.defineProperty(store, 'alertTargetLookup', {
      value: { alertTargets: async () => [target] },
    });
    const counters = (requests: number, e5: number, openConnections = 0) => ({
      requests,
      responses4xx: 0,
      responses5xx: e5,
      buckets: [
        { le: 0.1, count: requests },
        { le: Infinity, count: requests },
      ],
      openConnections,
    });
    let reading: unknown = [];
    const edge = {
      traffic: async () => {
        if (reading instanceof Error) throw reading;
        return reading as (ReturnType<typeof counters> & { host: string })[];
      },
    };
    const clock = new ManualClock();
    const logger = new MemoryLogger();
    const collector = new UsageCollector({
      store,
      runtime: new MemoryRuntime(),
      vault: new MemoryKeyVault(),
      clock,
      ids: new SequenceIds(),
      logger,
      sink: new MemoryUsageSink(),
      config: { nodeProbeImage: 'selfdevop/debian:bookworm', nodeProbeEverySeconds: 60 },
      edgeTraffic: { edge, edgeDomain: 'Apps.Example.' },
    });
    reading = [{ host: 'web-production-000123.apps.example', ...counters(100, 0) }];
    expect((await collector.collect()).traffic).toEqual([]); // the baseline
    clock.advance(60_000);
    reading = [
      { host: 'web-production-000123.apps.example', ...counters(150, 10, 2) },
      { host: 'shop.example.test', ...counters(50, 10, 1) },
      { host: 'other-production-999999.apps.example', ...counters(500, 500, 40) },
    ];
    const [t] = (await collector.collect()).traffic!;
    expect(t).toMatchObject({
      orgId: 'org_000001',
      serviceId: 'svc_000123',
      environmentId: 'env_000001',
      requests: 100,
      responses5xx: 20,
      http5xxShare: 0.2,
      // Its default and custom hosts' gauges now; not the other service's.
      openConnections: 3,
    });
    // 20 % against the service's own 50 %: under it.
    expect(t!.ofThreshold.http_5xx_spike).toBeCloseTo(0.4, 10);
    clock.advance(60_000);
    reading = new Error('connect ECONNREFUSED 10.0.0.10:2019');
    const snap = await collector.collect();
    expect(snap.traffic).toBeUndefined();
    expect(logger.entries.filter((e) => String(e.err).includes('ECONNREFUSED'))).toHaveLength(1);
  });
});
