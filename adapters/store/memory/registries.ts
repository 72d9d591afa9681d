import type { Registry } from '../../../core/models.ts';
import type { RegistryRepo } from '../../../core/ports.ts';
import { clone } from './overlay.ts';
import type { TenantView } from './tenant.ts';

const byServer = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  String(a.server).localeCompare(String(b.server));

export const memoryRegistryRepo = (t: TenantView): RegistryRepo => ({
  insert: async (r) => t.insert('registries', r),
  list: async () =>
    t
      .mine('registries')
      .sort(byServer)
      .map((r) => clone(r) as unknown as Registry),
  byServer: async (server) => {
    const row = t.mine('registries').find((r) => r.server === server);
    return row ? (clone(row) as unknown as Registry) : null;
  },
  delete: async (id) => {
    if (!t.getOwn('registries', id)) return false;
    t.view.delete('registries', id);
    return true;
  },
});
