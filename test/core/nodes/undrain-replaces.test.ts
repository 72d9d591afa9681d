/**
 * Capacity appearing (a node undrained) re-tries the replicas that found no place before:
 * `shortReleases` by equality, and undrain queuing the reshape that restores the count.
 */
import { describe, expect, it } from 'vitest';
import { shortReleases, undrainNode } from '../../../core/nodes/drain.ts';
import type { Release } from '../../../core/models.ts';
import { aNode } from '../releases/builders.ts';
import { deployer, setup } from '../releases/harness.ts';

const admin = { ...deployer, role: 'admin' as const };

const release = (over: Partial<Release>): Release =>
  ({
    id: 'rel_1',
    status: 'completed',
    replicaSet: {
      replicas: [
        { index: 0, nodeId: 'n1', containerId: 'c0', upstream: '10.0.0.1:1', health: 'healthy' },
        { index: 1, nodeId: 'n2', containerId: 'c1', upstream: '10.0.0.2:1', health: 'healthy' },
      ],
    },
    ...over,
  }) as Release;

describe('shortReleases', () => {
  it('names serving releases with fewer answering replicas than asked, and no release in flight', () => {
    const nodes = [aNode({ id: 'n1' }), aNode({ id: 'n2', reachability: 'lost' })];
    const full = release({ id: 'rel_full' });
    const lostOne = release({ id: 'rel_lost' });
    const inFlight = release({ id: 'rel_next', status: 'health_validating' });
    const out = shortReleases(
      [
        { service: { id: 'a', replicas: 1 }, live: full, inFlight: null },
        { service: { id: 'b', replicas: 2 }, live: lostOne, inFlight: null },
        { service: { id: 'c', replicas: 3 }, live: full, inFlight: inFlight },
        { service: { id: 'd', replicas: 0 }, live: null, inFlight: null },
      ],
      nodes,
    );
    expect(out.map((s) => [s.service.id, s.live.id])).toEqual([['b', 'rel_lost']]);
  });
});

describe('undrain', () => {
  it('queues a reshape for a release short of its replicas, which restores the count', async () => {
    const h = await setup({ replicas: 2 });
    await h.repos((r) =>
      r.nodes.insert(
        aNode({
          id: 'node_000002',
          name: 'node-2',
          dockerHost: 'unix:///n2.sock',
          address: '127.0.0.2',
        }),
      ),
    );
    const v1 = await h.deploy('shop/web:1');
    expect(v1.replicaSet!.replicas).toHaveLength(2);
    // Asked for 3 when they did not fit (the count the service wants, one short).
    await h.repos((r) => r.services.update(h.service.id, { replicas: 3 }));
    await undrainNode(h.deps, admin, 'node_000002', null);
    await h.drain();
    const after = await h.release(v1.id);
    expect(after.replicaSet!.replicas.filter((r) => r.health === 'healthy')).toHaveLength(3);
    const audit = await h.repos((r) => r.audit.list({ limit: 1 }, { action: 'node.undrained' }));
    expect(audit.items[0]!.data).toEqual({ name: 'node-2', replacing: [v1.id] });
    // Nothing short any more: undraining again queues nothing.
    const queued = h.queue.of('release-steps').length;
    await undrainNode(h.deps, admin, 'node_000002', null);
    expect(h.queue.of('release-steps')).toHaveLength(queued);
  });
});
