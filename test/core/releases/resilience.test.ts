import { describe, expect, it } from 'vitest';
import { ReleaseAlreadyInFlight } from '../../../core/errors.ts';
import type { ReleaseStatus } from '../../../core/models.ts';
import {
  advanceRelease,
  createRelease,
  getRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseStepMessage,
} from '../../../core/releases/engine.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { deployer, dockerHost, setup, type Harness } from './harness.ts';

const containersOf = (h: Harness, releaseId: string) =>
  h.runtime.containers(dockerHost).filter((c) => c.spec.labels['selfdevop.release'] === releaseId);

const killable: ReleaseStatus[] = [
  'queued',
  'building',
  'artifact_ready',
  'candidate_started',
  'migrating',
  'health_validating',
  'traffic_shifted',
];

describe('a worker that dies mid-step', () => {
  it.each(killable)(
    'is redelivered after dying before leaving %s, and the release completes once',
    async (status) => {
      const h = await setup({ migrateCommand: './migrate' });
      const v1 = await h.deploy('shop/web:1');
      h.store.killBefore = status;
      const v2 = await h.deploy('shop/web:2');
      expect(h.store.killBefore).toBeNull();

      expect(v2).toMatchObject({ status: 'completed', error: null, previousReleaseId: v1.id });
      expect(containersOf(h, v2.id)).toHaveLength(1);
      expect(containersOf(h, v2.id)[0]).toMatchObject({ state: 'running', published: v2.upstream });
      expect((await h.edge.get('sdo-svc_0abc12-env_000001'))?.upstreams).toEqual([v2.upstream]);
      const view = await getRelease(h.deps, deployer, v2.id);
      expect(view.steps.map((s) => [s.name, s.status])).toEqual([
        ['build', 'succeeded'],
        ['start_candidate', 'succeeded'],
        ['migrate', 'succeeded'],
        ['health_check', 'succeeded'],
        ['switch_traffic', 'succeeded'],
        ['complete', 'succeeded'],
      ]);
      // One retirement of v1, one completion event: the redelivery did not repeat the effects.
      expect(h.queue.of(releaseRetireQueue)).toHaveLength(1);
      const actions = (
        await h.repos((r) => r.audit.list({ limit: 50 }, { targetId: v2.id }))
      ).items.map((e) => e.action);
      expect(actions.filter((a) => a === 'release.completed')).toHaveLength(1);
    },
  );

  it('finds the container its first attempt started instead of starting another', async () => {
    const h = await setup();
    h.store.killBefore = 'artifact_ready';
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    expect(h.runtime.calls.filter((c) => c.method === 'start').map((c) => c.subject)).toEqual([
      containerName(v1),
      containerName(v1),
    ]);
    expect(containersOf(h, v1.id)).toHaveLength(1);
    const view = await getRelease(h.deps, deployer, v1.id);
    expect(view.steps.find((s) => s.name === 'start_candidate')).toMatchObject({
      status: 'succeeded',
      attempt: 2,
    });
  });

  it('returns traffic to the previous release when the redelivered health check fails after the switch', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    // Died after switching the route but before recording it; by the redelivery v2 is sick.
    h.store.killBefore = 'health_validating';
    h.store.onKill = () => {
      const v2 = h.runtime
        .containers(dockerHost)
        .find((c) => c.spec.labels['selfdevop.release'] !== v1.id)!;
      h.runtime.setHealthy(dockerHost, v2.spec.name, false);
    };
    const v2 = await h.deploy('shop/web:2');
    expect(v2).toMatchObject({
      status: 'failed',
      error: 'health check did not pass within 30000 ms: GET /health → 404',
    });
    expect(h.edge.changes.map((c) => (c.op === 'put' ? c.route.upstreams : c.op))).toEqual([
      [v1.upstream],
      [v2.upstream],
      [v1.upstream],
    ]);
    expect(containersOf(h, v2.id)).toHaveLength(0);
    const lines = (
      await (
        await import('../../../core/releases/engine.ts')
      ).listReleaseLogs(h.deps, deployer, v2.id)
    ).map((l) => l.line);
    expect(lines).toContain(`traffic returned to release ${v1.id} at ${v1.upstream}`);
  });

  it('removes the route of a first release that fails after its switch', async () => {
    const h = await setup();
    h.store.killBefore = 'health_validating';
    h.store.onKill = () => {
      const c = h.runtime.containers(dockerHost)[0]!;
      h.runtime.setHealthy(dockerHost, c.spec.name, false);
    };
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('failed');
    expect(h.edge.changes.map((c) => c.op)).toEqual(['put', 'remove']);
    expect(await h.edge.list()).toEqual([]);
  });

  it('resends the next message when it died after moving the release but before sending', async () => {
    const h = await setup();
    const send = h.queue.send.bind(h.queue);
    let failed = false;
    h.queue.send = async (queue, payload, options) => {
      if (!failed && (payload as ReleaseStepMessage).status === 'candidate_started') {
        failed = true;
        throw new Error('worker killed before sending');
      }
      return send(queue, payload, options);
    };
    const v1 = await h.deploy('shop/web:1');
    expect(failed).toBe(true);
    expect(v1.status).toBe('completed');
    expect(containersOf(h, v1.id)).toHaveLength(1);
  });
});

describe('duplicate and stale messages', () => {
  it('runs nothing for a message whose release has moved on', async () => {
    const h = await setup({ migrateCommand: './migrate' });
    const v1 = await h.deploy('shop/web:1');
    const callsBefore = h.runtime.calls.length;
    const changesBefore = h.edge.changes.length;
    for (const s of h.queue.of(releaseStepsQueue)) {
      expect(await advanceRelease(h.deps, s.payload as ReleaseStepMessage, 1)).toEqual({
        ran: false,
        status: 'completed',
      });
    }
    expect(h.runtime.calls.length).toBe(callsBefore);
    expect(h.edge.changes.length).toBe(changesBefore);
    expect(await h.release(v1.id)).toEqual(v1);
  });

  it('delivers each step twice without doing any step twice', async () => {
    const h = await setup({ migrateCommand: './migrate' });
    const r = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:1',
    });
    const ran: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      const next = h.queue.of(releaseStepsQueue).find((s) => !s.handled);
      if (!next) break;
      next.handled = true;
      ran.push((await advanceRelease(h.deps, next.payload as ReleaseStepMessage, 1)).ran);
      ran.push((await advanceRelease(h.deps, next.payload as ReleaseStepMessage, 1)).ran);
    }
    expect(ran).toEqual([true, false, true, false, true, false, true, false, true, false]);
    expect((await h.release(r.id)).status).toBe('completed');
    expect(
      h.runtime.calls.filter((c) => c.method === 'start' || c.method === 'runOnce'),
    ).toHaveLength(2);
    expect(h.edge.changes).toHaveLength(1);
  });

  it('drops a message for a release that does not exist', async () => {
    const h = await setup();
    expect(
      await advanceRelease(h.deps, {
        orgId: 'org_000001',
        releaseId: 'rel_nope',
        status: 'queued',
      }),
    ).toEqual({
      ran: false,
      status: null,
    });
    expect(h.logger.entries.map((e) => e.msg)).toEqual([
      'release step message for a release that does not exist: dropped',
    ]);
  });
});

describe('one release per service environment', () => {
  it('lets one of two concurrent releases in and refuses the other with 409', async () => {
    const h = await setup();
    const results = await Promise.allSettled([
      createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:1' }),
      createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:2' }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    const fulfilled = results.find((r) => r.status === 'fulfilled') as PromiseFulfilledResult<{
      id: string;
    }>;
    expect(rejected.reason).toBeInstanceOf(ReleaseAlreadyInFlight);
    expect(rejected.reason).toMatchObject({
      kind: 'conflict',
      code: 'release_in_flight',
      details: { releaseId: fulfilled.value.id },
    });
    // Only the accepted release was queued.
    expect(h.queue.of(releaseStepsQueue)).toHaveLength(1);
    await h.drain();
    const next = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:2',
    });
    expect(next.previousReleaseId).toBe(fulfilled.value.id);
  });
});

describe('through the MemoryQueue', () => {
  it('a worker consuming both queues deploys, then retires the old release after the warm window', async () => {
    const h = await setup({ migrateCommand: './migrate', warmSeconds: 60 });
    const stops = [
      await h.queue.consume(releaseStepsQueue, handleReleaseStep(h.deps)),
      await h.queue.consume(releaseRetireQueue, handleReleaseRetire(h.deps)),
    ];
    try {
      const settle = async (id: string) => {
        for (let i = 0; i < 500; i++) {
          const r = await h.release(id);
          if (r.status === 'completed' || r.status === 'failed') return r;
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
        throw new Error(`release ${id} did not settle`);
      };
      const v1 = await settle(
        (await createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:1' }))
          .id,
      );
      const v2 = await settle(
        (await createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:2' }))
          .id,
      );
      expect([v1.status, v2.status]).toEqual(['completed', 'completed']);
      expect(containersOf(h, v1.id)).toHaveLength(1);

      h.clock.advance(60_000);
      h.queue.inner.pump();
      for (let i = 0; i < 500 && containersOf(h, v1.id).length > 0; i++)
        await new Promise((r) => setTimeout(r, 2));
      expect(containersOf(h, v1.id)).toHaveLength(0);
      expect(containersOf(h, v2.id)).toHaveLength(1);
    } finally {
      for (const stop of stops) await stop();
    }
  });
});
