/**
 * Replicas across nodes on the in-memory ports: placement, the all-or-nothing blue/green
 * switch of N replicas, scale and drain. The same flows against three real Docker Engines
 * and Caddy are in test/scale/multi-node.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { isCoreError } from '../../../core/errors.ts';
import { createRelease } from '../../../core/releases/create.ts';
import { replicaContainerName, routeId } from '../../../core/releases/plan.ts';
import { scaleService } from '../../../core/services/scale.ts';
import { drainNode, undrainNode } from '../../../core/nodes/drain.ts';
import type { Service } from '../../../core/models.ts';
import { aNode } from './builders.ts';
import { deployer, setup, type Harness } from './harness.ts';

const admin = { ...deployer, role: 'admin' as const };
const hosts = ['unix:///var/run/docker.sock', 'unix:///n2.sock', 'unix:///n3.sock'];

async function threeNodes(service: Partial<Service> = {}): Promise<Harness> {
  const h = await setup({ replicas: 3, ...service });
  await h.repos(async (r) => {
    await r.nodes.insert(
      aNode({ id: 'node_000002', name: 'node-2', dockerHost: hosts[1], address: '127.0.0.2' }),
    );
    await r.nodes.insert(
      aNode({
        id: 'node_000003',
        name: 'node-3',
        dockerHost: hosts[2],
        address: '127.0.0.3',
        labels: { role: 'app' },
      }),
    );
  });
  return h;
}

const running = (h: Harness, host: string) =>
  h.runtime.containers(host).filter((c) => c.state === 'running');
const route = (h: Harness) => h.edge.get(routeId(h.service.id, 'env_000001'));
const codeOf = async (p: Promise<unknown>) => {
  try {
    await p;
    return 'none';
  } catch (e) {
    return isCoreError(e) ? `${e.kind}:${e.code}` : String(e);
  }
};

describe('replicas across nodes', () => {
  it('starts one replica per node, gates each, then routes to all three at once', async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    expect(v1.replicaSet!.replicas.map((r) => [r.index, r.nodeId, r.health])).toEqual([
      [0, 'node_000001', 'healthy'],
      [1, 'node_000002', 'healthy'],
      [2, 'node_000003', 'healthy'],
    ]);
    expect(hosts.map((x) => running(h, x).length)).toEqual([1, 1, 1]);
    expect((await route(h))!.upstreams).toEqual(v1.replicaSet!.replicas.map((r) => r.upstream));
    // One route change for the whole set: no moment with part of it.
    expect(h.edge.changes.filter((c) => c.op === 'put')).toHaveLength(1);
  });

  it("gates the replicas at once: each one's probes begin before any replica has passed", async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    const upstreams = v1.replicaSet!.replicas.map((r) => `http://${r.upstream}/health`);
    // One after another, replica 0 took both its probes before replica 1 was asked.
    const first = h.probe.calls.slice(0, 3).map((c) => c.url);
    expect([...first].sort()).toEqual([...upstreams].sort());
    expect(h.probe.calls.filter((c) => upstreams.includes(c.url))).toHaveLength(6);
  });

  it('removes every candidate when one fails its gate, and leaves the old set serving', async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    h.store.killBefore = 'candidate_started';
    h.store.onKill = () => {
      const sick = h.runtime.containers(hosts[2]).find((c) => c.spec.image !== v1.imageDigest)!;
      h.runtime.setHealthy(hosts[2]!, sick.spec.name, false);
    };
    const v2 = await h.deploy('shop/web:2');
    expect(v2.status).toBe('failed');
    expect(v2.error).toMatch(/health check did not pass .* at 127\.0\.0\.3:\d+ → 404/);
    expect(hosts.map((x) => running(h, x).map((c) => c.spec.labels['selfdevop.release']))).toEqual([
      [v1.id],
      [v1.id],
      [v1.id],
    ]);
    expect((await route(h))!.upstreams).toEqual(v1.replicaSet!.replicas.map((r) => r.upstream));
  });

  it('places only on nodes with the labels asked, and says so when none has them', async () => {
    const h = await threeNodes({ replicas: 2, placement: { labels: { role: 'app' } } });
    const v1 = await h.deploy('shop/web:1');
    expect(v1.replicaSet!.replicas.map((r) => r.nodeId)).toEqual(['node_000003', 'node_000003']);
    await h.repos((r) =>
      r.services.update(h.service.id, { placement: { labels: { region: 'fra' } } }),
    );
    expect(
      await codeOf(createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'x:1' })),
    ).toBe('conflict:no_eligible_node');
  });

  it('answers 409 naming the missing capacity before anything starts', async () => {
    const h = await threeNodes({ memoryMb: 512, cpus: 1 });
    for (const x of hosts) h.runtime.capacities.set(x, { cpus: 2, memoryMb: 1000 });
    await h.deploy('shop/web:1');
    // Three more beside the serving three: 1000 MB a node holds one 512 MB replica.
    let message = '';
    try {
      await createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:2' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe(
      'the replicas cannot be placed: replica 1 of 3 (512 MB, 1 CPUs) fits on no eligible node: node node-1, the roomiest, lacks 24 MB of memory',
    );
    expect(hosts.map((x) => h.runtime.containers(x).length)).toEqual([1, 1, 1]);
  });

  it('scales up and down without a deploy: new replicas join once healthy, leaving ones go', async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    const up = await scaleService(h.deps, deployer, h.service.id, { replicas: 5 }, null);
    expect(up).toMatchObject({ replicas: 5, releaseId: v1.id, current: 3 });
    await h.drain();
    const five = await h.release(v1.id);
    expect(five.replicaSet!.replicas.map((r) => [r.index, r.nodeId])).toEqual([
      [0, 'node_000001'],
      [1, 'node_000002'],
      [2, 'node_000003'],
      [3, 'node_000001'],
      [4, 'node_000002'],
    ]);
    expect((await route(h))!.upstreams).toHaveLength(5);
    await scaleService(h.deps, deployer, h.service.id, { replicas: 1 }, null);
    await h.drain();
    const one = await h.release(v1.id);
    expect(one.replicaSet!.replicas.map((r) => r.index)).toEqual([0]);
    expect((await route(h))!.upstreams).toEqual([one.replicaSet!.replicas[0]!.upstream]);
    expect(hosts.map((x) => running(h, x).length)).toEqual([1, 0, 0]);
    // Stop removes the route; start brings one replica back behind it.
    await scaleService(h.deps, deployer, h.service.id, {}, null, 'stop');
    await h.drain();
    expect(await route(h)).toBeNull();
    expect(hosts.map((x) => running(h, x).length)).toEqual([0, 0, 0]);
    await scaleService(h.deps, deployer, h.service.id, {}, null, 'start');
    await h.drain();
    expect((await route(h))!.upstreams).toHaveLength(1);
    expect(await codeOf(scaleService(h.deps, deployer, h.service.id, { replicas: 51 }, null))).toBe(
      'invalid:invalid_input',
    );
  });

  it('drains a node: its replicas start elsewhere, the edge switches, then they stop', async () => {
    const h = await threeNodes();
    const v1 = await h.deploy('shop/web:1');
    const drained = await drainNode(h.deps, admin, 'node_000002', null);
    expect(drained.node.drainMode).toBe(true);
    expect(drained.moving).toEqual([{ releaseId: v1.id, serviceId: h.service.id, replicas: 3 }]);
    await h.drain();
    const moved = await h.release(v1.id);
    expect(moved.replicaSet!.replicas.map((r) => r.nodeId).sort()).toEqual([
      'node_000001',
      'node_000001',
      'node_000003',
    ]);
    expect(running(h, hosts[1]!)).toEqual([]);
    expect(h.runtime.container(hosts[1]!, replicaContainerName(v1, 1))).toBeUndefined();
    expect((await route(h))!.upstreams).toEqual(moved.replicaSet!.replicas.map((r) => r.upstream));
    // A new deploy keeps off the draining node too.
    const v2 = await h.deploy('shop/web:2');
    expect(v2.replicaSet!.replicas.map((r) => r.nodeId)).not.toContain('node_000002');
    await drainNode(h.deps, admin, 'node_000001', null);
    expect(await codeOf(drainNode(h.deps, admin, 'node_000003', null))).toBe(
      'conflict:last_eligible_node',
    );
    expect((await undrainNode(h.deps, admin, 'node_000002', null)).drainMode).toBe(false);
    expect(await codeOf(drainNode(h.deps, deployer, 'node_000003', null))).toBe(
      'forbidden:forbidden',
    );
  });
});
