import type { Service } from '../../../core/models.ts';
import type { ServiceRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const servicesTable = table<Service>('services', [
  'id',
  'orgId',
  'projectId',
  'name',
  'kind',
  'image',
  'containerPort',
  'healthcheckPath',
  'migrateCommand',
  'strategy',
  'replicas',
  'env',
  'memoryMb',
  'cpus',
  'health',
  'workerHealth',
  'warmSeconds',
  'drainSeconds',
  'sticky',
  'placement',
  'loadBalancing',
  'maxSurge',
  'git',
  'gitCredentialKind',
  'gitPublicKey',
  'sealedGitCredential',
  'sealedBuildSecrets',
  'createdAt',
]);

export const pgServiceRepo = (t: TenantSql): ServiceRepo => ({
  insert: (s) => t.insert(servicesTable, s),
  get: (id) => t.one(servicesTable, [eq('id', id), t.org()]),
  update: async (id, patch) => {
    await t.updateById(servicesTable, 'service', id, patch);
  },
  list: (page, filter) =>
    t.page(servicesTable, t.filterConditions(filter, { project: 'direct' }), page),
  // Its releases, secrets, domains, push hook and links cascade (migrations 0017-0019).
  delete: (id) => t.deleteWhere(servicesTable, [eq('id', id), t.org()]),
});
