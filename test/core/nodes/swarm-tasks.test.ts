/**
 * planSwarmEdge, the pure part of following a Swarm's tasks: which replicas leave the
 * edge, which join (answering again, or where Swarm runs them now), and when the follower
 * keeps its hands off the route. Against a real Swarm and Caddy: test/swarm/swarm.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { planSwarmEdge, type TaskSighting } from '../../../core/nodes/swarm-tasks.ts';
import type { Replica } from '../../../core/models.ts';
import { aRelease } from '../releases/builders.ts';

const up = ['10.0.0.7:30001', '10.0.0.8:30002', '10.0.0.9:30003'];
const replica = (index: number, o: Partial<Replica> = {}): Replica => ({
  index,
  nodeId: 'node_swarm',
  containerId: `svc${index}`,
  upstream: up[index]!,
  health: 'healthy',
  ...o,
});
const live = (replicas = [replica(0), replica(1), replica(2)]) =>
  aRelease({ status: 'completed', replicaSet: { replicas } });
const seen = (index: number, answered = true, movedTo: string | null = null): TaskSighting => ({
  index,
  answered,
  movedTo,
});

describe('planSwarmEdge', () => {
  it('changes nothing while every task answers where the edge sends it', () => {
    expect(planSwarmEdge(live(), [seen(0), seen(1), seen(2)], up)).toBeNull();
  });

  it('takes a task that does not answer out of the edge, the replica set unchanged', () => {
    const plan = planSwarmEdge(live(), [seen(0), seen(1, false), seen(2)], up)!;
    expect(plan.edge).toEqual([up[0], up[2]]);
    expect(plan).toMatchObject({ left: [1], joined: [], moved: [] });
    expect(plan.replicas).toEqual(live().replicaSet!.replicas);
  });

  it('does not write again once the silent task is out', () => {
    expect(planSwarmEdge(live(), [seen(0), seen(1, false), seen(2)], [up[0]!, up[2]!])).toBeNull();
  });

  it('moves a replica Swarm runs elsewhere now (answering there) and puts it in the edge', () => {
    const plan = planSwarmEdge(
      live(),
      [seen(0), seen(1, false, '10.0.0.9:30004'), seen(2)],
      [up[0]!, up[2]!],
    )!;
    expect(plan.edge).toEqual([up[0], '10.0.0.9:30004', up[2]]);
    expect(plan.moved).toEqual([{ index: 1, from: up[1], to: '10.0.0.9:30004' }]);
    expect(plan.joined).toEqual([1]);
    expect(plan.replicas[1]).toMatchObject({ upstream: '10.0.0.9:30004', health: 'healthy' });
  });

  it('puts a task that answers again back in the edge', () => {
    const plan = planSwarmEdge(live(), [seen(0), seen(1), seen(2)], [up[0]!, up[2]!])!;
    expect(plan).toMatchObject({ edge: up, left: [], joined: [1], moved: [] });
  });

  it('never empties the edge: with no task answering the route is left as it is', () => {
    expect(planSwarmEdge(live(), [seen(0, false), seen(1, false), seen(2, false)], up)).toBeNull();
  });

  it('keeps off a route that holds an upstream none of the replicas has (a switch owns it)', () => {
    expect(planSwarmEdge(live(), [seen(1, false)], ['10.0.0.7:31000', up[1]!])).toBeNull();
  });

  it('ignores stopped replicas and leaves replicas it did not see in the edge', () => {
    const release = live([replica(0), replica(1, { health: 'stopped' }), replica(2)]);
    const plan = planSwarmEdge(release, [seen(2, false)], [up[0]!, up[2]!])!;
    expect(plan).toMatchObject({ edge: [up[0]], left: [2] });
  });
});
