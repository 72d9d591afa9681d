import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import type { Principal } from '../../../core/deps.ts';
import {
  advanceRelease,
  cancelRelease,
  createRelease,
  handleReleaseStep,
  releaseStepsQueue,
  sweepJoblessReleases,
  type ReleaseStepMessage,
} from '../../../core/releases/engine.ts';
import { insertRelease } from '../../../core/releases/create.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { OrgSlots } from '../../../core/releases/slots.ts';
import { aService } from './builders.ts';
import { deployer, dockerHost, orgId, setup, type Harness } from './harness.ts';

const running = (h: Harness) =>
  h.runtime
    .containers(dockerHost)
    .filter((c) => c.state === 'running')
    .map((c) => c.spec.name);

/** Runs the step messages sent so far, once each, ignoring their delays. */
async function runSent(h: Harness): Promise<void> {
  for (const s of h.queue.of(releaseStepsQueue).filter((m) => !m.handled)) {
    s.handled = true;
    await advanceRelease(h.deps, s.payload as ReleaseStepMessage);
  }
}

/** What createRelease commits, without the send a crash would skip. */
async function crashBeforeSend(h: Harness, image: string) {
  return h.repos(async (repos) =>
    insertRelease(
      h.deps,
      repos,
      {
        serviceId: h.service.id,
        environmentId: 'env_000001',
        image,
        gitSha: null,
        kind: 'deploy',
      },
      deployer,
      null,
    ),
  );
}

describe('a release whose first step was lost', () => {
  it('is found by the sweep once joblessAfterSeconds have passed, and then deploys', async () => {
    const h = await setup({}, { joblessAfterSeconds: 60 });
    const stuck = await crashBeforeSend(h, 'shop/web:1');
    await expect(
      createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:2' }),
    ).rejects.toMatchObject({
      code: 'release_in_flight',
    });
    h.clock.advance(59_000);
    expect(await sweepJoblessReleases(h.deps)).toBe(0);
    h.clock.advance(2_000);
    expect(await sweepJoblessReleases(h.deps)).toBe(1);
    // A second sweep before the step ran sends nothing new (same idempotency key).
    await sweepJoblessReleases(h.deps);
    expect(h.queue.of(releaseStepsQueue)).toHaveLength(1);
    await h.drain();
    expect((await h.release(stuck.id)).status).toBe('completed');
    expect(await sweepJoblessReleases(h.deps)).toBe(0);
  });

  it('is not taken for lost once a step has been recorded', async () => {
    const store = new MemoryStore();
    const h = await setup({}, { joblessAfterSeconds: 1 }, { store });
    const r = await crashBeforeSend(h, 'shop/web:1');
    await h.repos((repos) =>
      repos.releaseSteps.upsert({
        releaseId: r.id,
        orgId,
        name: 'build',
        status: 'running',
        attempt: 1,
        startedAt: h.clock.now().toISOString(),
        finishedAt: null,
        error: null,
      }),
    );
    h.clock.advance(5_000);
    expect(await store.releaseLookup.joblessReleases(h.clock.now().toISOString(), 10)).toEqual([]);
  });
});

describe('cancelling a release', () => {
  it('cancels a job-less release at once: failed, audited, the next deploy accepted', async () => {
    const h = await setup();
    const stuck = await crashBeforeSend(h, 'shop/web:1');
    const done = await cancelRelease(h.deps, deployer, { releaseId: stuck.id });
    expect(done).toMatchObject({ status: 'failed', error: 'cancelled by user usr_1' });
    // Nothing ran for it: no clean-up to queue.
    expect(h.queue.of(releaseStepsQueue)).toEqual([]);
    const events = await h.repos((r) => r.audit.list({ limit: 10 }, { targetId: stuck.id }));
    expect(events.items.map((e) => [e.action, e.actorId, e.data.reason])).toEqual([
      ['release.created', 'usr_1', undefined],
      ['release.failed', 'usr_1', 'cancelled by user usr_1'],
    ]);
    const job = (await h.repos((r) => r.deployJobs.list({ limit: 10 }))).items[0];
    expect(job?.status).toBe('failed');
    expect((await h.deploy('shop/web:2')).status).toBe('completed');
  });

  it('removes the candidate of a release waiting on its health check; the old one serves', async () => {
    const h = await setup({
      health: { intervalMs: 1000, timeoutMs: 1000, successes: 1, deadlineMs: 600_000 },
    });
    const v1 = await h.deploy('shop/web:1');
    const route = await h.edge.get('sdo-svc_0abc12-env_000001');
    const v2 = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:unhealthy',
    });
    // Four messages: build, start, migrate, then the first health slice.
    for (let i = 0; i < 4; i++) await runSent(h);
    expect((await h.release(v2.id)).status).toBe('health_validating');
    expect(running(h).sort()).toEqual([containerName(v1), containerName(v2)].sort());

    const cancelled = await cancelRelease(h.deps, deployer, { releaseId: v2.id });
    expect(cancelled.status).toBe('failed');
    await runSent(h);
    expect(running(h)).toEqual([containerName(v1)]);
    expect(await h.edge.get('sdo-svc_0abc12-env_000001')).toEqual(route);
    expect((await h.release(v2.id)).error).toBe('cancelled by user usr_1');
  });

  it('refuses a finished release and a viewer', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    await expect(cancelRelease(h.deps, deployer, { releaseId: v1.id })).rejects.toMatchObject({
      code: 'release_not_cancellable',
      kind: 'conflict',
    });
    const viewer: Principal = { ...deployer, role: 'viewer' };
    await expect(cancelRelease(h.deps, viewer, { releaseId: v1.id })).rejects.toMatchObject({
      kind: 'forbidden',
    });
  });
});

describe('the health wait', () => {
  it('re-queues itself with a delay between slices and keeps its deadline and row', async () => {
    const h = await setup(
      { health: { intervalMs: 1000, timeoutMs: 1000, successes: 1, deadlineMs: 12_000 } },
      { healthSliceMs: 5_000 },
    );
    const v1 = await h.deploy('shop/web:unhealthy');
    expect(v1.error).toBe('health check did not pass within 12000 ms: GET /health → 404');
    const health = h.queue
      .of(releaseStepsQueue)
      .filter((s) => (s.payload as ReleaseStepMessage).status === 'health_validating');
    expect(
      health.map((s) => [(s.payload as ReleaseStepMessage).hop, s.options.delaySeconds]),
    ).toEqual([
      [undefined, undefined],
      [1, 1],
      [2, 1],
    ]);
    const steps = await h.repos((r) => r.releaseSteps.list(v1.id));
    expect(steps.find((s) => s.name === 'health_check')).toMatchObject({
      status: 'failed',
      attempt: 1,
      startedAt: '2026-01-01T00:00:00.000Z',
    });
  });
});

describe("one org's share of a worker", () => {
  it('OrgSlots gives each org at most its share, freed once', () => {
    const slots = new OrgSlots(2);
    const a1 = slots.take('org_a')!;
    const a2 = slots.take('org_a')!;
    expect(slots.take('org_a')).toBeNull();
    expect(slots.take('org_b')).not.toBeNull();
    a1();
    a1();
    expect(slots.take('org_a')).not.toBeNull();
    expect(slots.take('org_a')).toBeNull();
    a2();
  });

  it('defers a step of an org at its share instead of running it', async () => {
    const h = await setup({}, { maxStepsPerOrg: 1 });
    const other = aService({ id: 'svc_0abc13', name: 'api', image: 'shop/web:1' });
    await h.repos((r) => r.services.insert(other));
    // The first build's ping waits until the test lets it go: its step holds the org's slot.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let pings = 0;
    const runtime = Object.create(h.runtime) as typeof h.runtime;
    runtime.ping = async (target) => {
      if (pings++ === 0) await gate;
      return h.runtime.ping(target);
    };
    const handler = handleReleaseStep({ ...h.deps, runtime });
    const r1 = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:1',
    });
    const r2 = await createRelease(h.deps, deployer, { serviceId: other.id, image: 'shop/web:1' });
    const [m1, m2] = h.queue.of(releaseStepsQueue);
    const held = handler({ id: 'm1', attempt: 1, payload: m1!.payload as ReleaseStepMessage });
    await handler({ id: 'm2', attempt: 1, payload: m2!.payload as ReleaseStepMessage });
    expect((await h.release(r2.id)).status).toBe('queued');
    const deferred = h.queue.of(releaseStepsQueue).at(-1)!;
    expect(deferred.payload).toEqual({ orgId, releaseId: r2.id, status: 'queued', hop: 1 });
    expect(deferred.options).toMatchObject({ delaySeconds: 1, group: 'svc_0abc13:env_000001' });
    open();
    await held;
    expect((await h.release(r1.id)).status).toBe('artifact_ready');
    // The slot is free again: the deferred step runs.
    await handler({ id: 'm3', attempt: 1, payload: deferred.payload as ReleaseStepMessage });
    expect((await h.release(r2.id)).status).toBe('artifact_ready');
  });
});
