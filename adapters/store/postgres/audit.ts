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
});
