import { NotFound } from '../../../core/errors.ts';
import type { DeployJob } from '../../../core/models.ts';
import type { DeployJobRepo } from '../../../core/ports.ts';
import type { TenantView } from './tenant.ts';

export const memoryDeployJobRepo = (t: TenantView): DeployJobRepo => ({
  insert: async (j) => t.insert('deployJobs', j),
  get: async (id) => t.getOwn<DeployJob>('deployJobs', id),
  update: async (id, patch) => {
    if (!t.patch('deployJobs', id, patch, ['id', 'orgId'])) throw new NotFound('deploy_job', id);
  },
  list: async (page) => t.page<DeployJob>('deployJobs', t.mine('deployJobs'), page),
});
