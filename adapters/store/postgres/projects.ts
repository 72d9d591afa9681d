import type { Project } from '../../../core/models.ts';
import type { ProjectRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const projectsTable = table<Project>('projects', ['id', 'orgId', 'name', 'createdAt']);

export const pgProjectRepo = (t: TenantSql): ProjectRepo => ({
  insert: (p) => t.insert(projectsTable, p),
  get: (id) => t.one(projectsTable, [eq('id', id), t.org()]),
  list: (page) => t.page(projectsTable, [], page),
});
