/** What a lost node and a returning one mean for the replicas: pure plans, by equality. */
import { describe, expect, it } from 'vitest';
import { planNodeLoss, planNodeReturn } from '../../../core/nodes/node-loss.ts';
import type { Release, Replica } from '../../../core/models.ts';
import { replicaContainerName } from '../../../core/releases/plan.ts';
import { aRelease } from '../releases/builders.ts';

const replica = (index: number, nodeId: string, o: Partial<Replica> = {}): Replica => ({
  index,
  nodeId,
  containerId: `c${index}`,
  upstream: `10.0.0.${nodeId.slice(-1)}:80${index}`,
  health: 'healthy',
  ...o,
});
const serving = (id: string, replicas: Replica[], o: Partial<Release> = {}): Release =>
  aRelease({ id, status: 'completed', replicaSet: { replicas }, ...o });
const svc = { id: 'svc_000001' };

describe('node loss plan', () => {
  it('takes the lost replicas out, keeps the survivors on nodes not lost, and restores the count', () => {
    const web = serving('rel_a', [replica(0, 'n1'), replica(1, 'n2'), replica(2, 'n3')]);
    const other = serving('rel_b', [replica(0, 'n3')], { serviceId: 'svc_other' });
    const steps = planNodeLoss(
      [
        { service: svc, live: web, inFlight: null },
        { service: { id: 'svc_other' }, live: other, inFlight: null },
      ],
      'n2',
      // n3 was lost before: its replica is no survivor either.
      new Set(['n2', 'n3']),
    );
    expect(steps).toEqual([
      {
        releaseId: 'rel_a',
        serviceId: 'svc_000001',
        environmentId: 'env_000001',
        lost: [1],
        survivors: ['10.0.0.1:800'],
        desired: 3,
      },
    ]);
  });

  it('ignores releases not serving, stopped replicas, and releases with nothing on the node', () => {
    const failed = serving('rel_f', [replica(0, 'n2')], { status: 'failed' });
    const stopped = serving('rel_s', [replica(0, 'n2', { health: 'stopped' }), replica(1, 'n1')]);
    expect(
      planNodeLoss(
        [
          { service: svc, live: failed, inFlight: null },
          { service: svc, live: stopped, inFlight: null },
          { service: svc, live: null, inFlight: serving('rel_i', [replica(0, 'n2')]) },
        ],
        'n2',
        new Set(['n2']),
      ),
    ).toEqual([]);
  });

  it('leaves no survivor when every replica was on lost nodes (the edge keeps its route)', () => {
    const web = serving('rel_a', [replica(0, 'n2'), replica(1, 'n2')]);
    expect(
      planNodeLoss([{ service: svc, live: web, inFlight: null }], 'n2', new Set(['n2'])),
    ).toEqual([
      {
        releaseId: 'rel_a',
        serviceId: 'svc_000001',
        environmentId: 'env_000001',
        lost: [0, 1],
        survivors: [],
        desired: 2,
      },
    ]);
  });
});

describe('node return plan', () => {
  const labels = (r: Release, role = 'web') => ({
    'selfdevop.org': r.orgId,
    'selfdevop.service': r.serviceId,
    'selfdevop.environment': r.environmentId,
    'selfdevop.release': r.id,
    'selfdevop.role': role,
  });
  const on = (r: Release, index: number, role = 'web') => ({
    name: replicaContainerName(r, index),
    labels: labels(r, role),
  });

  it('removes replaced replicas and older releases, keeps wanted ones and the warm previous release', () => {
    const old = aRelease({ id: 'rel_old' });
    const warm = aRelease({ id: 'rel_warm' });
    // Replica 1 was on n2 and was replaced by 3 on n3 while n2 was lost; 2 is still on n2.
    const live = serving('rel_live', [replica(0, 'n1'), replica(2, 'n2'), replica(3, 'n3')], {
      previousReleaseId: 'rel_warm',
    });
    const plan = planNodeReturn(
      'n2',
      [
        on(live, 1),
        on(live, 2),
        on(old, 0),
        on(warm, 0),
        // A migration one-off and a container of another service environment: not ours to judge.
        on(live, 9, 'migrate'),
        { name: 'x', labels: { ...labels(live), 'selfdevop.service': 'svc_gone' } },
      ],
      [{ service: svc, live, inFlight: null }],
    );
    expect(plan).toEqual({
      remove: [
        {
          name: replicaContainerName(live, 1),
          releaseId: 'rel_live',
          reason: 'replaced while the node was lost',
        },
        {
          name: replicaContainerName(old, 0),
          releaseId: 'rel_old',
          reason: 'its release no longer serves',
        },
      ],
      keep: [replicaContainerName(live, 2), replicaContainerName(warm, 0)],
      rejoin: ['rel_live'],
    });
  });

  it("keeps an in-flight release's candidates planned on the node", () => {
    const live = serving('rel_live', [replica(0, 'n1')]);
    const next = aRelease({
      id: 'rel_next',
      status: 'candidate_started',
      replicaSet: { replicas: [replica(0, 'n2', { health: 'planned' })] },
    });
    expect(planNodeReturn('n2', [on(next, 0)], [{ service: svc, live, inFlight: next }])).toEqual({
      remove: [],
      keep: [replicaContainerName(next, 0)],
      rejoin: [],
    });
  });
});
