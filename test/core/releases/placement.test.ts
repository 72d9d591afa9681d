/** Placement is pure: compared by exact equality, like plan.ts. */
import { describe, expect, it } from 'vitest';
import { eligibleNodes, placeReplicas } from '../../../core/releases/placement.ts';

const node = (id: string, labels: Record<string, string> = {}, drainMode = false) => ({
  id,
  name: id.replace('node_', ''),
  labels,
  drainMode,
});
const three = [node('node_a', { role: 'app' }), node('node_b', { role: 'app' }), node('node_c')];
const base = { labels: {}, capacity: {}, used: {}, memoryMb: null, cpus: null };

describe('placeReplicas', () => {
  it('spreads replicas over every eligible node, fewest first, then id order', () => {
    expect(placeReplicas({ ...base, count: 5, nodes: three })).toEqual({
      ok: true,
      nodeIds: ['node_a', 'node_b', 'node_c', 'node_a', 'node_b'],
    });
  });

  it('gives every replica to a Swarm cluster, whatever its labels: Swarm places the tasks', () => {
    const swarm = { ...node('node_s'), kind: 'swarm' as const };
    const placed = placeReplicas({
      ...base,
      count: 3,
      labels: { role: 'app' },
      nodes: [...three, swarm],
      // Neither the record's size nor what selfdevop placed applies: Swarm accounts for it.
      capacity: { node_s: { cpus: 0, memoryMb: 0 } },
      memoryMb: 512,
    });
    expect(placed).toEqual({ ok: true, nodeIds: ['node_s', 'node_s', 'node_s'] });
    // A draining cluster takes none: the loose engines do.
    expect(
      placeReplicas({ ...base, count: 2, nodes: [...three, { ...swarm, drainMode: true }] }),
    ).toEqual({ ok: true, nodeIds: ['node_a', 'node_b'] });
  });

  it("breaks a tie by the org's replicas on each node, so services without limits spread too", () => {
    // Two services of 2 replicas already placed by id order would leave node_c empty forever.
    const used = {
      node_a: { cpus: 0, memoryMb: 0, replicas: 2 },
      node_b: { cpus: 0, memoryMb: 0, replicas: 2 },
    };
    expect(placeReplicas({ ...base, count: 2, nodes: three, used })).toEqual({
      ok: true,
      nodeIds: ['node_c', 'node_a'],
    });
    // Still one per node before a second anywhere: the service's own spread comes first.
    expect(
      placeReplicas({
        ...base,
        count: 3,
        nodes: three,
        used: { node_c: { ...used.node_a, replicas: 9 } },
      }),
    ).toEqual({ ok: true, nodeIds: ['node_a', 'node_b', 'node_c'] });
  });

  it('places nothing for 0 replicas', () => {
    expect(placeReplicas({ ...base, count: 0, nodes: [] })).toEqual({ ok: true, nodeIds: [] });
  });

  it('uses only nodes with every required label, and none that drains', () => {
    expect(placeReplicas({ ...base, count: 3, labels: { role: 'app' }, nodes: three })).toEqual({
      ok: true,
      nodeIds: ['node_a', 'node_b', 'node_a'],
    });
    const drained = [node('node_a', { role: 'app' }, true), ...three.slice(1)];
    expect(placeReplicas({ ...base, count: 2, labels: { role: 'app' }, nodes: drained })).toEqual({
      ok: true,
      nodeIds: ['node_b', 'node_b'],
    });
    expect(eligibleNodes(three, { role: 'app', region: 'fra' })).toEqual([]);
  });

  it('counts replicas that stay when spreading new ones', () => {
    expect(placeReplicas({ ...base, count: 2, nodes: three, keep: ['node_a', 'node_b'] })).toEqual({
      ok: true,
      nodeIds: ['node_c', 'node_a'],
    });
  });

  it('says no node takes replicas when labels match none', () => {
    expect(placeReplicas({ ...base, count: 1, labels: { region: 'fra' }, nodes: three })).toEqual({
      ok: false,
      code: 'no_eligible_node',
      reason: 'no node with labels region=fra takes replicas: 3 registered, 0 draining',
    });
  });

  it('keeps to what each engine has left after what selfdevop placed', () => {
    const capacity = {
      node_a: { cpus: 2, memoryMb: 1024 },
      node_b: { cpus: 2, memoryMb: 1024 },
      node_c: { cpus: 2, memoryMb: 1024 },
    };
    const used = { node_a: { cpus: 0, memoryMb: 768 } };
    expect(
      placeReplicas({ ...base, count: 4, nodes: three, capacity, used, memoryMb: 512, cpus: 0.5 }),
    ).toEqual({ ok: true, nodeIds: ['node_b', 'node_c', 'node_b', 'node_c'] });
  });

  it('names the missing capacity when a replica fits nowhere', () => {
    const capacity = {
      node_a: { cpus: 1, memoryMb: 1024 },
      node_b: { cpus: 1, memoryMb: 600 },
    };
    expect(
      placeReplicas({
        ...base,
        count: 4,
        nodes: three.slice(0, 2),
        capacity,
        memoryMb: 512,
        cpus: 0.5,
      }),
    ).toEqual({
      ok: false,
      code: 'insufficient_capacity',
      reason:
        'replica 4 of 4 (512 MB, 0.5 CPUs) fits on no eligible node: node b, the roomiest, lacks 424 MB of memory',
    });
  });

  it('treats a node with no known capacity as unlimited', () => {
    expect(
      placeReplicas({ ...base, count: 3, nodes: [node('node_x')], memoryMb: 100_000, cpus: 64 }),
    ).toEqual({ ok: true, nodeIds: ['node_x', 'node_x', 'node_x'] });
  });
});
