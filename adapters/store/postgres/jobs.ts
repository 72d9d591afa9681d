import type { Job, JobRun } from '../../../core/models.ts';
import type { JobRepo, JobRunRepo } from '../../../core/ports.ts';
import { jobRunsKept } from '../../../core/jobs/deps.ts';
import { eq, insertSql, table, valuesOf } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const jobsTable = table<Job>('jobs', [
  'id',
  'orgId',
  'serviceId',
  'environmentId',
  'name',
  'schedule',
  'timeZone',
  'command',
  'overlap',
  'timeoutSeconds',
  'retries',
  'createdAt',
  'updatedAt',
]);

export const jobRunsTable = table<JobRun>('job_runs', [
  'id',
  'orgId',
  'jobId',
  'trigger',
  'attempt',
  'exclusive',
  'status',
  'exitCode',
  'releaseId',
  'startedAt',
  'finishedAt',
  'durationMs',
  'logTail',
  'error',
]);

export const pgJobRepo = (t: TenantSql): JobRepo => ({
  insert: (j) => t.insert(jobsTable, j),
  get: (id) => t.one(jobsTable, [eq('id', id), t.org()]),
  list: (page, filter) =>
    t.page(
      jobsTable,
      t.filterConditions(filter, { project: 'viaService', service: true, environment: true }),
      page,
    ),
  update: async (id, patch) => {
    await t.updateById(jobsTable, 'job', id, patch);
  },
  delete: (id) => t.deleteWhere(jobsTable, [eq('id', id), t.org()]),
});

/** The partial unique index job_runs_one_running turns a second exclusive run into no row. */
export const startRunSql = `${insertSql(jobRunsTable)} on conflict (job_id) where status = 'running' and exclusive do nothing`;

/** As webhook deliveries: ids sort by time, so the newest `keep` are the last `keep` ids. */
export const pruneJobRunsSql = `delete from job_runs
  where org_id = $1 and job_id = $2 and status <> 'running' and id < (
    select id from job_runs where org_id = $1 and job_id = $2
    order by id desc offset $3 limit 1)`;

export const pgJobRunRepo = (t: TenantSql): JobRunRepo => ({
  async start(r) {
    const res = await t.tx.query(startRunSql, valuesOf(jobRunsTable, r));
    if (res.rowCount === 0) return false;
    await t.tx.query(pruneJobRunsSql, [t.orgId, r.jobId, jobRunsKept - 1]);
    return true;
  },
  finish: async (id, patch) => {
    await t.updateById(jobRunsTable, 'job_run', id, patch);
  },
  running: (jobId) =>
    t.all(jobRunsTable, [t.org(), eq('job_id', jobId), eq('status', 'running')], 'id'),
  list: (jobId, page) => t.page(jobRunsTable, [eq('job_id', jobId)], page),
});
