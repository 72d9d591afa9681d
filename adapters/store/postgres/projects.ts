import type { Project } from '../../../core/models.ts';
import type { ProjectRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const projectsTable = table<Project>('projects', ['id', 'orgId', 'name', 'createdAt']);

export const pgProjectRepo = (t: TenantSql): ProjectRepo => ({
  insert: (p) => t.insert(projectsTable, p),
  get: (id) => t.one(projectsTable, [eq('id', id), t.org()]),
  list: (page) => t.page(projectsTable, [], page),
  update: async (id, patch) => {
    await t.updateById(projectsTable, 'project', id, patch);
  },
  // Environments and services cascade (migration 0019); a data service blocks it (FK).
  delete: (id) => t.deleteWhere(projectsTable, [eq('id', id), t.org()]),
});
