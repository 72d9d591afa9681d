import { NotFound } from '../../../core/errors.ts';
import { jobRunsKept } from '../../../core/jobs/deps.ts';
import type { Job, JobRun } from '../../../core/models.ts';
import type { JobRepo, JobRunRepo } from '../../../core/ports.ts';
import { byIdAsc, clone } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryJobRepo = (t: TenantView): JobRepo => ({
  insert: async (j) => t.insert('jobs', j),
  get: async (id) => t.getOwn<Job>('jobs', id),
  list: async (page, filter) => t.page<Job>('jobs', t.filtered('jobs', filter, 'viaService'), page),
  update: async (id, patch) => {
    if (!t.patch('jobs', id, patch, ['id', 'orgId', 'serviceId', 'environmentId']))
      throw new NotFound('job', id);
  },
  delete: async (id) => {
    if (!t.getOwn('jobs', id)) return false;
    t.view.delete('jobs', id);
    // As the SQL foreign key's on delete cascade: its runs go with it.
    for (const r of t.mine('jobRuns').filter((r) => r.jobId === id))
      t.view.delete('jobRuns', String(r.id));
    return true;
  },
});

export const memoryJobRunRepo = (t: TenantView): JobRunRepo => ({
  start: async (r) => {
    // As the partial unique index job_runs_one_running.
    const held =
      r.exclusive &&
      t
        .mine('jobRuns')
        .some((x) => x.jobId === r.jobId && x.status === 'running' && x.exclusive === true);
    if (held) return false;
    t.insert('jobRuns', r);
    const older = t
      .mine('jobRuns')
      .filter((x) => x.jobId === r.jobId)
      .sort(byIdAsc)
      .slice(0, -jobRunsKept)
      .filter((x) => x.status !== 'running');
    for (const x of older) t.view.delete('jobRuns', String(x.id));
    return true;
  },
  finish: async (id, patch) => {
    if (!t.patch('jobRuns', id, patch, ['id', 'orgId', 'jobId'])) throw new NotFound('job_run', id);
  },
  running: async (jobId) =>
    t
      .mine('jobRuns')
      .filter((r) => r.jobId === jobId && r.status === 'running')
      .sort(byIdAsc)
      .map((r) => clone(r) as unknown as JobRun),
  list: async (jobId, page) =>
    t.page<JobRun>(
      'jobRuns',
      t.mine('jobRuns').filter((r) => r.jobId === jobId),
      page,
    ),
});
