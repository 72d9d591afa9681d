import { NotFound } from '../../../core/errors.ts';
import type { Service } from '../../../core/models.ts';
import type { ServiceRepo } from '../../../core/ports.ts';
import type { TenantView } from './tenant.ts';
import { deleteServiceRows } from './cascade.ts';

export const memoryServiceRepo = (t: TenantView): ServiceRepo => ({
  insert: async (s) => t.insert('services', s),
  get: async (id) => t.getOwn<Service>('services', id),
  update: async (id, patch) => {
    if (!t.patch('services', id, patch, ['id', 'orgId', 'projectId', 'createdAt']))
      throw new NotFound('service', id);
  },
  list: async (page, filter) =>
    t.page<Service>('services', t.filtered('services', filter, 'direct'), page),
  delete: async (id) => deleteServiceRows(t, id),
});
