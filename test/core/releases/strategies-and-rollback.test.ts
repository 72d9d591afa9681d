import { NoEngineRuntime } from '../../../adapters/runtime/none.ts';
import { describe, expect, it } from 'vitest';
import { Forbidden, NotFound, ReleaseAlreadyInFlight, Unavailable } from '../../../core/errors.ts';
import {
  createRelease,
  getRelease,
  listReleaseLogs,
  NothingToRollBackTo,
  ReleaseNotRollbackable,
  handleReleaseRollback,
  releaseRetireQueue,
  releaseRollbackQueue,
  retireRelease,
  rollbackRelease,
  type ReleaseRollbackMessage,
} from '../../../core/releases/engine.ts';
import { containerName, replicaContainerName } from '../../../core/releases/plan.ts';
import { deployer, dockerHost, setup, type Harness } from './harness.ts';

const routeId = 'sdo-svc_0abc12-env_000001';
const running = (h: Harness) =>
  h.runtime
    .containers(dockerHost)
    .filter((c) => c.state === 'running')
    .map((c) => c.spec.name);
const actionsOf = async (h: Harness, id: string) =>
  (await h.repos((r) => r.audit.list({ limit: 50 }, { targetId: id }))).items.map((e) => e.action);

describe('the replace strategy', () => {
  it('stops the old container before starting the new one, and removes it once the new one serves', async () => {
    const h = await setup({ strategy: 'replace', drainSeconds: 20 });
    const v1 = await h.deploy('shop/web:1');
    h.runtime.calls.length = 0;
    const v2 = await h.deploy('shop/web:2');
    expect(v2.status).toBe('completed');
    expect(h.runtime.calls.filter((c) => ['stop', 'start', 'remove'].includes(c.method))).toEqual([
      { method: 'stop', dockerHost, subject: containerName(v1) },
      { method: 'start', dockerHost, subject: containerName(v2) },
    ]);
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v2.upstream]);
    // Replace keeps nothing warm: the retirement is due at once.
    expect(h.queue.of(releaseRetireQueue).map((s) => s.options.delaySeconds)).toEqual([0]);
    await h.retireDue();
    expect(h.runtime.containers(dockerHost).map((c) => c.spec.name)).toEqual([containerName(v2)]);
  });

  it('starts the old release again when the new one fails, and points the route at it', async () => {
    const h = await setup({ strategy: 'replace' });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:unhealthy');
    expect(v2.status).toBe('failed');
    expect(running(h)).toEqual([containerName(v1)]);
    const restored = await h.release(v1.id);
    expect(restored.status).toBe('completed');
    expect(restored.upstream).not.toBeNull();
    // The restarted container got a new host port: the route follows it.
    expect((await h.edge.get(routeId))?.upstreams).toEqual([restored.upstream]);
    expect(h.runtime.httpGet(restored.upstream!, '/health')?.status).toBe(200);
    const lines = (await listReleaseLogs(h.deps, deployer, v2.id)).map((l) => l.line);
    expect(lines).toContain(`release ${v1.id} restored at ${restored.upstream}`);
  });
});

describe('manual rollback', () => {
  it('switches back to the warm previous container at once (fast path)', async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    const clockBefore = h.clock.now().getTime();
    const result = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    // No wait of any kind (no health check, no sleep): the manual clock never moved. How fast
    // that is on real engines is bench:deploy's rollbackMs, not a test's stopwatch.
    expect(h.clock.now().getTime()).toBe(clockBefore);

    expect(result.path).toBe('warm');
    expect(result.redeploy).toBeNull();
    expect(result.release).toMatchObject({ id: v2.id, status: 'rolled_back' });
    expect(result.to).toMatchObject({ id: v1.id, status: 'completed', upstream: v1.upstream });
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v1.upstream]);
    expect((await h.release(v2.id)).status).toBe('rolled_back');
    expect((await h.release(v1.id)).status).toBe('completed');
    expect(await actionsOf(h, v2.id)).toContain('release.rolled_back');
    const event = (
      await h.repos((r) => r.audit.list({ limit: 5 }, { action: 'release.rolled_back' }))
    ).items[0]!;
    expect(event).toMatchObject({
      actorType: 'user',
      actorId: 'usr_1',
      data: { to: v1.id, path: 'warm' },
    });

    // After the warm window v1 keeps serving (it is serving again) and v2 is retired.
    h.clock.advance(300_000);
    await h.retireDue();
    expect(running(h)).toEqual([containerName(v1)]);
    // The next deploy builds on v1 again.
    const v3 = await h.deploy('shop/web:3');
    expect(v3).toMatchObject({ status: 'completed', previousReleaseId: v1.id });
  });

  it('redeploys the previous image digest when its container is gone (slow path)', async () => {
    const h = await setup({ warmSeconds: 60 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    h.clock.advance(60_000);
    await h.retireDue();
    expect(running(h)).toEqual([containerName(v2)]);

    const result = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(result.path).toBe('redeploy');
    expect(result.release).toMatchObject({ id: v2.id, status: 'completed' });
    expect(result.redeploy).toMatchObject({
      status: 'queued',
      image: v1.imageDigest,
      previousReleaseId: v2.id,
    });
    const job = (await h.repos((r) => r.deployJobs.list({ limit: 10 }))).items.find(
      (j) => j.releaseId === result.redeploy!.id,
    );
    expect(job?.kind).toBe('rollback');

    await h.drain();
    const v3 = await h.release(result.redeploy!.id);
    expect(v3.status).toBe('completed');
    expect((await h.release(v2.id)).status).toBe('rolled_back');
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v3.upstream]);
    expect(h.runtime.container(dockerHost, containerName(v3))?.spec.image).toBe(v1.imageDigest);
    const rolledBack = (
      await h.repos((r) => r.audit.list({ limit: 5 }, { action: 'release.rolled_back' }))
    ).items;
    expect(rolledBack).toEqual([
      expect.objectContaining({
        targetId: v2.id,
        actorType: 'system',
        data: expect.objectContaining({ to: v3.id, path: 'redeploy' }),
      }),
    ]);
    // v2 stays warm for the window after the redeploy, then goes.
    h.clock.advance(60_000);
    await h.retireDue();
    expect(running(h)).toEqual([containerName(v3)]);
  });

  it('redeploys instead when the warm container no longer answers its health check', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    h.runtime.setHealthy(dockerHost, containerName(v1), false);
    const result = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(result.path).toBe('redeploy');
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v2.upstream]);
    expect(h.probe.calls.at(-1)).toEqual({ url: `http://${v1.upstream}/health`, timeoutMs: 500 });
  });

  it('leaves the route and statuses alone when the edge is unreachable', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    h.edge.setUnreachable(true);
    await expect(rollbackRelease(h.deps, deployer, { releaseId: v2.id })).rejects.toBeInstanceOf(
      Unavailable,
    );
    h.edge.setUnreachable(false);
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v2.upstream]);
    expect((await h.release(v2.id)).status).toBe('completed');
    expect((await h.release(v1.id)).status).toBe('completed');
  });

  it('refuses what cannot be rolled back, with 409s that say why', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    await expect(rollbackRelease(h.deps, deployer, { releaseId: v1.id })).rejects.toThrow(
      new NothingToRollBackTo(v1.id),
    );
    const v2 = await h.deploy('shop/web:2');
    await expect(rollbackRelease(h.deps, deployer, { releaseId: v1.id })).rejects.toThrow(
      `release ${v1.id} cannot be rolled back: it is not serving; release ${v2.id} is`,
    );
    const bad = await h.deploy('shop/web:unhealthy');
    const err = await rollbackRelease(h.deps, deployer, { releaseId: bad.id }).catch((e) => e);
    expect(err).toBeInstanceOf(ReleaseNotRollbackable);
    expect(err).toMatchObject({
      kind: 'conflict',
      message: `release ${bad.id} cannot be rolled back: it is failed; only a completed release can be rolled back`,
    });

    const inFlight = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:3',
    });
    await expect(rollbackRelease(h.deps, deployer, { releaseId: v2.id })).rejects.toThrow(
      new ReleaseAlreadyInFlight(inFlight.id),
    );
    await h.drain();

    await expect(
      rollbackRelease(h.deps, deployer, { releaseId: 'rel_unknown' }),
    ).rejects.toBeInstanceOf(NotFound);
    const viewer = { ...deployer, role: 'viewer' as const };
    await expect(rollbackRelease(h.deps, viewer, { releaseId: v2.id })).rejects.toBeInstanceOf(
      Forbidden,
    );
  });

  it('rolls back one release at a time, and not a release already rolled back', async () => {
    const h = await setup();
    await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    const v3 = await h.deploy('shop/web:3');
    await rollbackRelease(h.deps, deployer, { releaseId: v3.id });
    // v2 serves again, so it can be rolled back in turn, to v1 (still warm).
    const back = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(back).toMatchObject({ path: 'warm', to: { image: 'shop/web:1' } });
    const view = await getRelease(h.deps, deployer, v3.id);
    expect(view.status).toBe('rolled_back');
    await expect(rollbackRelease(h.deps, deployer, { releaseId: v3.id })).rejects.toBeInstanceOf(
      ReleaseNotRollbackable,
    );
  });
});

describe('retirement', () => {
  it('does nothing for a release that does not exist', async () => {
    const h = await setup();
    expect(await retireRelease(h.deps, { orgId: 'org_000001', releaseId: 'rel_gone' })).toEqual({
      retired: false,
      skipped: 'not_found',
    });
  });

  it('keeps the serving release running', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    expect(await retireRelease(h.deps, { orgId: 'org_000001', releaseId: v1.id })).toEqual({
      retired: false,
      skipped: 'serving',
    });
    expect(running(h)).toEqual([containerName(v1)]);
  });

  it("drains every replica at once: one replica's stop that does not return holds back no other removal", async () => {
    const h = await setup({ replicas: 3, maxSurge: 3, drainSeconds: 5 });
    const v1 = await h.deploy('shop/web:1');
    expect((await h.deploy('shop/web:2')).status).toBe('completed');
    const names = [0, 1, 2].map((i) => replicaContainerName(v1, i));
    expect(names.every((n) => running(h).includes(n))).toBe(true);
    // The first replica's member stopped answering (a lost Swarm member, a hung engine).
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const stop = h.runtime.stop.bind(h.runtime);
    h.runtime.stop = async (t, name, grace) => {
      if (name === names[0]) await held;
      return stop(t, name, grace);
    };
    const retiring = retireRelease(h.deps, { orgId: 'org_000001', releaseId: v1.id });
    const present = () => h.runtime.containers(dockerHost).map((c) => c.spec.name);
    for (let i = 0; i < 100 && names.slice(1).some((n) => present().includes(n)); i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(present().filter((n) => names.includes(n))).toEqual([names[0]]);
    release();
    expect(await retiring).toEqual({ retired: true, skipped: null });
    expect(present().filter((n) => names.includes(n))).toEqual([]);
  });

  it('rethrows an unreachable Docker so the queue retries', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    await h.deploy('shop/web:2');
    h.runtime.setReachable(dockerHost, false);
    await expect(
      retireRelease(h.deps, { orgId: 'org_000001', releaseId: v1.id }),
    ).rejects.toBeInstanceOf(Unavailable);
    h.runtime.setReachable(dockerHost, true);
    expect(await retireRelease(h.deps, { orgId: 'org_000001', releaseId: v1.id })).toEqual({
      retired: true,
      skipped: null,
    });
  });
});

describe('manual rollback from a process without Docker access', () => {
  it('hands the warm switch to a worker, which does it', async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    // The API container of the self-hosted stack has no Docker socket.
    h.runtime.setReachable(dockerHost, false, 'no such file /var/run/docker.sock');
    const accepted = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(accepted).toMatchObject({
      path: 'queued',
      redeploy: null,
      release: { id: v2.id, status: 'completed' },
    });
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v2.upstream]);
    const [queued] = h.queue.of(releaseRollbackQueue);
    expect(queued?.payload).toEqual({
      orgId: v2.orgId,
      releaseId: v2.id,
      actor: { actorType: 'user', actorId: 'usr_1' },
      requestId: null,
    });

    // The worker reaches the engine and switches back to the warm v1.
    h.runtime.setReachable(dockerHost, true);
    await handleReleaseRollback(h.deps)({
      id: 'm1',
      payload: queued!.payload as ReleaseRollbackMessage,
      attempt: 1,
    });
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v1.upstream]);
    expect((await h.release(v2.id)).status).toBe('rolled_back');

    // Delivered again (a retry), it no longer applies and does nothing.
    await handleReleaseRollback(h.deps)({
      id: 'm1',
      payload: queued!.payload as ReleaseRollbackMessage,
      attempt: 2,
    });
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v1.upstream]);
  });

  it('hands over from the cloud API, whose runtime reaches no engine at all', async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    const api = { ...h.deps, runtime: new NoEngineRuntime() };
    const accepted = await rollbackRelease(api, deployer, { releaseId: v2.id });
    expect(accepted).toMatchObject({ path: 'queued', redeploy: null });
    const [queued] = h.queue.of(releaseRollbackQueue);
    // The worker, with the real runtime, switches back.
    await handleReleaseRollback(h.deps)({
      id: 'm1',
      payload: queued!.payload as ReleaseRollbackMessage,
      attempt: 1,
    });
    expect((await h.edge.get(routeId))?.upstreams).toEqual([v1.upstream]);
    await expect(new NoEngineRuntime().ping()).rejects.toThrow(
      'docker is unavailable: this process does not reach Docker engines; the deploy worker does',
    );
  });

  it('does not hand over again from the worker: an unreachable engine there is retried', async () => {
    const h = await setup({ warmSeconds: 300 });
    await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    h.runtime.setReachable(dockerHost, false, 'engine down');
    const message: ReleaseRollbackMessage = {
      orgId: v2.orgId,
      releaseId: v2.id,
      actor: { actorType: 'user', actorId: 'usr_1' },
      requestId: null,
    };
    await expect(
      handleReleaseRollback(h.deps)({ id: 'm1', payload: message, attempt: 1 }),
    ).rejects.toBeInstanceOf(Unavailable);
    expect(h.queue.of(releaseRollbackQueue)).toEqual([]);
  });
});
