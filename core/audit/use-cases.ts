import type { AuditEvent, Page, PageRequest } from '../models.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';

export async function listAuditEvents(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
  filter: { action?: string; targetId?: string },
): Promise<Page<AuditEvent>> {
  const p = requireOrg(principal);
  return deps.store.withOrg(p.orgId, (repos) => repos.audit.list(page, filter));
}
