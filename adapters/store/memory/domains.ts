import { hostnameHoldingStatuses } from '../../../core/domains/state-machine.ts';
import { NotFound } from '../../../core/errors.ts';
import type { Domain } from '../../../core/models.ts';
import type { DomainLookup, DomainRepo } from '../../../core/ports.ts';
import type { Row, Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memoryDomainRepo = (t: TenantView): DomainRepo => ({
  insert: async (d) => t.insert('domains', d),
  get: async (id) => t.getOwn<Domain>('domains', id),
  list: async (page, filter) =>
    t.page<Domain>('domains', t.filtered('domains', filter, 'viaService'), page),
  update: async (id, patch) => {
    if (!t.patch('domains', id, patch, ['id', 'orgId'])) throw new NotFound('domain', id);
  },
  delete: async (id) => {
    if (!t.getOwn('domains', id)) return false;
    t.view.delete('domains', id);
    return true;
  },
});

/** As the PostgreSQL functions selfdevop_domain_by_hostname and selfdevop_domains_to_check. */
export const memoryDomainLookup = (tables: Tables): DomainLookup => ({
  findDomainByHostname: async (hostname) => {
    const lowered = hostname.toLowerCase();
    const holds = (r: Row) =>
      (hostnameHoldingStatuses as readonly string[]).includes(String(r.status));
    const claims = [...tables.domains.values()]
      .filter((r) => String(r.hostname).toLowerCase() === lowered)
      .sort(
        (a, b) =>
          Number(holds(b)) - Number(holds(a)) ||
          String(a.createdAt).localeCompare(String(b.createdAt)) ||
          (String(a.id) < String(b.id) ? -1 : 1),
      );
    const d = claims[0];
    return d
      ? { id: String(d.id), orgId: String(d.orgId), status: d.status as Domain['status'] }
      : null;
  },
  domainsToCheck: async (before, limit) => {
    const checked = (r: Row) => (r.checkedAt === null ? null : Date.parse(String(r.checkedAt)));
    const stale = (r: Row) => {
      const at = checked(r);
      if (r.status === 'failed') return false;
      if (at === null) return true;
      return at < Date.parse(r.status === 'active' ? before.active : before.other);
    };
    return [...tables.domains.values()]
      .filter(stale)
      .sort(
        (x, y) =>
          (checked(x) ?? -Infinity) - (checked(y) ?? -Infinity) ||
          String(x.id).localeCompare(String(y.id)),
      )
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map((r) => ({
        id: String(r.id),
        orgId: String(r.orgId),
        status: r.status as Domain['status'],
        checkedAt: r.checkedAt === null ? null : String(r.checkedAt),
      }));
  },
});
