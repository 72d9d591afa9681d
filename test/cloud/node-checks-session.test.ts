/**
 * The node-checks function's session (functions/lambda/node-checks-handler.ts and
 * NodeChecker.session): fired once a minute, it runs a few rounds when no org has a Swarm
 * node, and with one it runs rounds until the invocation's remaining time reaches the
 * margin, each round following the Swarm's tasks with the code self-hosted runs
 * (core/nodes/swarm-tasks.ts), so a dead task leaves the edge within the session.
 */
import { describe, expect, it } from 'vitest';
import { NodeChecker } from '../../core/nodes/checks.ts';
import { replicaContainerName, routeId } from '../../core/releases/plan.ts';
import { createNodeChecksHandler } from '../../functions/lambda/node-checks-handler.ts';
import { aNode } from '../core/releases/builders.ts';
import { dockerHost, setup, type Harness } from '../core/releases/harness.ts';

const scheduled = {
  version: '0',
  id: 'evt-1',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '111122223333',
  time: '2026-01-01T00:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:111122223333:rule/selfdevop-node-check'],
  detail: {},
};

const session = { rounds: 5, maxRounds: 120, marginMs: 15_000 };

/**
 * A checker whose rounds each take a simulated second of the invocation's time: the
 * context's remaining time is 60 s less a second per round begun. `starts` records the
 * remaining time at each round's start.
 */
function timedChecker(h: Harness, totalMs = 60_000) {
  const checker = new NodeChecker({
    release: h.deps,
    policy: { intervalMs: 0, timeoutMs: 50, missesToLose: 3 },
  });
  let begun = 0;
  const starts: number[] = [];
  const context = { getRemainingTimeInMillis: () => totalMs - begun * 1000 };
  const round = checker.round.bind(checker);
  checker.round = () => {
    starts.push(context.getRemainingTimeInMillis());
    begun++;
    return round();
  };
  return { checker, context, starts };
}

const handlerOf = (checker: NodeChecker, h: Harness) =>
  createNodeChecksHandler({ checker, session, logger: h.logger });

async function withSwarmReplicas(h: Harness) {
  const v1 = await h.deploy('shop/web:1');
  await h.repos(async (r) => {
    await r.nodes.insert(
      aNode({
        id: 'node_swarm9',
        name: 'swarm',
        kind: 'swarm',
        dockerHost: 'unix:///run/sdo-node7/docker.sock',
        address: '10.213.0.17',
      }),
    );
    // The replicas as a Swarm's tasks: the follower probes them at their upstreams.
    await r.releases.update(v1.id, {
      replicaSet: {
        replicas: v1.replicaSet!.replicas.map((x) => ({ ...x, nodeId: 'node_swarm9' })),
      },
    });
  });
  return h.release(v1.id);
}

describe('the node-checks session', () => {
  it('runs its few rounds and ends when no org has a Swarm node, however much time is left', async () => {
    const h = await setup({ replicas: 2 });
    const { checker, context, starts } = timedChecker(h);
    const out = await handlerOf(checker, h)(scheduled, context);
    expect(out).toEqual({ rounds: 5, swarm: false });
    expect(starts).toHaveLength(5);
  });

  it('with a Swarm node, runs rounds until the remaining time reaches the margin, and a dead task leaves the edge', async () => {
    const h = await setup({ replicas: 2 });
    const live = await withSwarmReplicas(h);
    const route = routeId(h.service.id, live.environmentId);
    const upstreams = live.replicaSet!.replicas.map((r) => r.upstream!);
    expect((await h.edge.get(route))?.upstreams.sort()).toEqual([...upstreams].sort());
    // One task dies: its container stops answering.
    const one = live.replicaSet!.replicas.find((r) => r.index === 1)!;
    const dead = h.runtime
      .containers(dockerHost)
      .find((c) => c.state === 'running' && c.spec.name === replicaContainerName(live, 1));
    expect(dead, 'replica 1 runs').toBeDefined();
    h.runtime.crash(dockerHost, dead!.id);

    const { checker, context, starts } = timedChecker(h);
    const probesBefore = h.probe.calls.length;
    const out = await handlerOf(checker, h)(scheduled, context);
    // 60 s, a second per round, 15 s kept: 46 rounds, none begun inside the margin.
    expect(out).toEqual({ rounds: 46, swarm: true });
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(session.marginMs);
    expect(context.getRemainingTimeInMillis()).toBeGreaterThanOrEqual(session.marginMs - 1000);
    // Every round probed both tasks (self-hosted's follower, round after round).
    expect(h.probe.calls.length - probesBefore).toBeGreaterThanOrEqual(2 * 46);
    const edge = (await h.edge.get(route))?.upstreams ?? [];
    expect(edge).toHaveLength(1);
    expect(edge).not.toContain(one.upstream);
    const changes = await h.repos(
      async (r) => (await r.audit.list({ limit: 10 }, { action: 'edge.tasks_changed' })).items,
    );
    // Once: the rounds after the first see the edge as they would write it.
    expect(changes).toHaveLength(1);
    expect(changes[0]!.data).toMatchObject({ nodeId: 'node_swarm9', left: [1] });
  });

  it('stops at maxRounds even with time to spare', async () => {
    const h = await setup({ replicas: 2 });
    await withSwarmReplicas(h);
    const { checker, context } = timedChecker(h, 600_000);
    const out = await createNodeChecksHandler({
      checker,
      session: { ...session, maxRounds: 7 },
      logger: h.logger,
    })(scheduled, context);
    expect(out).toEqual({ rounds: 7, swarm: true });
  });

  it('refuses an event that is not a schedule', async () => {
    const h = await setup();
    const { checker, context } = timedChecker(h);
    await expect(handlerOf(checker, h)({ Records: [] }, context)).rejects.toThrow(
      'handles EventBridge scheduled events only',
    );
  });
});
