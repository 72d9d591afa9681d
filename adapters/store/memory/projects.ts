import type { Project } from '../../../core/models.ts';
import type { ProjectRepo } from '../../../core/ports.ts';
import { NotFound } from '../../../core/errors.ts';
import type { TenantView } from './tenant.ts';
import { deleteProjectRows } from './cascade.ts';

export const memoryProjectRepo = (t: TenantView): ProjectRepo => ({
  insert: async (p) => t.insert('projects', p),
  get: async (id) => t.getOwn<Project>('projects', id),
  list: async (page) => t.page<Project>('projects', t.mine('projects'), page),
  update: async (id, patch) => {
    if (!t.patch('projects', id, patch, ['id', 'orgId', 'createdAt']))
      throw new NotFound('project', id);
  },
  delete: async (id) => deleteProjectRows(t, id),
});
