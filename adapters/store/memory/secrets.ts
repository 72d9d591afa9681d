import type { SecretRecord } from '../../../core/models.ts';
import type { SecretRepo } from '../../../core/ports.ts';
import { clone } from './overlay.ts';
import { rlsViolation } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memorySecretRepo = (t: TenantView): SecretRepo => ({
  put: async (s) => {
    const existing = t.view
      .rows('secrets')
      .find(
        (r) =>
          r.serviceId === s.serviceId && r.environmentId === s.environmentId && r.name === s.name,
      );
    if (!existing) return t.insert('secrets', s);
    if (existing.orgId !== t.orgId || s.orgId !== t.orgId) throw rlsViolation('secrets');
    t.patch('secrets', String(existing.id), { sealed: s.sealed, updatedAt: s.updatedAt }, []);
  },
  list: async (serviceId, environmentId) =>
    t
      .mine('secrets')
      .filter((r) => r.serviceId === serviceId && r.environmentId === environmentId)
      .sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1))
      .map((r) => clone(r) as unknown as SecretRecord),
  delete: async (serviceId, environmentId, name) => {
    const row = t
      .mine('secrets')
      .find(
        (r) => r.serviceId === serviceId && r.environmentId === environmentId && r.name === name,
      );
    if (!row) return false;
    t.view.delete('secrets', String(row.id));
    return true;
  },
});
