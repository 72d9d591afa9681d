import type { AuditEvent } from '../../../core/models.ts';
import type { AuditRepo } from '../../../core/ports.ts';
import type { TenantView } from './tenant.ts';

export const memoryAuditRepo = (t: TenantView): AuditRepo => ({
  append: async (e) => t.insert('audit', e),
  list: async (page, filter) =>
    t.page<AuditEvent>(
      'audit',
      t
        .mine('audit')
        .filter(
          (r) =>
            (!filter?.action || r.action === filter.action) &&
            (!filter?.targetId || r.targetId === filter.targetId),
        ),
      page,
    ),
  countSince: async (actions, since) => {
    const times = (t.mine('audit') as unknown as AuditEvent[])
      .filter((r) => actions.includes(r.action) && Date.parse(r.createdAt) > Date.parse(since))
      .map((r) => r.createdAt)
      .sort((a, b) => Date.parse(a) - Date.parse(b));
    return { count: times.length, oldest: times[0] ?? null };
  },
});
