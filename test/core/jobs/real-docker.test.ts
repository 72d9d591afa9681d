/**
 * Workers and cron jobs on a real Docker Engine: a worker released with no port and no
 * route, healthy by staying up (and by its command, run with `docker exec`), a crash-looping
 * one refused; a job's run as a one-off of the serving release with its env and secrets,
 * its exit code and output recorded, and a run past its timeout killed and removed.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../../adapters/clock/system.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../../adapters/probe/http.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../../adapters/runtime/docker.ts';
import { MemoryScheduler } from '../../../adapters/scheduler/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import { jobRunsQueue } from '../../../core/jobs/deps.ts';
import { handleJobRun } from '../../../core/jobs/run.ts';
import { createJob, listJobRuns, runJobNow, type JobDeps } from '../../../core/jobs/use-cases.ts';
import type { JobRun, Release, Service } from '../../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../../core/releases/engine.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../../support/docker.ts';
import { available } from '../../support/services.ts';
import { aNode, aProject, aSecret, aService, anEnvironment, anOrg } from '../releases/builders.ts';
import { deployer, orgId } from '../releases/harness.ts';

const ready = await available('docker');
const ctx = { requestId: null, ip: null };

describe.skipIf(!ready)('workers and cron jobs on a real Docker Engine', () => {
  // Ids of their own, so parallel runs never share container names or labels.
  const tag = randomBytes(4).toString('hex');
  const workerId = `svc_w${tag}`;
  const sickId = `svc_s${tag}`;
  let deps: ReleaseDeps;
  let jobs: JobDeps;
  let edge: MemoryEdgeRouter;
  let stops: (() => Promise<void>)[] = [];

  const worker = (id: string, name: string, o: Partial<Service> = {}): Service =>
    aService({
      id,
      name,
      kind: 'worker',
      containerPort: null,
      env: { GREETING: 'plain' },
      workerHealth: { stableSeconds: 2, command: null },
      health: { intervalMs: 100, timeoutMs: 1000, successes: 1, deadlineMs: 15_000 },
      ...o,
    });

  beforeAll(async () => {
    await ensureTestImages();
    const store = new MemoryStore();
    const vault = new MemoryKeyVault();
    edge = new MemoryEdgeRouter();
    const queue = new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 });
    deps = {
      store,
      runtime: new DockerRuntime(),
      edge,
      queue,
      vault,
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      config: { edgeDomain: 'apps.example.test', migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
    };
    jobs = {
      ...deps,
      config: { signupMode: 'closed', edgeDomain: 'apps.example.test' },
      jobs: { scheduler: new MemoryScheduler(queue), maxTimeoutSeconds: 3600 },
    } as unknown as JobDeps;
    const sealed = await vault.seal('from-the-vault', `${orgId}:${workerId}:env_000001:API_TOKEN`);
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
      await r.services.insert(worker(workerId, 'mailer'));
      await r.services.insert(worker(sickId, 'crasher'));
      await r.nodes.insert(aNode({ dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' }));
      await r.secrets.put(aSecret({ serviceId: workerId, name: 'API_TOKEN', sealed }));
    });
    stops = [
      await queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
      await queue.consume(jobRunsQueue, handleJobRun(deps)),
    ];
  });

  afterAll(async () => {
    for (const stop of stops) await stop();
    for (const id of [workerId, sickId])
      await removeContainersByLabel({ 'selfdevop.service': id }).catch(() => undefined);
  });

  async function settle<T>(read: () => Promise<T | null>, what: string, ms = 40_000): Promise<T> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const v = await read();
      if (v !== null) return v;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${what} did not happen within ${ms} ms`);
  }

  async function deploy(serviceId: string, image: string): Promise<Release> {
    const { id } = await createRelease(deps, deployer, { serviceId, image });
    return settle(async () => {
      const r = await deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
      return r.status === 'completed' || r.status === 'failed' ? r : null;
    }, `release ${id} to settle`);
  }

  async function finishedRuns(jobId: string, count: number): Promise<JobRun[]> {
    return settle(async () => {
      const runs = (await listJobRuns(jobs, deployer, jobId, { limit: 50 })).items;
      return runs.filter((r) => r.status !== 'running').length >= count ? runs : null;
    }, `${count} runs of ${jobId} to finish`);
  }

  it('releases a worker with no port and no route, healthy by staying up and by its command', async () => {
    const v1 = await deploy(workerId, 'selfdevop-test/app:v1');
    expect(v1).toMatchObject({ status: 'completed', error: null, upstream: null });
    const running = await deps.runtime.list(dockerTarget, { 'selfdevop.service': workerId });
    expect(running.map((c) => [c.state, c.labels['selfdevop.role']])).toEqual([
      ['running', 'worker'],
    ]);
    const info = await deps.runtime.inspect(dockerTarget, running[0]!.id);
    expect(info?.ports ?? []).toEqual([]);
    expect(await edge.list()).toEqual([]);

    // Its health command runs inside it (docker exec): the app writes /www/health at start.
    await deps.store.withOrg(orgId, (r) =>
      r.services.update(workerId, {
        workerHealth: { stableSeconds: 1, command: 'test -f /www/health && echo ready' },
      }),
    );
    const v2 = await deploy(workerId, 'selfdevop-test/app:v2');
    expect(v2.status).toBe('completed');
    const lines = (await deps.store.withOrg(orgId, (r) => r.releaseLogs.list(v2.id))).map(
      (l) => l.line,
    );
    expect(lines).toContain('health command `test -f /www/health && echo ready` exited 0');
    // The previous worker stops at once: two would both consume.
    await settle(async () => {
      const all = await deps.runtime.list(dockerTarget, { 'selfdevop.service': workerId });
      return all.filter((c) => c.state === 'running').length === 1 ? true : null;
    }, 'the previous worker to stop');

    await deps.store.withOrg(orgId, (r) =>
      r.services.update(workerId, {
        workerHealth: { stableSeconds: 1, command: 'echo queue unreachable; exit 3' },
      }),
    );
    const sick = await deploy(workerId, 'selfdevop-test/app:v1');
    expect(sick).toMatchObject({
      status: 'failed',
      error:
        'worker health command `echo queue unreachable; exit 3` exited with code 3: queue unreachable',
    });
    await deps.store.withOrg(orgId, (r) =>
      r.services.update(workerId, { workerHealth: { stableSeconds: 1, command: null } }),
    );
  });

  it('refuses a worker that keeps crashing', async () => {
    const crash = await deploy(sickId, 'selfdevop-test/app:crash');
    expect(crash.status).toBe('failed');
    expect(crash.error).toMatch(/crash-looping|exited and was not restarted|right after start/);
  });

  it("runs a job in a one-off of the serving release with the service's env and secrets", async () => {
    const job = await createJob(
      jobs,
      deployer,
      {
        serviceId: workerId,
        name: `report-${tag}`,
        schedule: '@daily',
        command: 'echo "hello $GREETING"; echo "token $API_TOKEN"; echo to-stderr >&2; exit 4',
      },
      ctx,
    );
    await runJobNow(jobs, deployer, job.id, ctx);
    const [run] = await finishedRuns(job.id, 1);
    expect(run).toMatchObject({
      trigger: 'manual',
      status: 'failed',
      exitCode: 4,
      error: 'exited with code 4',
    });
    expect(run!.logTail.split('\n').sort()).toEqual(['hello plain', 'to-stderr', 'token ***']);
    expect(run!.durationMs).toBeGreaterThan(0);
    // The one-off is gone with its output kept.
    expect(await deps.runtime.list(dockerTarget, { 'selfdevop.job': job.id })).toEqual([]);
  });

  it('kills a run past its timeout and removes its container', async () => {
    const job = await createJob(
      jobs,
      deployer,
      {
        serviceId: workerId,
        name: `slow-${tag}`,
        schedule: '@daily',
        command: 'echo started; sleep 60',
        timeoutSeconds: 2,
      },
      ctx,
    );
    await runJobNow(jobs, deployer, job.id, ctx);
    const [run] = await finishedRuns(job.id, 1);
    expect(run).toMatchObject({
      status: 'timed_out',
      exitCode: null,
      error: 'timed out after 2 s: killed',
      logTail: 'started',
    });
    expect(await deps.runtime.list(dockerTarget, { 'selfdevop.job': job.id })).toEqual([]);
  });
});
