import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryUsageSink } from '../../../adapters/metrics/usage-memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import { UsageCollector } from '../../../core/stats/collect.ts';
import { aNode, anOrg } from '../releases/builders.ts';

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
});
