import { InvalidInput, NotFound, Unavailable } from '../errors.ts';
import type { Job, JobRun, Page, PageRequest } from '../models.ts';
import type { EventQueue, OrgRepos, Scheduler } from '../ports.ts';
import { assertCan } from '../roles.ts';
import type { CreateJobInput, UpdateJobInput } from '../schemas.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { nextFirings, validateCron, validateTimeZone } from './cron.ts';
import {
  defaultMaxJobTimeoutSeconds,
  jobRunsQueue,
  jobScheduleName,
  type JobRunMessage,
} from './deps.ts';

/** Where a mode keeps job schedules, and the longest run its workers can wait for. */
export interface JobsSetup {
  scheduler: Scheduler;
  /** The cloud's worker function has a time limit of its own; self-hosted, an hour. */
  maxTimeoutSeconds: number;
}

export type JobDeps = CoreDeps & { queue: EventQueue; jobs?: JobsSetup };

/** A job as the API shows it: with the next times it fires (in UTC). */
export type JobView = Job & { environment: string; nextRuns: string[] };

const defaultTimeoutSeconds = 300;

function setupOf(deps: JobDeps): JobsSetup {
  if (!deps.jobs) throw new Unavailable('jobs', 'this process has no scheduler for cron jobs');
  return deps.jobs;
}

async function viewOf(deps: JobDeps, repos: OrgRepos, job: Job): Promise<JobView> {
  const env = await repos.environments.get(job.environmentId);
  return {
    ...job,
    environment: env?.name ?? job.environmentId,
    nextRuns: nextFirings(job.schedule, job.timeZone, deps.clock.now(), 3).map((d) =>
      d.toISOString(),
    ),
  };
}

function checkTimeout(setup: JobsSetup, timeoutSeconds: number): void {
  const max = Math.min(setup.maxTimeoutSeconds, defaultMaxJobTimeoutSeconds);
  if (timeoutSeconds > max)
    throw new InvalidInput(
      `timeoutSeconds: at most ${max} here (the workers that run jobs wait no longer), got ${timeoutSeconds}`,
      { field: 'timeoutSeconds', max },
    );
}

async function schedule(setup: JobsSetup, job: Job): Promise<void> {
  const payload: JobRunMessage = { orgId: job.orgId, jobId: job.id, trigger: 'schedule' };
  await setup.scheduler.schedule(jobScheduleName(job.id), job.schedule, jobRunsQueue, payload, {
    timeZone: job.timeZone,
  });
}

/** The job, if the caller's org has it; NotFound otherwise (another org's job included). */
async function findJob(repos: OrgRepos, id: string): Promise<Job> {
  const job = await repos.jobs.get(id);
  if (!job) throw new NotFound('job', id);
  return job;
}

/**
 * Creates a cron job of a service environment and schedules it. The schedule is stored with
 * the scheduler inside the transaction that inserts the job, so a scheduler that refuses it
 * leaves no job behind.
 */
export async function createJob(
  deps: JobDeps,
  principal: Principal,
  input: CreateJobInput,
  ctx: RequestContext,
): Promise<JobView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const setup = setupOf(deps);
  const scheduleText = validateCron(input.schedule);
  const timeZone = validateTimeZone(input.timeZone ?? 'UTC');
  const timeoutSeconds =
    input.timeoutSeconds ?? Math.min(defaultTimeoutSeconds, setup.maxTimeoutSeconds);
  checkTimeout(setup, timeoutSeconds);
  const envName = input.environment ?? 'production';
  const now = deps.clock.now().toISOString();
  return deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(input.serviceId);
    if (!service) throw new NotFound('service', input.serviceId);
    const environment = await repos.environments.findByName(service.projectId, envName);
    if (!environment) throw new NotFound('environment', envName);
    const job: Job = {
      id: deps.ids.newId('job'),
      orgId: p.orgId,
      serviceId: service.id,
      environmentId: environment.id,
      name: input.name,
      schedule: scheduleText,
      timeZone,
      command: input.command,
      overlap: input.overlap ?? 'skip',
      timeoutSeconds,
      retries: input.retries ?? 0,
      createdAt: now,
      updatedAt: now,
    };
    await repos.jobs.insert(job);
    await recordAudit(deps, repos, p, ctx, {
      action: 'job.created',
      targetType: 'job',
      targetId: job.id,
      data: {
        serviceId: job.serviceId,
        environmentId: job.environmentId,
        name: job.name,
        schedule: job.schedule,
        timeZone: job.timeZone,
      },
    });
    await schedule(setup, job);
    return viewOf(deps, repos, job);
  });
}

export async function listJobs(
  deps: JobDeps,
  principal: Principal,
  query: PageRequest & { serviceId?: string | undefined; projectId?: string | undefined },
): Promise<Page<JobView>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const page = await repos.jobs.list(
      { limit: query.limit, ...(query.cursor ? { cursor: query.cursor } : {}) },
      {
        ...(query.serviceId ? { serviceId: query.serviceId } : {}),
        ...(query.projectId ? { projectId: query.projectId } : {}),
      },
    );
    const items: JobView[] = [];
    for (const j of page.items) items.push(await viewOf(deps, repos, j));
    return { ...page, items };
  });
}

export async function getJob(deps: JobDeps, principal: Principal, id: string): Promise<JobView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) =>
    viewOf(deps, repos, await findJob(repos, id)),
  );
}

/** Changes a job; a new schedule or time zone replaces the stored schedule in the same transaction. */
export async function updateJob(
  deps: JobDeps,
  principal: Principal,
  id: string,
  input: UpdateJobInput,
  ctx: RequestContext,
): Promise<JobView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const setup = setupOf(deps);
  const patch: Partial<Job> = {
    ...(input.schedule !== undefined ? { schedule: validateCron(input.schedule) } : {}),
    ...(input.timeZone !== undefined ? { timeZone: validateTimeZone(input.timeZone) } : {}),
    ...(input.command !== undefined ? { command: input.command } : {}),
    ...(input.overlap !== undefined ? { overlap: input.overlap } : {}),
    ...(input.timeoutSeconds !== undefined ? { timeoutSeconds: input.timeoutSeconds } : {}),
    ...(input.retries !== undefined ? { retries: input.retries } : {}),
  };
  if (patch.timeoutSeconds !== undefined) checkTimeout(setup, patch.timeoutSeconds);
  return deps.store.withOrg(p.orgId, async (repos) => {
    const job = await findJob(repos, id);
    const next: Job = { ...job, ...patch, updatedAt: deps.clock.now().toISOString() };
    await repos.jobs.update(id, { ...patch, updatedAt: next.updatedAt });
    await recordAudit(deps, repos, p, ctx, {
      action: 'job.updated',
      targetType: 'job',
      targetId: id,
      data: { fields: Object.keys(patch) },
    });
    if (next.schedule !== job.schedule || next.timeZone !== job.timeZone)
      await schedule(setup, next);
    return viewOf(deps, repos, next);
  });
}

/** Deletes a job, its runs and its schedule; runs under way finish on their own. */
export async function deleteJob(
  deps: JobDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const setup = setupOf(deps);
  await deps.store.withOrg(p.orgId, async (repos) => {
    const job = await findJob(repos, id);
    await repos.jobs.delete(id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'job.deleted',
      targetType: 'job',
      targetId: id,
      data: { name: job.name, serviceId: job.serviceId },
    });
    await setup.scheduler.unschedule(jobScheduleName(id));
  });
}

/** Queues one run now (202); its row appears in the run history when a worker starts it. */
export async function runJobNow(
  deps: JobDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<{ jobId: string; queued: true }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  await deps.store.withOrg(p.orgId, async (repos) => {
    await findJob(repos, id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'job.run_requested',
      targetType: 'job',
      targetId: id,
      data: {},
    });
  });
  const message: JobRunMessage = { orgId: p.orgId, jobId: id, trigger: 'manual', attempt: 1 };
  await deps.queue.send(jobRunsQueue, message, { group: `job:${id}` });
  return { jobId: id, queued: true };
}

/** A job's run history, oldest first (the newest 100 are kept). */
export async function listJobRuns(
  deps: JobDeps,
  principal: Principal,
  id: string,
  page: PageRequest,
): Promise<Page<JobRun>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    await findJob(repos, id);
    return repos.jobRuns.list(id, page);
  });
}
