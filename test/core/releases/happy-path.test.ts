import { describe, expect, it } from 'vitest';
import {
  releaseRetireQueue,
  releaseStepsQueue,
  getRelease,
  listReleaseLogs,
  listReleases,
} from '../../../core/releases/engine.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { deployer, dockerHost, putSecret, setup } from './harness.ts';

const at = (s: number) => new Date(Date.parse('2026-01-01T00:00:00.000Z') + s).toISOString();

describe('a blue/green release', () => {
  it('moves through every status with one step message each, and records exact steps', async () => {
    const h = await setup({ migrateCommand: './migrate' });
    const first = await h.deploy('shop/web:1');
    expect(first.status).toBe('completed');

    const statuses: string[] = [];
    const { createRelease, advanceRelease } = await import('../../../core/releases/engine.ts');
    const r = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:2',
      gitSha: 'abc1234',
    });
    expect(r).toMatchObject({
      status: 'queued',
      image: 'shop/web:2',
      gitSha: 'abc1234',
      previousReleaseId: first.id,
    });
    for (let i = 0; i < 20; i++) {
      const next = h.queue.of(releaseStepsQueue).find((s) => !s.handled);
      if (!next) break;
      next.handled = true;
      statuses.push((await h.release(r.id)).status);
      await advanceRelease(h.deps, next.payload as never, 1);
    }
    expect(statuses).toEqual([
      'queued',
      'artifact_ready',
      'candidate_started',
      'health_validating',
      'traffic_shifted',
    ]);
    const done = await h.release(r.id);
    expect(done).toMatchObject({
      status: 'completed',
      imageDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      containerId: expect.any(String),
      upstream: '127.0.0.1:40002',
      error: null,
      finishedAt: at(2000),
    });

    const view = await getRelease(h.deps, deployer, r.id);
    expect(view.steps).toEqual(
      ['build', 'start_candidate', 'migrate', 'health_check', 'switch_traffic', 'complete'].map(
        (name) => ({
          releaseId: r.id,
          orgId: 'org_000001',
          name,
          status: 'succeeded',
          attempt: 1,
          startedAt: expect.any(String),
          finishedAt: expect.any(String),
          error: null,
        }),
      ),
    );
    // Probes take no time on the manual clock: two consecutive successes, one interval apart
    // (the first deploy took the first second).
    expect(view.steps.find((s) => s.name === 'health_check')).toMatchObject({
      startedAt: at(1000),
      finishedAt: at(2000),
    });

    // The step messages: one per step, grouped per service environment, each once.
    const stepMessages = h.queue
      .of(releaseStepsQueue)
      .filter((s) => (s.payload as { releaseId: string }).releaseId === r.id);
    expect(stepMessages.map((s) => [s.payload, s.options])).toEqual(
      ['queued', 'artifact_ready', 'candidate_started', 'health_validating', 'traffic_shifted'].map(
        (status) => [
          { orgId: 'org_000001', releaseId: r.id, status },
          { group: 'svc_0abc12:env_000001', idempotencyKey: `${r.id}:${status}`, maxAttempts: 5 },
        ],
      ),
    );
  });

  it('routes the default host to the candidate only after it is healthy, and keeps the old one warm', async () => {
    const h = await setup({ migrateCommand: './migrate', warmSeconds: 120, drainSeconds: 15 });
    const v1 = await h.deploy('shop/web:1');
    expect(h.edge.changes).toEqual([
      {
        op: 'put',
        route: {
          id: 'sdo-svc_0abc12-env_000001',
          hosts: ['web-production-0abc12.apps.example.test'],
          upstreams: [v1.upstream],
          sticky: false,
          drainSeconds: 15,
        },
      },
    ]);
    const v2 = await h.deploy('shop/web:2');
    expect(h.edge.changes.map((c) => (c.op === 'put' ? c.route.upstreams : c.id))).toEqual([
      [v1.upstream],
      [v2.upstream],
    ]);
    expect(v2.upstream).not.toBe(v1.upstream);

    // v1 stays warm for the window, then the retire message stops and removes it.
    const names = () =>
      h.runtime
        .containers(dockerHost)
        .filter((c) => c.state === 'running')
        .map((c) => c.spec.name);
    expect(names()).toEqual([containerName(v1), containerName(v2)]);
    expect(h.queue.of(releaseRetireQueue).map((s) => [s.payload, s.options])).toEqual([
      [
        { orgId: 'org_000001', releaseId: v1.id },
        { delaySeconds: 120, idempotencyKey: `${v1.id}:retire:${v2.id}`, maxAttempts: 5 },
      ],
    ]);
    h.clock.advance(119_000);
    await h.retireDue();
    expect(names()).toEqual([containerName(v1), containerName(v2)]);
    h.clock.advance(1_000);
    await h.retireDue();
    expect(names()).toEqual([containerName(v2)]);
    expect(h.runtime.calls.filter((c) => c.method === 'stop' || c.method === 'remove')).toEqual([
      { method: 'stop', dockerHost, subject: containerName(v1) },
      { method: 'remove', dockerHost, subject: containerName(v1) },
    ]);
    expect((await h.release(v1.id)).containerId).toBeNull();
  });

  it('writes the events to the audit trail and the steps to the release log', async () => {
    const h = await setup({ migrateCommand: './migrate' });
    const v1 = await h.deploy('shop/web:1');
    const events = await h.repos((r) => r.audit.list({ limit: 50 }, { targetId: v1.id }));
    expect(events.items.map((e) => [e.action, e.actorType, e.actorId])).toEqual([
      ['release.created', 'user', 'usr_1'],
      ['release.started', 'system', 'release-worker'],
      ['release.migration_succeeded', 'system', 'release-worker'],
      ['release.completed', 'system', 'release-worker'],
    ]);
    expect(events.items[3]!.data).toEqual({
      serviceId: 'svc_0abc12',
      environmentId: 'env_000001',
      imageDigest: v1.imageDigest,
      upstream: v1.upstream,
    });
    const job = await h.repos((r) => r.deployJobs.list({ limit: 10 }));
    expect(job.items).toEqual([
      expect.objectContaining({ releaseId: v1.id, kind: 'deploy', status: 'succeeded' }),
    ]);

    const logs = await listReleaseLogs(h.deps, deployer, v1.id);
    expect(logs.map((l) => `${l.stream}: ${l.line}`)).toEqual([
      'system: resolving image shop/web:1 on node node-1',
      `system: image shop/web:1 is ${v1.imageDigest}`,
      `system: started ${containerName(v1)} (${v1.imageDigest}) at ${v1.upstream}`,
      'system: running migration: ./migrate',
      'stdout: applying 001_init',
      'stdout: migrations done',
      'system: migration succeeded',
      `system: probing GET /health at ${v1.upstream}: 2 consecutive successes within 30000 ms`,
      'system: probe 1: GET /health → 200',
      'system: healthy after 2 probes',
      `system: traffic switched to ${v1.upstream} for web-production-0abc12.apps.example.test`,
    ]);
    expect((await listReleases(h.deps, deployer, { limit: 10 })).items.map((r) => r.id)).toEqual([
      v1.id,
    ]);
  });

  it('skips the migration when the service has none', async () => {
    const h = await setup({ migrateCommand: null });
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    const view = await getRelease(h.deps, deployer, v1.id);
    expect(view.steps.map((s) => s.name)).toEqual([
      'build',
      'start_candidate',
      'health_check',
      'switch_traffic',
      'complete',
    ]);
    expect(h.runtime.calls.some((c) => c.method === 'runOnce')).toBe(false);
    const logs = await listReleaseLogs(h.deps, deployer, v1.id);
    expect(logs.map((l) => l.line)).toContain('no migrate command: nothing to migrate');
  });

  it('gives the candidate and the migration the plain env with the secrets over it, and never logs a secret', async () => {
    const h = await setup({
      migrateCommand: './migrate-leak',
      env: { NODE_ENV: 'production', DATABASE_URL: 'plain' },
    });
    await putSecret(h, 'DATABASE_URL', 'postgres://app:hunter2-secret@db/app');
    await putSecret(h, 'API_TOKEN', 'tok-123');
    const runOnces: Record<string, string>[] = [];
    const runOnce = h.runtime.runOnce.bind(h.runtime);
    h.runtime.runOnce = (target, spec, timeout, onLine) => {
      runOnces.push(spec.env);
      return runOnce(target, spec, timeout, onLine);
    };
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    const env = {
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://app:hunter2-secret@db/app',
      API_TOKEN: 'tok-123',
      PORT: '8080',
    };
    expect(h.runtime.container(dockerHost, containerName(v1))!.spec.env).toEqual(env);
    expect(runOnces).toEqual([env]);
    const logs = await listReleaseLogs(h.deps, deployer, v1.id);
    expect(logs.map((l) => l.line)).toContain('connecting to ***');
    const everything = JSON.stringify([
      logs,
      h.logger.entries,
      await h.repos((r) => r.audit.list({ limit: 100 }, {})),
    ]);
    expect(everything).not.toContain('hunter2');
    expect(everything).not.toContain('tok-123');
  });
});
