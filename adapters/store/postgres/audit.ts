import type { AuditEvent } from '../../../core/models.ts';
import type { AuditRepo } from '../../../core/ports.ts';
import { eq, table, type Condition } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const auditTable = table<AuditEvent>('audit_events', [
  'id',
  'orgId',
  'actorType',
  'actorId',
  'action',
  'targetType',
  'targetId',
  'data',
  'requestId',
  'createdAt',
]);

export const pgAuditRepo = (t: TenantSql): AuditRepo => ({
  append: (e) => t.insert(auditTable, e),
  list: (page, filter) => {
    const conditions: Condition[] = [];
    if (filter?.action) conditions.push(eq('action', filter.action));
    if (filter?.targetId) conditions.push(eq('target_id', filter.targetId));
    return t.page(auditTable, conditions, page);
  },
  countSince: async (actions, since) => {
    // audit_events_org_action_idx narrows it to the org's events of those actions.
    const r = await t.tx.query<{ count: number; oldest: string | null }>(
      'select count(*)::int as count, min(created_at) as oldest from audit_events where org_id = $1 and action = any($2::text[]) and created_at > $3',
      [t.orgId, actions, since],
    );
    return r.rows[0] ?? { count: 0, oldest: null };
  },
});
