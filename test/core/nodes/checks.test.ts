/**
 * The node checks on the in-memory ports: a node that stops answering is lost after three
 * misses, its replicas leave the edge at once and are replaced (health-gated, through the
 * reshape), and its return removes what was replaced. The same against real engines and
 * Caddy: test/scale/node-loss.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MemoryMetrics } from '../../../adapters/metrics/memory.ts';
import { Unavailable } from '../../../core/errors.ts';
import { NodeChecker, timeoutFor } from '../../../core/nodes/checks.ts';
import { defaultNodeCheckPolicy } from '../../../core/nodes/reachability.ts';
import { drainNode } from '../../../core/nodes/drain.ts';
import { routeId } from '../../../core/releases/plan.ts';
import { releaseStepsQueue } from '../../../core/releases/deps.ts';
import { scaleService } from '../../../core/services/scale.ts';
import type { ContainerRuntime, DockerTarget } from '../../../core/ports.ts';
import { aNode } from '../releases/builders.ts';
import { deployer, orgId, setup, type Harness } from '../releases/harness.ts';

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

const running = (h: Harness, host: string) =>
  h.runtime.containers(host).filter((c) => c.state === 'running');
const upstreams = async (h: Harness) =>
  (await h.edge.get(routeId(h.service.id, 'env_000001')))?.upstreams;
const node = (h: Harness, id: string) => h.repos(async (r) => (await r.nodes.get(id))!);
const audit = (h: Harness, action: string) =>
  h.repos(async (r) => (await r.audit.list({ limit: 50 }, { action })).items);

async function rounds(checker: NodeChecker, n: number) {
  for (let i = 0; i < n; i++) await checker.round();
  await checker.settled();
}

describe('node checks', () => {
  it('loses a node after three misses: its replica leaves the edge and is replaced on a survivor', async () => {
    const h = await threeNodes();
    const metrics = new MemoryMetrics();
    const checker = new NodeChecker({ release: h.deps, metrics, policy });
    const v1 = await h.deploy('shop/web:1');
    expect(v1.replicaSet!.replicas.map((r) => r.nodeId)).toEqual(['node_000001', 'node_000002']);
    await rounds(checker, 1);
    expect(await node(h, 'node_000002')).toMatchObject({
      reachability: 'reachable',
      missedChecks: 0,
    });

    h.runtime.setReachable(hosts[1]!, false);
    await rounds(checker, 2);
    expect(await node(h, 'node_000002')).toMatchObject({
      reachability: 'reachable',
      missedChecks: 2,
    });
    expect(await upstreams(h)).toHaveLength(2);
    await rounds(checker, 1);
    expect(await node(h, 'node_000002')).toMatchObject({
      reachability: 'lost',
      missedChecks: 3,
      reachabilitySince: h.clock.now().toISOString(),
    });
    // Out of the edge before any replacement starts.
    expect(await upstreams(h)).toEqual([v1.replicaSet!.replicas[0]!.upstream]);
    expect(metrics.gauges.get('selfdevop_node_up{org="org_000001",node="node_000002"}')).toBe(0);
    expect(metrics.gauges.get('selfdevop_node_up{org="org_000001",node="node_000001"}')).toBe(1);

    await h.drain();
    const after = await h.release(v1.id);
    expect(after.replicaSet!.replicas.map((r) => [r.index, r.nodeId, r.health])).toEqual([
      [0, 'node_000001', 'healthy'],
      [2, 'node_000003', 'healthy'],
    ]);
    expect(await upstreams(h)).toEqual(after.replicaSet!.replicas.map((r) => r.upstream));
    const [lost] = await audit(h, 'node.lost');
    expect(lost).toMatchObject({
      actorType: 'system',
      actorId: 'node-checks',
      targetId: 'node_000002',
      data: {
        name: 'node-2',
        releases: [{ releaseId: v1.id, lostReplicas: [1], desired: 2, action: 'replacing' }],
      },
    });
    // Staying lost: no second event, no second reshape.
    await rounds(checker, 3);
    expect(await audit(h, 'node.lost')).toHaveLength(1);
    expect(h.queue.of(releaseStepsQueue).filter((m) => !m.handled)).toEqual([]);

    // Back: the replaced replica's container is removed, the survivors untouched.
    expect(h.runtime.containers(hosts[1]!)).toHaveLength(1);
    h.runtime.setReachable(hosts[1]!, true);
    await rounds(checker, 1);
    expect(await node(h, 'node_000002')).toMatchObject({
      reachability: 'reachable',
      missedChecks: 0,
    });
    expect(h.runtime.containers(hosts[1]!)).toEqual([]);
    expect([running(h, hosts[0]!).length, running(h, hosts[2]!).length]).toEqual([1, 1]);
    const [recovered] = await audit(h, 'node.recovered');
    expect(recovered!.data).toMatchObject({
      name: 'node-2',
      removed: [{ releaseId: v1.id, reason: 'replaced while the node was lost' }],
      kept: [],
      rejoined: [],
    });
    const log = await h.repos((r) => r.releaseLogs.list(v1.id, 0, 500));
    expect(log.map((l) => l.line)).toEqual(
      expect.arrayContaining([
        'node node-2 lost: replica 1 left the edge; restoring 2 replicas on the other nodes',
        expect.stringMatching(/^replica 1 \(.*\) is on a lost node: removed when it returns$/),
      ]),
    );
  });

  it('names the services it cannot place when no eligible node is left, and does not loop', async () => {
    const h = await threeNodes(3);
    const checker = new NodeChecker({ release: h.deps, policy });
    const v1 = await h.deploy('shop/web:1');
    await h.repos(async (r) => {
      await r.nodes.setDrainMode('node_000001', true);
      await r.nodes.setDrainMode('node_000003', true);
    });
    const sent = h.queue.of(releaseStepsQueue).length;
    h.runtime.setReachable(hosts[1]!, false);
    await rounds(checker, 6);
    expect(h.queue.of(releaseStepsQueue)).toHaveLength(sent);
    expect(await audit(h, 'node.lost')).toHaveLength(1);
    const [lost] = await audit(h, 'node.lost');
    expect(lost!.data).toMatchObject({
      releases: [
        {
          releaseId: v1.id,
          action: 'unplaceable',
          reason:
            'the replicas cannot be placed: no node takes replicas: 3 registered, 2 draining, 1 lost (not answering)',
        },
      ],
    });
  });

  it('answers 409 when scaling with every other node lost, naming them', async () => {
    const h = await threeNodes(1);
    const checker = new NodeChecker({ release: h.deps, policy });
    await h.deploy('shop/web:1');
    for (const x of hosts) h.runtime.setReachable(x, false);
    await rounds(checker, 3);
    const refused = await scaleService(h.deps, deployer, h.service.id, { replicas: 2 }, null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      kind: 'conflict',
      code: 'no_eligible_node',
      message:
        'the replicas cannot be placed: no node takes replicas: 3 registered, 0 draining, 3 lost (not answering)',
    });
  });

  it('drains a lost node without moving anything a second time', async () => {
    const h = await threeNodes();
    const checker = new NodeChecker({ release: h.deps, policy });
    await h.deploy('shop/web:1');
    h.runtime.setReachable(hosts[1]!, false);
    await rounds(checker, 3);
    const sent = h.queue.of(releaseStepsQueue).length;
    const r = await drainNode(h.deps, { ...deployer, role: 'admin' }, 'node_000002', null);
    expect(r).toMatchObject({ node: { drainMode: true, reachability: 'lost' }, moving: [] });
    expect(h.queue.of(releaseStepsQueue)).toHaveLength(sent);
  });

  it('keeps checking other nodes while one engine hangs, with one ping in flight for it', async () => {
    const h = await threeNodes();
    let hung = 0;
    const runtime: ContainerRuntime = Object.create(h.runtime) as ContainerRuntime;
    runtime.ping = (target: DockerTarget) => {
      if (target.dockerHost !== hosts[2]) return h.runtime.ping(target);
      hung++;
      return new Promise<void>(() => undefined);
    };
    const checker = new NodeChecker({ release: { ...h.deps, runtime }, policy });
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await checker.round());
    expect(hung).toBe(1);
    expect(results.map((r) => r.map((x) => x.answered))).toEqual([
      [true, true, false],
      [true, true, false],
      [true, true, false],
      [true, true, false],
    ]);
    expect(await node(h, 'node_000003')).toMatchObject({ reachability: 'lost', missedChecks: 3 });
    expect(await node(h, 'node_000001')).toMatchObject({ reachability: 'reachable' });
    expect(orgId).toBe('org_000001');
  });

  it('counts an engine that refuses its credentials as answering, not as lost', async () => {
    const h = await threeNodes();
    // What the Docker adapter throws when the engine's certificate does not verify.
    h.runtime.failNext(
      'ping',
      new Error(
        'docker ping on unix:///n2.sock failed: TLS: certificate signed by unknown authority',
      ),
      3,
    );
    // And what it throws when the engine hangs up on a client certificate it does not trust.
    h.runtime.failNext(
      'ping',
      new Unavailable('docker', 'tcp://10.0.0.5:2376: socket hang up', { refusedHandshake: true }),
      6,
    );
    const checker = new NodeChecker({ release: h.deps, policy });
    await rounds(checker, 3);
    expect(await node(h, 'node_000002')).toMatchObject({
      reachability: 'reachable',
      missedChecks: 0,
    });
    expect(await audit(h, 'node.lost')).toEqual([]);
  });

  it('gives TLS and SSH engines longer to answer than a local socket', () => {
    const p = defaultNodeCheckPolicy;
    expect(
      ['unix:///var/run/docker.sock', 'tcp://10.0.0.5:2376', 'ssh://deploy@10.0.0.5'].map((d) =>
        timeoutFor({ dockerHost: d }, p),
      ),
    ).toEqual([1_000, 2_000, 5_000]);
  });
});
