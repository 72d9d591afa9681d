/**
 * Cron jobs and worker services through the core, every port in memory: the use cases'
 * refusals (each a 400 or 404 naming the problem), the scheduler they keep in step, and
 * the job-runs handler (exit codes, timeouts, overlap, retries); a worker's release.
 */
import { describe, expect, it } from 'vitest';
import { MemoryScheduler } from '../../../adapters/scheduler/memory.ts';
import { CoreError } from '../../../core/errors.ts';
import { jobRunsQueue, jobScheduleName, type JobRunMessage } from '../../../core/jobs/deps.ts';
import { handleJobRun } from '../../../core/jobs/run.ts';
import {
  createJob,
  deleteJob,
  listJobRuns,
  runJobNow,
  updateJob,
  type JobDeps,
} from '../../../core/jobs/use-cases.ts';
import { createDomain } from '../../../core/domains/use-cases.ts';
import type { Principal } from '../../../core/deps.ts';
import { createServiceInput } from '../../../core/schemas.ts';
import { rollbackRelease } from '../../../core/releases/engine.ts';
import { deployer, orgId, putSecret, setup, type Harness } from '../releases/harness.ts';

const ctx = { requestId: null, ip: null };
const viewer: Principal = { ...deployer, role: 'viewer' };
const stranger: Principal = { ...deployer, orgId: 'org_other', actorId: 'usr_x', userId: 'usr_x' };

function jobDeps(h: Harness, maxTimeoutSeconds = 3600): JobDeps & { scheduler: MemoryScheduler } {
  const scheduler = new MemoryScheduler(h.queue);
  const deps = {
    ...h.deps,
    config: { signupMode: 'closed', edgeDomain: 'apps.example.test' },
    jobs: { scheduler, maxTimeoutSeconds },
  } as unknown as JobDeps;
  return Object.assign(deps, { scheduler });
}

async function codeOf(
  p: Promise<unknown>,
): Promise<{ code: string; message: string; status: string }> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CoreError);
  const c = e as CoreError;
  return { code: c.code, message: c.message, status: c.kind };
}

/** Delivers every job-runs message sent so far that is due, as a worker would. */
async function runDue(h: Harness): Promise<void> {
  const handler = handleJobRun(h.deps);
  for (let guard = 0; guard < 20; guard++) {
    const now = h.clock.now().getTime();
    const next = h.queue.of(jobRunsQueue).find((s) => !s.handled && s.dueAt <= now);
    if (!next) return;
    next.handled = true;
    await handler({ id: 'm', attempt: 1, payload: next.payload as JobRunMessage });
  }
}

async function withImage(h: Harness): Promise<void> {
  h.runtime.addImage('shop/web:jobs', {
    oneOffs: {
      'sh -c ./report': { exitCode: 0, lines: ['report for 2026-01-01', 'sent 3 mails'] },
      'sh -c ./fail': { exitCode: 2, lines: ['cannot reach smtp'] },
      'sh -c ./hang': { hang: true, lines: ['waiting'] },
      'sh -c ./leak': { exitCode: 0, lines: ['token=s3cr3t-value-123'] },
    },
  });
  const r = await h.deploy('shop/web:jobs');
  expect(r.status).toBe('completed');
}

describe('cron jobs', () => {
  it('creates a job, schedules it in its time zone, and runs it on a firing with the release image', async () => {
    const h = await setup();
    const deps = jobDeps(h);
    await withImage(h);
    const job = await createJob(
      deps,
      deployer,
      {
        serviceId: h.service.id,
        name: 'report',
        schedule: '30 2 * * *',
        timeZone: 'Europe/Berlin',
        command: './report',
      },
      ctx,
    );
    expect(job).toMatchObject({
      environment: 'production',
      overlap: 'skip',
      timeoutSeconds: 300,
      retries: 0,
      nextRuns: [
        '2026-01-01T01:30:00.000Z',
        '2026-01-02T01:30:00.000Z',
        '2026-01-03T01:30:00.000Z',
      ],
    });
    expect(deps.scheduler.list()).toEqual([
      {
        name: jobScheduleName(job.id),
        cron: '30 2 * * *',
        queue: jobRunsQueue,
        payload: { orgId, jobId: job.id, trigger: 'schedule' },
        timeZone: 'Europe/Berlin',
      },
    ]);
    // 01:30 UTC is 02:30 in Berlin in winter: the schedule fires then, not at 02:30 UTC.
    expect(await deps.scheduler.tick(new Date('2026-01-01T02:30:00Z'))).toBe(0);
    expect(await deps.scheduler.tick(new Date('2026-01-01T01:30:00Z'))).toBe(1);
    await runDue(h);
    const runs = (await listJobRuns(deps, viewer, job.id, { limit: 10 })).items;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      trigger: 'schedule',
      attempt: 1,
      status: 'succeeded',
      exitCode: 0,
      logTail: 'report for 2026-01-01\nsent 3 mails',
      error: null,
    });
    const oneOff = h.runtime.calls.find((c) => c.method === 'runOnce');
    expect(oneOff?.subject).toBe(`sdo-job-${job.id}-${runs[0]!.id}`);
  });

  it('records failures, timeouts and retries, and masks secrets in the log tail', async () => {
    const h = await setup({}, { jobRetryBaseSeconds: 1 });
    const deps = jobDeps(h);
    await withImage(h);
    await putSecret(h, 'API_TOKEN', 's3cr3t-value-123');
    const failing = await createJob(
      deps,
      deployer,
      { serviceId: h.service.id, name: 'fail', schedule: '@daily', command: './fail', retries: 1 },
      ctx,
    );
    await runJobNow(deps, deployer, failing.id, ctx);
    await runDue(h);
    await h.clock.sleep(1000);
    await runDue(h);
    const runs = (await listJobRuns(deps, viewer, failing.id, { limit: 10 })).items;
    expect(runs.map((r) => [r.trigger, r.attempt, r.status, r.exitCode, r.error])).toEqual([
      ['manual', 1, 'failed', 2, 'exited with code 2'],
      ['retry', 2, 'failed', 2, 'exited with code 2'],
    ]);
    // Retries are spent: nothing more is queued.
    expect(h.queue.of(jobRunsQueue).filter((s) => !s.handled)).toEqual([]);

    const hang = await createJob(
      deps,
      deployer,
      {
        serviceId: h.service.id,
        name: 'hang',
        schedule: '@daily',
        command: './hang',
        timeoutSeconds: 5,
      },
      ctx,
    );
    await runJobNow(deps, deployer, hang.id, ctx);
    await runDue(h);
    expect((await listJobRuns(deps, viewer, hang.id, { limit: 10 })).items[0]).toMatchObject({
      status: 'timed_out',
      exitCode: null,
      durationMs: 5000,
      error: 'timed out after 5 s: killed',
    });

    const leak = await createJob(
      deps,
      deployer,
      { serviceId: h.service.id, name: 'leak', schedule: '@daily', command: './leak' },
      ctx,
    );
    await runJobNow(deps, deployer, leak.id, ctx);
    await runDue(h);
    expect((await listJobRuns(deps, viewer, leak.id, { limit: 10 })).items[0]?.logTail).toBe(
      'token=***',
    );
  });

  it('skips a firing while the previous run still runs (overlap: skip)', async () => {
    const h = await setup();
    const deps = jobDeps(h);
    await withImage(h);
    const job = await createJob(
      deps,
      deployer,
      { serviceId: h.service.id, name: 'report', schedule: '* * * * *', command: './report' },
      ctx,
    );
    // A run another worker holds right now.
    await h.repos((r) =>
      r.jobRuns.start({
        id: 'jrn_000held',
        orgId,
        jobId: job.id,
        trigger: 'schedule',
        attempt: 1,
        exclusive: true,
        status: 'running',
        exitCode: null,
        releaseId: null,
        startedAt: h.clock.now().toISOString(),
        finishedAt: null,
        durationMs: null,
        logTail: '',
        error: null,
      }),
    );
    await runJobNow(deps, deployer, job.id, ctx);
    await runDue(h);
    const runs = (await listJobRuns(deps, viewer, job.id, { limit: 10 })).items;
    expect(runs.map((r) => [r.status, r.error]).sort()).toEqual([
      ['running', null],
      ['skipped', 'an earlier run is still running (overlap: skip)'],
    ]);
    // Allowed to overlap, the same firing runs.
    await updateJob(deps, deployer, job.id, { overlap: 'allow' }, ctx);
    await runJobNow(deps, deployer, job.id, ctx);
    await runDue(h);
    expect(
      (await listJobRuns(deps, viewer, job.id, { limit: 10 })).items.map((r) => r.status).sort(),
    ).toEqual(['running', 'skipped', 'succeeded']);
  });

  it('fails a run clearly when the service has no release yet', async () => {
    const h = await setup();
    const deps = jobDeps(h);
    const job = await createJob(
      deps,
      deployer,
      { serviceId: h.service.id, name: 'early', schedule: '@hourly', command: 'true' },
      ctx,
    );
    await runJobNow(deps, deployer, job.id, ctx);
    await runDue(h);
    expect((await listJobRuns(deps, viewer, job.id, { limit: 10 })).items[0]).toMatchObject({
      status: 'failed',
      error: 'nothing to run: the service environment has no deployed release yet',
    });
  });

  it('refuses bad input with a 400 naming it, and another org its jobs with a 404', async () => {
    const h = await setup();
    const deps = jobDeps(h, 100);
    const base = { serviceId: h.service.id, name: 'x', schedule: '@daily', command: 'true' };
    expect(
      await codeOf(createJob(deps, deployer, { ...base, schedule: '*/1 * * * * *' }, ctx)),
    ).toMatchObject({
      status: 'invalid',
      message: expect.stringContaining('a seconds field would fire more often than once a minute'),
    });
    expect(
      await codeOf(createJob(deps, deployer, { ...base, schedule: '0 25 * * *' }, ctx)),
    ).toMatchObject({
      status: 'invalid',
      message: expect.stringContaining('hour field "25"'),
    });
    expect(
      await codeOf(createJob(deps, deployer, { ...base, timeZone: 'Europe/Atlantis' }, ctx)),
    ).toMatchObject({
      status: 'invalid',
      message:
        'timeZone: "Europe/Atlantis" is not a known IANA time zone (e.g. Europe/Berlin, UTC)',
    });
    expect(
      await codeOf(createJob(deps, deployer, { ...base, timeoutSeconds: 600 }, ctx)),
    ).toMatchObject({
      status: 'invalid',
      message:
        'timeoutSeconds: at most 100 here (the workers that run jobs wait no longer), got 600',
    });
    expect(
      await codeOf(createJob(deps, deployer, { ...base, environment: 'staging' }, ctx)),
    ).toMatchObject({
      status: 'not_found',
    });
    expect(await codeOf(createJob(deps, viewer, base, ctx))).toMatchObject({ status: 'forbidden' });
    // Nothing half-applied: no job, no schedule.
    expect(deps.scheduler.list()).toEqual([]);

    const job = await createJob(deps, deployer, base, ctx);
    // Another org: its service and its job do not exist for it.
    expect(await codeOf(createJob(deps, stranger, base, ctx))).toMatchObject({
      status: 'not_found',
    });
    for (const p of [
      runJobNow(deps, stranger, job.id, ctx),
      updateJob(deps, stranger, job.id, { retries: 1 }, ctx),
      deleteJob(deps, stranger, job.id, ctx),
      listJobRuns(deps, stranger, job.id, { limit: 10 }),
    ])
      expect(await codeOf(p)).toMatchObject({ status: 'not_found', code: 'job_not_found' });
    expect(
      await codeOf(updateJob(deps, deployer, job.id, { schedule: '* * * * * *' }, ctx)),
    ).toMatchObject({
      status: 'invalid',
    });
    expect(deps.scheduler.list().map((s) => s.cron)).toEqual(['0 0 * * *']);
    await deleteJob(deps, deployer, job.id, ctx);
    expect(deps.scheduler.list()).toEqual([]);
  });
});

describe('worker services', () => {
  const workerFields = {
    kind: 'worker' as const,
    containerPort: null,
    workerHealth: { stableSeconds: 3, command: null },
  };

  it('deploys with no port and no route, healthy by staying up, and stops the old one at once', async () => {
    const h = await setup(workerFields);
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    expect(v1.upstream).toBeNull();
    expect(await h.edge.list()).toEqual([]);
    const started = h.runtime.containers(dockerHostOf()).find((c) => c.spec.name.endsWith(v1.id));
    expect(started?.spec.containerPort).toBeUndefined();
    expect(started?.spec.publishIp).toBeUndefined();
    expect(started?.spec.env.PORT).toBeUndefined();
    const steps = await h.repos((r) => r.releaseSteps.list(v1.id));
    expect(steps.map((s) => s.name)).not.toContain('switch_traffic');
    const logs = await h.repos((r) => r.releaseLogs.list(v1.id));
    expect(logs.map((l) => l.line)).toContain('worker: no route to switch');

    const v2 = await h.deploy('shop/web:2');
    expect(v2.status).toBe('completed');
    // Two copies of a worker would both consume: the previous one retires now, not warm.
    const retire = h.queue.of('release-retire').at(-1);
    expect(retire?.options.delaySeconds).toBe(0);
  });

  it('rolls a worker back by redeploying the previous image, with no route involved', async () => {
    const h = await setup(workerFields);
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    await h.retireDue();
    const result = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(result.path).toBe('redeploy');
    await h.drain();
    const again = await h.release(result.redeploy!.id);
    expect([again.status, again.image, again.upstream]).toEqual([
      'completed',
      v1.imageDigest,
      null,
    ]);
    expect((await h.release(v2.id)).status).toBe('rolled_back');
    expect(await h.edge.list()).toEqual([]);
  });

  it('fails the release when its health command fails, leaving the previous one running', async () => {
    const h = await setup({
      ...workerFields,
      workerHealth: { stableSeconds: 1, command: './healthy' },
    });
    h.runtime.addImage('shop/web:sick', {
      execs: { 'sh -c ./healthy': { exitCode: 1, lines: ['queue unreachable'] } },
    });
    h.runtime.addImage('shop/web:fine', { execs: { 'sh -c ./healthy': { exitCode: 0 } } });
    expect((await h.deploy('shop/web:fine')).status).toBe('completed');
    const bad = await h.deploy('shop/web:sick');
    expect(bad.status).toBe('failed');
    expect(bad.error).toBe(
      'worker health command `./healthy` exited with code 1: queue unreachable',
    );
  });

  it("on a Swarm, runs no exec: the command is the task's health check, which had passed once the task ran", async () => {
    const h = await setup(
      {
        ...workerFields,
        workerHealth: { stableSeconds: 1, command: './healthy' },
      },
      {},
      { node: { kind: 'swarm' } },
    );
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status, v1.error ?? '').toBe('completed');
    // selfdevop cannot exec into a task on a member's engine: it never tried.
    expect(h.runtime.calls.filter((c) => c.method === 'exec')).toEqual([]);
    const started = h.runtime.containers(dockerHostOf()).find((c) => c.spec.name.endsWith(v1.id));
    expect(started?.spec.healthCommand).toEqual({
      command: ['sh', '-c', './healthy'],
      intervalMs: 1000,
      timeoutMs: 5000,
      retries: 3,
      startPeriodMs: 1000,
    });
    const logs = (await h.repos((r) => r.releaseLogs.list(v1.id))).map((l) => l.line);
    expect(logs).toContain(
      "health command `./healthy` is the Swarm task's health check: it passed",
    );
  });

  it("on a Swarm, a task Swarm keeps replacing fails the gate with the task's error", async () => {
    const h = await setup(
      {
        ...workerFields,
        workerHealth: { stableSeconds: 3, command: './healthy' },
      },
      {},
      { node: { kind: 'swarm' } },
    );
    // Swarm's restarts as the Swarm runtime reports them: one more each look, with the
    // failed task's error (its health check failed after it had passed once).
    const inspect = h.runtime.inspect.bind(h.runtime);
    let looks = 0;
    h.runtime.inspect = async (target, name) => {
      const info = await inspect(target, name);
      const restarts = looks++;
      return info && restarts > 0
        ? {
            ...info,
            restarts,
            lastFailure: 'task: non-zero exit (137): dockerexec: unhealthy container',
          }
        : info;
    };
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('failed');
    expect(v1.error).toBe(
      'worker is crash-looping: the engine restarted it 3 times while it was checked: task: non-zero exit (137): dockerexec: unhealthy container',
    );
    const logs = (await h.repos((r) => r.releaseLogs.list(v1.id))).map((l) => l.line);
    expect(logs).toContain(
      'worker restarted (1 restarts): task: non-zero exit (137): dockerexec: unhealthy container',
    );
    expect(h.runtime.calls.filter((c) => c.method === 'exec')).toEqual([]);
  });

  it('refuses a port, a route or a domain for a worker, and worker health for a web service', async () => {
    const refused = createServiceInput.safeParse({
      projectId: 'prj_1',
      name: 'mailer',
      image: 'busybox:1',
      kind: 'worker',
      containerPort: 8080,
      sticky: true,
    });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues.map((i) => [i.path.join('.'), i.message])).toEqual([
      ['containerPort', 'a worker has no port and no HTTP health check (use workerHealth)'],
      ['sticky', 'a worker has no route'],
    ]);
    expect(
      createServiceInput
        .safeParse({
          projectId: 'prj_1',
          name: 'web',
          image: 'busybox:1',
          workerHealth: { stableSeconds: 5 },
        })
        .error?.issues.map((i) => i.path.join('.')),
    ).toEqual(['containerPort', 'healthcheckPath', 'workerHealth']);
    expect(
      createServiceInput.safeParse({
        projectId: 'prj_1',
        name: 'mailer',
        image: 'busybox:1',
        kind: 'worker',
      }).success,
    ).toBe(true);

    const h = await setup(workerFields);
    const deps = {
      ...h.deps,
      config: { signupMode: 'closed', edgeDomain: 'apps.example.test' },
    } as unknown as Parameters<typeof createDomain>[0];
    expect(
      await codeOf(
        createDomain(deps, deployer, { serviceId: h.service.id, hostname: 'w.example.com' }, ctx),
      ),
    ).toMatchObject({
      status: 'invalid',
      message: 'serviceId: a worker has no route, so it takes no domain',
    });
  });
});

function dockerHostOf(): string {
  return 'unix:///var/run/docker.sock';
}
