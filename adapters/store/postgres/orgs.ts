import type { Member, Membership, Org } from '../../../core/models.ts';
import type { MembershipRepo, OrgRepo } from '../../../core/ports.ts';
import { eq, fromRow, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const orgsTable = table<Org>('orgs', ['id', 'name', 'createdAt']);
export const membershipsTable = table<Membership>('memberships', [
  'orgId',
  'userId',
  'role',
  'createdAt',
]);
const memberTable = table<Member>('members', ['userId', 'email', 'role', 'createdAt']);

export const pgOrgRepo = (t: TenantSql): OrgRepo => ({
  insert: (org) => t.insert(orgsTable, org),
  get: () => t.one(orgsTable, [eq('id', t.orgId)]),
});

export const pgMembershipRepo = (t: TenantSql): MembershipRepo => ({
  insert: (m) => t.insert(membershipsTable, m),
  list: () => t.all(membershipsTable, [t.org()], 'created_at, user_id'),
  members: async () => {
    // users has no org (a person may be in several) and the app role cannot read it: the
    // emails come from selfdevop_org_users(), which returns the set org's members only.
    const r = await t.tx.query(
      `select m.user_id, u.email, m.role, m.created_at
       from memberships m join selfdevop_org_users() u on u.id = m.user_id
       where m.org_id = $1 order by m.created_at, m.user_id`,
      [t.orgId],
    );
    return r.rows.map((row) => fromRow(memberTable, row));
  },
  get: (userId) => t.one(membershipsTable, [eq('user_id', userId), t.org()]),
  // The org's row, not the owners' rows: a lock on rows that match "role = owner" would
  // miss the row a concurrent promotion is about to make an owner.
  lock: async () => {
    await t.tx.query('select id from orgs where id = $1 for update', [t.orgId]);
  },
  setRole: async (userId, role) => {
    const r = await t.tx.query(
      'update memberships set role = $1 where org_id = $2 and user_id = $3',
      [role, t.orgId, userId],
    );
    return r.rowCount > 0;
  },
  delete: (userId) => t.deleteWhere(membershipsTable, [t.org(), eq('user_id', userId)]),
});
