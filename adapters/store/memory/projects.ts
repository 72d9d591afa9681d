import type { Project } from '../../../core/models.ts';
import type { ProjectRepo } from '../../../core/ports.ts';
import type { TenantView } from './tenant.ts';

export const memoryProjectRepo = (t: TenantView): ProjectRepo => ({
  insert: async (p) => t.insert('projects', p),
  get: async (id) => t.getOwn<Project>('projects', id),
  list: async (page) => t.page<Project>('projects', t.mine('projects'), page),
});
