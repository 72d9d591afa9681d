/**
 * The `job-runs` handler: one message is one attempt of one job. It runs the job's command
 * in a one-off container of the service environment's serving release (its image digest,
 * env, secrets and linked data services, as the release's own migration would), records the
 * attempt, and queues the next attempt when it failed and retries remain.
 */
import { isCoreError } from '../errors.ts';
import type { Job, JobRun, JobRunStatus } from '../models.ts';
import type { MessageHandler, OneOffResult } from '../ports.ts';
import { containerEnv, loadContext, maskSecrets, nodeTarget } from '../releases/context.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { jobLogTailBytes, jobRunsQueue, retryDelaySeconds, type JobRunMessage } from './deps.ts';
import { planJobRun, tailOf } from './plan.ts';

/** A run still `running` this long after its timeout was left by a worker that died. */
const lostAfterMs = (job: Job) => job.timeoutSeconds * 1000 + 5 * 60_000;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

export function handleJobRun(deps: ReleaseDeps): MessageHandler<JobRunMessage> {
  return async (m) => {
    const { orgId, jobId } = m.payload;
    const attempt = m.payload.attempt ?? 1;
    const trigger = m.payload.trigger;
    const log = deps.logger.child({ jobId, attempt });
    const clock = deps.clock;
    const started = clock.now();
    const found = await deps.store.withOrg(orgId, async (repos) => {
      const job = await repos.jobs.get(jobId);
      if (!job) return null;
      const release = await repos.releases.latest(job.serviceId, job.environmentId, [
        'completed',
        'traffic_shifted',
      ]);
      // A worker that died mid-run left its run `running`; past its timeout it is lost.
      for (const r of await repos.jobRuns.running(jobId)) {
        if (started.getTime() - Date.parse(r.startedAt) > lostAfterMs(job))
          await repos.jobRuns.finish(r.id, {
            status: 'failed',
            exitCode: null,
            finishedAt: started.toISOString(),
            durationMs: null,
            logTail: r.logTail,
            error: 'lost: the worker running it stopped before it finished',
          });
      }
      const run: JobRun = {
        id: deps.ids.newId('jrn'),
        orgId,
        jobId,
        trigger,
        attempt,
        exclusive: job.overlap === 'skip',
        status: 'running',
        exitCode: null,
        releaseId: release?.id ?? null,
        startedAt: started.toISOString(),
        finishedAt: null,
        durationMs: null,
        logTail: '',
        error: null,
      };
      const done = (status: JobRunStatus, error: string): JobRun => ({
        ...run,
        exclusive: false,
        status,
        finishedAt: run.startedAt,
        durationMs: 0,
        error,
      });
      if (!release) {
        const failed = done(
          'failed',
          'nothing to run: the service environment has no deployed release yet',
        );
        await repos.jobRuns.start(failed);
        return { job, run: failed, release: null };
      }
      if (!(await repos.jobRuns.start(run))) {
        // Overlap `skip`: the running one keeps the slot; this firing is recorded, not run.
        const skipped = done('skipped', 'an earlier run is still running (overlap: skip)');
        await repos.jobRuns.start(skipped);
        return { job, run: skipped, release: null };
      }
      return { job, run, release, context: await loadContext(deps, repos, release, attempt) };
    });
    if (!found) {
      log.info({}, 'job deleted before it ran; dropped');
      return;
    }
    const { job, run } = found;
    if (!found.release || !('context' in found) || !found.context) {
      log.info({ status: run.status, error: run.error }, 'job run not started');
      return;
    }
    const c = found.context;
    let result: OneOffResult;
    let error: string | null = null;
    try {
      const env = await containerEnv(c);
      const target = await nodeTarget(c);
      const spec = planJobRun({
        job,
        run,
        service: c.service,
        release: found.release,
        env,
        ...(c.network ? { network: c.network } : {}),
      });
      // Only a tail is kept: a chatty job's output never grows memory past twice the tail.
      let tail = '';
      result = await deps.runtime.runOnce(target, spec, job.timeoutSeconds * 1000, (line) => {
        const masked = maskSecrets(line, c.secretValues);
        tail = tailOf(tail.length > 0 ? `${tail}\n${masked}` : masked, jobLogTailBytes);
      });
      if (tail.length === 0) tail = result.output;
      result = { ...result, output: tail };
      if (result.timedOut) error = `timed out after ${job.timeoutSeconds} s: killed`;
      else if (result.exitCode !== 0) error = `exited with code ${result.exitCode ?? 'unknown'}`;
    } catch (e) {
      // The engine was unreachable or refused: the attempt failed, and may be retried.
      error = isCoreError(e) ? e.message : message(e);
      result = { exitCode: null, timedOut: false, output: '' };
    }
    const status: JobRunStatus =
      error === null ? 'succeeded' : result.timedOut ? 'timed_out' : 'failed';
    const finishedAt = clock.now();
    await deps.store.withOrg(orgId, (repos) =>
      repos.jobRuns.finish(run.id, {
        status,
        exitCode: result.exitCode,
        finishedAt: finishedAt.toISOString(),
        durationMs: Math.max(0, finishedAt.getTime() - started.getTime()),
        logTail: tailOf(maskSecrets(result.output, c.secretValues), jobLogTailBytes),
        error: error === null ? null : maskSecrets(error, c.secretValues),
      }),
    );
    log.info({ runId: run.id, status, exitCode: result.exitCode }, 'job run finished');
    if (status !== 'succeeded' && attempt <= job.retries) {
      const next: JobRunMessage = { orgId, jobId, trigger: 'retry', attempt: attempt + 1 };
      await deps.queue.send(jobRunsQueue, next, {
        delaySeconds: retryDelaySeconds(attempt, deps.config.jobRetryBaseSeconds),
        idempotencyKey: `${run.id}:retry`,
        group: `job:${jobId}`,
      });
    }
  };
}
