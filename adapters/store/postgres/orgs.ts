import type { Membership, Org } from '../../../core/models.ts';
import type { MembershipRepo, OrgRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const orgsTable = table<Org>('orgs', ['id', 'name', 'createdAt']);
export const membershipsTable = table<Membership>('memberships', [
  'orgId',
  'userId',
  'role',
  'createdAt',
]);

export const pgOrgRepo = (t: TenantSql): OrgRepo => ({
  insert: (org) => t.insert(orgsTable, org),
  get: () => t.one(orgsTable, [eq('id', t.orgId)]),
});

export const pgMembershipRepo = (t: TenantSql): MembershipRepo => ({
  insert: (m) => t.insert(membershipsTable, m),
  list: () => t.all(membershipsTable, [t.org()], 'created_at, user_id'),
});
