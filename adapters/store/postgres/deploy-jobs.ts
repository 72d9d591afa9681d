import type { DeployJob } from '../../../core/models.ts';
import type { DeployJobRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const deployJobsTable = table<DeployJob>('deploy_jobs', [
  'id',
  'orgId',
  'releaseId',
  'kind',
  'status',
  'attempts',
  'createdAt',
  'updatedAt',
]);

export const pgDeployJobRepo = (t: TenantSql): DeployJobRepo => ({
  insert: (j) => t.insert(deployJobsTable, j),
  get: (id) => t.one(deployJobsTable, [eq('id', id), t.org()]),
  update: async (id, patch) => {
    await t.updateById(deployJobsTable, 'deploy_job', id, patch);
  },
  list: (page) => t.page(deployJobsTable, [], page),
});
