import type { Environment } from '../../../core/models.ts';
import type { EnvironmentRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const environmentsTable = table<Environment>('environments', [
  'id',
  'orgId',
  'projectId',
  'name',
  'createdAt',
]);

export const pgEnvironmentRepo = (t: TenantSql): EnvironmentRepo => ({
  insert: (e) => t.insert(environmentsTable, e),
  get: (id) => t.one(environmentsTable, [eq('id', id), t.org()]),
  findByName: (projectId, name) =>
    t.one(environmentsTable, [eq('project_id', projectId), eq('name', name), t.org()]),
  list: (page, filter) =>
    t.page(environmentsTable, t.filterConditions(filter, { project: 'direct' }), page),
  update: async (id, patch) => {
    await t.updateById(environmentsTable, 'environment', id, patch);
  },
  // Its releases, secrets and domains cascade (migration 0019).
  delete: (id) => t.deleteWhere(environmentsTable, [eq('id', id), t.org()]),
});
