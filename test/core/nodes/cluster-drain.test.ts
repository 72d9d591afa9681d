/**
 * A Swarm member's drain, refused before it reaches a manager (the real drain is in
 * test/swarm/): a process that reaches no engine (the cloud API Lambda) says so, an engine
 * node has no members, a deployer may not drain, and an unknown node is a 404.
 */
import { describe, expect, it } from 'vitest';
import { drainClusterMember, undrainClusterMember } from '../../../core/nodes/cluster.ts';
import { aNode } from '../releases/builders.ts';
import { deployer, setup } from '../releases/harness.ts';

const admin = { ...deployer, role: 'admin' as const };

describe('draining a Swarm member', () => {
  it('is refused with a clear error where it cannot apply', async () => {
    const h = await setup({ replicas: 1 });
    await h.repos((r) =>
      r.nodes.insert(
        aNode({
          id: 'node_swarm9',
          name: 'swarm',
          kind: 'swarm',
          dockerHost: 'unix:///run/sdo-node7/docker.sock',
          address: '10.213.0.17',
        }),
      ),
    );
    // The in-memory runtime, like the cloud API's, reaches no Swarm manager.
    for (const call of [drainClusterMember, undrainClusterMember])
      await expect(call(h.deps, admin, 'node_swarm9', 'sdo-node8', null)).rejects.toMatchObject({
        code: 'cluster_unreachable_here',
        message: expect.stringContaining('cannot change the members of swarm swarm'),
      });
    const engine = (await h.repos((r) => r.nodes.list({ limit: 10 }))).items.find(
      (n) => n.kind === 'engine',
    )!;
    await expect(
      drainClusterMember(h.deps, admin, engine.id, 'sdo-node8', null),
    ).rejects.toMatchObject({ code: 'node_not_swarm' });
    await expect(
      drainClusterMember(h.deps, deployer, 'node_swarm9', 'sdo-node8', null),
    ).rejects.toMatchObject({ kind: 'forbidden' });
    await expect(
      drainClusterMember(h.deps, admin, 'node_nothing', 'sdo-node8', null),
    ).rejects.toMatchObject({ code: 'node_not_found' });
  });
});
