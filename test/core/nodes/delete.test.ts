/**
 * Deleting a node on the in-memory ports: refused (409, naming what holds it) while replicas
 * are placed on it, gone once drained; a lost node with `force` writes its replicas off and
 * the count is restored elsewhere. And capacity appearing (a node registered, or answering
 * again) places the replicas that found no place before, at once.
 */
import { describe, expect, it } from 'vitest';
import type { CoreDeps } from '../../../core/deps.ts';
import { deleteNode } from '../../../core/nodes/delete.ts';
import { drainNode } from '../../../core/nodes/drain.ts';
import { NodeChecker } from '../../../core/nodes/checks.ts';
import { createNode } from '../../../core/nodes/use-cases.ts';
import { releaseStepsQueue } from '../../../core/releases/deps.ts';
import { routeId } from '../../../core/releases/plan.ts';
import { webhookEventTypes } from '../../../core/webhooks/events.ts';
import { aDataService, aUser } from '../../contracts/store/builders.ts';
import { aNode } from '../releases/builders.ts';
import { deployer, orgId, setup, type Harness } from '../releases/harness.ts';

const admin = { ...deployer, role: 'admin' as const };
const hosts = ['unix:///var/run/docker.sock', 'unix:///n2.sock', 'unix:///n3.sock'];
const policy = { intervalMs: 0, timeoutMs: 50, missesToLose: 3 };

async function threeNodes(replicas = 2): Promise<Harness> {
  const h = await setup({ replicas });
  await h.repos(async (r) => {
    await r.nodes.insert(
      aNode({ id: 'node_000002', name: 'node-2', dockerHost: hosts[1], address: '127.0.0.2' }),
    );
    await r.nodes.insert(
      aNode({ id: 'node_000003', name: 'node-3', dockerHost: hosts[2], address: '127.0.0.3' }),
    );
  });
  return h;
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e,
  );
const node = (h: Harness, id: string) => h.repos((r) => r.nodes.get(id));
const audit = (h: Harness, action: string) =>
  h.repos(async (r) => (await r.audit.list({ limit: 50 }, { action })).items);
const serving = async (h: Harness, id: string) =>
  (await h.release(id)).replicaSet!.replicas.filter((r) => r.health === 'healthy');
async function rounds(checker: NodeChecker, n: number) {
  for (let i = 0; i < n; i++) await checker.round();
  await checker.settled();
}

describe('deleting a node', () => {
  it('refuses while replicas are placed on it, naming them; deletes it once drained', async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    expect(v1.replicaSet!.replicas.map((r) => r.nodeId)).toEqual(['node_000001', 'node_000002']);
    expect(await refusal(deleteNode(h.deps, admin, 'node_000002', {}, null))).toMatchObject({
      kind: 'conflict',
      code: 'node_holds_replicas',
      message: `node node-2 holds replicas of ${h.service.name} (serving ${v1.id}, replica 1): drain it first (POST /api/nodes/{id}/drain), then delete it`,
    });
    expect(
      await refusal(deleteNode(h.deps, admin, 'node_000002', { force: true }, null)),
    ).toMatchObject({ message: expect.stringContaining('force only removes a lost node') });
    expect(await refusal(deleteNode(h.deps, deployer, 'node_000002', {}, null))).toMatchObject({
      kind: 'forbidden',
    });
    expect(await refusal(deleteNode(h.deps, admin, 'node_nosuch', {}, null))).toMatchObject({
      kind: 'not_found',
    });

    await drainNode(h.deps, admin, 'node_000002', null);
    // The move is queued, not done: the drain still holds it.
    expect(await refusal(deleteNode(h.deps, admin, 'node_000002', {}, null))).toMatchObject({
      message: expect.stringContaining('its drain is still moving them'),
    });
    await h.drain();
    // The drain's retirements removed what it stopped: nothing left for the delete.
    expect(await deleteNode(h.deps, admin, 'node_000002', {}, null)).toEqual({
      writtenOff: [],
      replacing: [],
      containers: { removed: [], kept: [], errors: [] },
    });
    expect(await audit(h, 'node.containers_removed')).toEqual([]);
    expect(await node(h, 'node_000002')).toBeNull();
    expect((await serving(h, v1.id)).map((r) => r.nodeId).sort()).toEqual([
      'node_000001',
      'node_000003',
    ]);
    const [deleted] = await audit(h, 'node.deleted');
    expect(deleted).toMatchObject({
      actorId: admin.actorId,
      targetId: 'node_000002',
      data: { name: 'node-2', force: false, drainMode: true, writtenOff: [] },
    });
    expect(webhookEventTypes).toContain('node.deleted');
  });

  it('refuses a node holding a data service, naming it', async () => {
    const h = await threeNodes();
    await h.repos((r) =>
      r.dataServices.insert(aDataService(orgId, 'prj_000001', 'node_000003', { name: 'cache' })),
    );
    expect(await refusal(deleteNode(h.deps, admin, 'node_000003', {}, null))).toMatchObject({
      code: 'node_holds_data_services',
      message:
        'node node-3 holds the data service cache (their data volumes are on it): delete it first',
    });
    expect(await node(h, 'node_000003')).not.toBeNull();
  });

  it('with force, writes off a lost node whose replicas found no place, and restores the count', async () => {
    const h = await threeNodes();
    const checker = new NodeChecker({ release: h.deps, policy });
    const v1 = await h.deploy('shop/web:1');
    // Nowhere to go: node-1 and node-3 take no new replicas, so the lost one is not replaced.
    await h.repos(async (r) => {
      await r.nodes.setDrainMode('node_000001', true);
      await r.nodes.setDrainMode('node_000003', true);
    });
    h.runtime.setReachable(hosts[1]!, false);
    await rounds(checker, 3);
    await h.drain();
    expect((await node(h, 'node_000002'))!.reachability).toBe('lost');
    expect(await audit(h, 'node.lost')).toMatchObject([
      { data: { releases: [{ releaseId: v1.id, action: 'unplaceable' }] } },
    ]);
    expect(await refusal(deleteNode(h.deps, admin, 'node_000002', {}, null))).toMatchObject({
      code: 'node_holds_replicas',
      message: expect.stringContaining('delete it with force=true to write them off'),
    });

    await h.repos((r) => r.nodes.setDrainMode('node_000003', false));
    const result = await deleteNode(h.deps, admin, 'node_000002', { force: true }, null);
    expect(result).toEqual({
      writtenOff: [{ releaseId: v1.id, serviceId: h.service.id, replicas: [1] }],
      replacing: [v1.id],
      // Best effort on a lost engine: it does not answer, and the delete goes on, saying so.
      containers: {
        removed: [],
        kept: [],
        errors: [expect.stringMatching(/^the engine did not answer: .*ECONNREFUSED/)],
      },
    });
    expect(await audit(h, 'node.containers_removed')).toMatchObject([
      { targetId: 'node_000002', data: { reachability: 'lost', errors: result.containers.errors } },
    ]);
    expect(await node(h, 'node_000002')).toBeNull();
    await h.drain();
    // The reshape also moves the replica off node-1, which still drains.
    expect((await serving(h, v1.id)).map((r) => r.nodeId)).toEqual(['node_000003', 'node_000003']);
    const route = await h.edge.get(routeId(h.service.id, 'env_000001'));
    expect(route?.upstreams).toHaveLength(2);
    expect(await audit(h, 'node.deleted')).toMatchObject([
      { data: { force: true, reachability: 'lost', writtenOff: result.writtenOff } },
    ]);
    const log = await h.repos((r) => r.releaseLogs.list(v1.id, 0, 500));
    expect(log.map((l) => l.line)).toContain(
      'node node-2 deleted while lost: replica 1 written off',
    );
  });

  it('refuses force while a service would keep no replica elsewhere', async () => {
    const h = await threeNodes(1);
    const checker = new NodeChecker({ release: h.deps, policy });
    await h.repos(async (r) => {
      await r.nodes.setDrainMode('node_000002', true);
      await r.nodes.setDrainMode('node_000003', true);
    });
    const v1 = await h.deploy('shop/web:1');
    h.runtime.setReachable(hosts[0]!, false);
    await rounds(checker, 3);
    expect(
      await refusal(deleteNode(h.deps, admin, 'node_000001', { force: true }, null)),
    ).toMatchObject({
      code: 'node_holds_replicas',
      message: `node node-1 holds replicas of ${h.service.name} (serving ${v1.id}, replica 0): no replica of theirs serves on another node: register or undrain a node so they are replaced, then delete it`,
    });
  });
});

describe('replicas that found no place', () => {
  it('are placed on a node registered meanwhile, at once', async () => {
    const h = await setup({ replicas: 2 });
    const checker = new NodeChecker({ release: h.deps, policy });
    await h.repos((r) =>
      r.nodes.insert(
        aNode({ id: 'node_000002', name: 'node-2', dockerHost: hosts[1], address: '127.0.0.2' }),
      ),
    );
    const v1 = await h.deploy('shop/web:1');
    await h.repos((r) => r.nodes.setDrainMode('node_000001', true));
    h.runtime.setReachable(hosts[1]!, false);
    await rounds(checker, 3);
    await h.drain();
    // node-2 lost, node-1 takes no new replicas: the lost one found no place.
    expect(await audit(h, 'node.lost')).toMatchObject([
      { data: { releases: [{ action: 'unplaceable' }] } },
    ]);
    await h.store.inner.identity.createUserFirstIsOperator(aUser({ id: deployer.userId! }));
    const core = { ...h.deps, auth: {}, config: { ...h.deps.config }, release: h.deps };
    const sent = h.queue.of(releaseStepsQueue).length;
    await createNode(
      core as unknown as CoreDeps & { release: typeof h.deps },
      admin,
      { name: 'node-3', dockerHost: hosts[2]!, address: '127.0.0.3' },
      { requestId: 'req_1' } as never,
    );
    expect(h.queue.of(releaseStepsQueue).length).toBe(sent + 1);
    // A queue that refuses the retry does not undo a registration: it is logged.
    const refusing = {
      ...h.deps,
      queue: Object.assign(Object.create(h.queue) as typeof h.queue, {
        send: () => Promise.reject(new Error('queue down')),
      }),
    };
    await createNode(
      { ...core, release: refusing } as unknown as CoreDeps & { release: typeof h.deps },
      admin,
      { name: 'node-4', dockerHost: 'unix:///n4.sock', address: '127.0.0.4' },
      { requestId: 'req_2' } as never,
    );
    expect(h.logger.entries).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        err: 'queue down',
        msg: 'replicas that found no place were not retried on the new node',
      }),
    );
    // node-4 takes nothing, so the reshape queued for node-3 places there, as it would have.
    await h.repos(async (r) => {
      const n4 = (await r.nodes.list({ limit: 10 })).items.find((n) => n.name === 'node-4')!;
      await r.nodes.setDrainMode(n4.id, true);
    });
    await h.drain();
    const nodes = await h.repos(async (r) => (await r.nodes.list({ limit: 10 })).items);
    const third = nodes.find((n) => n.name === 'node-3')!;
    // Both on the new node: the reshape also moves the replica off node-1, which drains.
    expect((await serving(h, v1.id)).map((r) => r.nodeId)).toEqual([third.id, third.id]);
  });

  it('are placed when a lost node answers again', async () => {
    const h = await threeNodes(3);
    const checker = new NodeChecker({ release: h.deps, policy });
    const v1 = await h.deploy('shop/web:1');
    // node-3 lost with nowhere else to go.
    await h.repos(async (r) => {
      await r.nodes.setDrainMode('node_000001', true);
      await r.nodes.setDrainMode('node_000002', true);
    });
    h.runtime.setReachable(hosts[2]!, false);
    await rounds(checker, 3);
    await h.drain();
    expect(await audit(h, 'node.lost')).toMatchObject([
      { data: { releases: [{ action: 'unplaceable' }] } },
    ]);
    // Meanwhile the count asked grows, so returning alone does not restore it.
    await h.repos((r) => r.services.update(h.service.id, { replicas: 4 }));
    await h.repos((r) => r.nodes.setDrainMode('node_000002', false));
    h.runtime.setReachable(hosts[2]!, true);
    await rounds(checker, 1);
    const [recovered] = await audit(h, 'node.recovered');
    expect(recovered!.data).toMatchObject({ replacing: [v1.id] });
    await h.drain();
    expect(await serving(h, v1.id)).toHaveLength(4);
  });
});
