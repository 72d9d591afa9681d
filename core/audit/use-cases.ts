import type { AuditEvent, Page, PageRequest, Role } from '../models.ts';
import { can, assertCan } from '../roles.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';

/** Keys whose values may be a capability (a webhook URL carries its token, a DSN its password). */
const secretLikeKey = /url|uri|dsn|secret|token|password|passwd|authorization|cookie/i;

export const redacted = '[redacted]';

function redact(value: unknown, key: string): unknown {
  if (secretLikeKey.test(key)) return redacted;
  if (Array.isArray(value)) return value.map((v) => redact(v, ''));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  return value;
}

/**
 * The audit trail as `role` may read it: those who may not see webhooks (or keys, nodes)
 * get secret-like fields replaced, so the trail is no side door to what the endpoints refuse.
 */
export function auditEventFor(role: Role, event: AuditEvent): AuditEvent {
  if (can(role, 'manage-webhooks')) return event;
  return { ...event, data: redact(event.data, '') as AuditEvent['data'] };
}

export async function listAuditEvents(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
  filter: { action?: string; targetId?: string },
): Promise<Page<AuditEvent>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const events = await deps.store.withOrg(p.orgId, (repos) => repos.audit.list(page, filter));
  return { ...events, items: events.items.map((e) => auditEventFor(p.role, e)) };
}
