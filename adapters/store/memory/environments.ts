import type { Environment } from '../../../core/models.ts';
import type { EnvironmentRepo } from '../../../core/ports.ts';
import { pick } from './overlay.ts';
import { NotFound } from '../../../core/errors.ts';
import type { TenantView } from './tenant.ts';
import { deleteEnvironmentRows } from './cascade.ts';

export const memoryEnvironmentRepo = (t: TenantView): EnvironmentRepo => ({
  insert: async (e) => t.insert('environments', e),
  get: async (id) => t.getOwn<Environment>('environments', id),
  findByName: async (projectId, name) =>
    pick<Environment>(
      t.mine('environments').find((r) => r.projectId === projectId && r.name === name),
    ),
  list: async (page, filter) =>
    t.page<Environment>('environments', t.filtered('environments', filter, 'direct'), page),
  update: async (id, patch) => {
    if (!t.patch('environments', id, patch, ['id', 'orgId', 'projectId', 'createdAt']))
      throw new NotFound('environment', id);
  },
  delete: async (id) => deleteEnvironmentRows(t, id),
});
