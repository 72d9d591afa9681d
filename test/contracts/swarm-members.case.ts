/**
 * The SwarmMembers contract: what the API's Swarm member routes answer (core/nodes/cluster.ts
 * `readNodeCluster`, `requestMemberDrain`, `requestMemberUndrain`) wherever the manager is
 * reached from: in the API's own process (self-hosted), or by the worker function the cloud
 * API invokes. Same results, same errors word for word, same audit rows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Unavailable } from '../../core/errors.ts';
import {
  readNodeCluster,
  requestMemberDrain,
  requestMemberUndrain,
  type ClusterApiDeps,
} from '../../core/nodes/cluster.ts';
import type { ClusterMember, ContainerRuntime, DockerTarget } from '../../core/ports.ts';
import { NotFound } from '../../core/errors.ts';
import { aNode } from '../core/releases/builders.ts';
import { deployer, setup, type Harness } from '../core/releases/harness.ts';

export const swarmNodeId = 'node_swarm7';
const managerHost = 'unix:///run/sdo-node7/docker.sock';
const admin = { ...deployer, role: 'admin' as const };
const ctx = { requestId: 'req-swarm-1', ip: '198.51.100.7' };

/** A Swarm of three managers as its manager answers, which can be made to stop answering. */
export class FakeSwarm {
  managerDown = false;
  readonly members: ClusterMember[] = ['sdo-node7', 'sdo-node8', 'sdo-node9'].map((h, i) => ({
    id: `mbr${i + 7}`,
    hostname: h,
    address: `10.213.0.${17 + i}`,
    role: 'manager',
    leader: i === 0,
    availability: 'active',
    state: 'ready',
    labels: {},
    engineVersion: '28.0.0',
  }));

  /** `runtime` with the Swarm calls the engine runtime has (adapters/runtime/swarm.ts). */
  runtime(runtime: ContainerRuntime): ContainerRuntime {
    const swarm = Object.create(runtime) as ContainerRuntime;
    const up = (t: DockerTarget) => {
      // What the adapter throws when the connection fails (SwarmRuntime.call).
      if (this.managerDown) throw new Unavailable('docker', `${t.dockerHost}: ECONNREFUSED`);
    };
    swarm.clusterMembers = async (t) => {
      up(t);
      return this.members.map((m) => ({ ...m }));
    };
    swarm.setMemberAvailability = async (t, ref, availability) => {
      up(t);
      const m = this.members.find((x) => x.id === ref || x.hostname === ref);
      if (!m) throw new NotFound('cluster_member', ref);
      m.availability = availability;
      return { ...m };
    };
    return swarm;
  }
}

export interface SwarmMembersUnderTest {
  /** What the API's routes are given. */
  api: ClusterApiDeps;
  h: Harness;
  swarm: FakeSwarm;
  close(): Promise<void>;
}

/**
 * `make(h, swarm)` wires the API side; `h.deps` with `swarm.runtime(h.runtime)` is the
 * process that reaches the manager.
 */
export function runSwarmMembersContract(
  name: string,
  make: (h: Harness, swarm: FakeSwarm) => Promise<SwarmMembersUnderTest>,
): void {
  describe(`SwarmMembers contract: ${name}`, () => {
    const open: SwarmMembersUnderTest[] = [];
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });

    async function given(): Promise<SwarmMembersUnderTest> {
      const h = await setup({ replicas: 1 });
      await h.repos((r) =>
        r.nodes.insert(
          aNode({
            id: swarmNodeId,
            name: 'swarm',
            kind: 'swarm',
            dockerHost: managerHost,
            address: '10.213.0.17',
          }),
        ),
      );
      const sut = await make(h, new FakeSwarm());
      open.push(sut);
      return sut;
    }

    const audit = (h: Harness, action: string) =>
      h.repos(async (r) => (await r.audit.list({ limit: 10 }, { action })).items);

    it('reads the members from the manager', async () => {
      const { api } = await given();
      const cluster = await readNodeCluster(api, deployer, swarmNodeId);
      expect(cluster).toMatchObject({ nodeId: swarmNodeId, available: true, reason: null });
      expect(cluster.members.map((m) => [m.hostname, m.availability, m.leader])).toEqual([
        ['sdo-node7', 'active', true],
        ['sdo-node8', 'active', false],
        ['sdo-node9', 'active', false],
      ]);
    });

    it('drains a member by hostname and undrains it by id, audited with the request', async () => {
      const { api, h, swarm } = await given();
      const drained = await requestMemberDrain(api, admin, swarmNodeId, 'sdo-node8', ctx);
      expect(drained).toEqual({
        nodeId: swarmNodeId,
        member: expect.objectContaining({
          id: 'mbr8',
          hostname: 'sdo-node8',
          availability: 'drain',
        }),
        leaving: [],
        kept: [],
      });
      expect(swarm.members[1]!.availability).toBe('drain');
      const [row] = await audit(h, 'node.member_drained');
      expect(row).toMatchObject({
        actorId: admin.actorId,
        targetId: swarmNodeId,
        requestId: ctx.requestId,
        data: { member: 'sdo-node8', memberId: 'mbr8' },
      });
      // Again: already drained, nothing to do and nothing more audited.
      await requestMemberDrain(api, admin, swarmNodeId, 'mbr8', ctx);
      expect(await audit(h, 'node.member_drained')).toHaveLength(1);

      const back = await requestMemberUndrain(api, admin, swarmNodeId, 'mbr8', ctx);
      expect(back).toEqual({
        nodeId: swarmNodeId,
        member: expect.objectContaining({ id: 'mbr8', availability: 'active' }),
      });
      expect(await audit(h, 'node.member_undrained')).toHaveLength(1);
    });

    it('refuses an unknown member with a 404 naming it', async () => {
      const { api } = await given();
      for (const call of [requestMemberDrain, requestMemberUndrain])
        await expect(call(api, admin, swarmNodeId, 'sdo-node4', ctx)).rejects.toMatchObject({
          kind: 'not_found',
          code: 'cluster_member_not_found',
          message: 'cluster_member sdo-node4 not found',
        });
    });

    it('refuses to drain the last active member', async () => {
      const { api, h, swarm } = await given();
      await requestMemberDrain(api, admin, swarmNodeId, 'sdo-node8', ctx);
      await requestMemberDrain(api, admin, swarmNodeId, 'sdo-node9', ctx);
      await expect(
        requestMemberDrain(api, admin, swarmNodeId, 'sdo-node7', ctx),
      ).rejects.toMatchObject({
        kind: 'conflict',
        code: 'last_available_member',
        message: expect.stringContaining('member sdo-node7 is the last member of swarm swarm'),
        details: { member: 'sdo-node7' },
      });
      expect(swarm.members[0]!.availability).toBe('active');
      expect(await audit(h, 'node.member_drained')).toHaveLength(2);
    });

    it('says the manager is down with a 409 and changes nothing; the read says why', async () => {
      const { api, swarm } = await given();
      swarm.managerDown = true;
      for (const call of [requestMemberDrain, requestMemberUndrain])
        await expect(call(api, admin, swarmNodeId, 'sdo-node8', ctx)).rejects.toMatchObject({
          kind: 'conflict',
          code: 'swarm_manager_unreachable',
          message: expect.stringContaining(
            `the manager of swarm swarm at ${managerHost} did not answer, so no member was changed`,
          ),
        });
      const cluster = await readNodeCluster(api, deployer, swarmNodeId);
      expect(cluster).toMatchObject({ available: false, members: [] });
      expect(cluster.reason).toContain(`the manager at ${managerHost} did not answer`);
    });

    it('refuses a deployer, an engine node and an unknown node', async () => {
      const { api } = await given();
      await expect(
        requestMemberDrain(api, deployer, swarmNodeId, 'sdo-node8', ctx),
      ).rejects.toMatchObject({ kind: 'forbidden' });
      await expect(
        requestMemberDrain(api, admin, 'node_000001', 'sdo-node8', ctx),
      ).rejects.toMatchObject({ kind: 'conflict', code: 'node_not_swarm' });
      await expect(readNodeCluster(api, deployer, 'node_nothing')).rejects.toMatchObject({
        code: 'node_not_found',
      });
    });
  });
}
