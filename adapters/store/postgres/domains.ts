import type { Domain } from '../../../core/models.ts';
import type { DomainLookup, DomainRepo } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { eq, fromRow, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const domainsTable = table<Domain>('domains', [
  'id',
  'orgId',
  'serviceId',
  'environmentId',
  'hostname',
  'verificationToken',
  'status',
  'dnsStatus',
  'tlsStatus',
  'lastError',
  'checkedAt',
  'createdAt',
  'certNotAfter',
  'certIssuer',
]);

export const pgDomainRepo = (t: TenantSql): DomainRepo => ({
  insert: (d) => t.insert(domainsTable, d),
  get: (id) => t.one(domainsTable, [eq('id', id), t.org()]),
  list: (page, filter) =>
    t.page(
      domainsTable,
      t.filterConditions(filter, { project: 'viaService', service: true, environment: true }),
      page,
    ),
  update: async (id, patch) => {
    await t.updateById(domainsTable, 'domain', id, patch);
  },
  delete: (id) => t.deleteWhere(domainsTable, [eq('id', id), t.org()]),
});

const foundTable = table<Pick<Domain, 'id' | 'orgId' | 'status'>>('domains', [
  'id',
  'orgId',
  'status',
]);
const dueTable = table<Pick<Domain, 'id' | 'orgId' | 'status' | 'checkedAt'>>('domains', [
  'id',
  'orgId',
  'status',
  'checkedAt',
]);

/** No org is known here, so both go through security-definer functions (migrations 0001, 0002). */
export const pgDomainLookup = (db: SqlClient): DomainLookup => ({
  findDomainByHostname: async (hostname) => {
    const r = await db.query('select id, org_id, status from selfdevop_domain_by_hostname($1)', [
      hostname,
    ]);
    return r.rows[0] ? fromRow(foundTable, r.rows[0]) : null;
  },
  domainsToCheck: async (before, limit) => {
    const r = await db.query(
      'select id, org_id, status, checked_at from selfdevop_domains_to_check($1, $2, $3)',
      [before.active, before.other, limit],
    );
    return r.rows.map((row) => fromRow(dueTable, row));
  },
});
