import type { Invite, InviteWithHash, Page } from '../../../core/models.ts';
import type { InviteLookup, InviteRepo } from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';
import { eq, fromRow, table, toColumn } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const invitesTable = table<InviteWithHash>('invites', [
  'id',
  'orgId',
  'email',
  'role',
  'tokenHash',
  'invitedBy',
  'createdAt',
  'expiresAt',
  'acceptedAt',
  'acceptedBy',
  'revokedAt',
]);
const inviteTable = table<Invite>(
  'invites',
  invitesTable.keys.filter((k): k is keyof Invite & string => k !== 'tokenHash'),
);

const withoutHash = ({ tokenHash: _hash, ...invite }: InviteWithHash): Invite => invite;

export const pgInviteRepo = (t: TenantSql): InviteRepo => ({
  insert: (invite) => t.insert(invitesTable, invite),
  get: (id) => t.one(inviteTable, [eq('id', id), t.org()]),
  list: async (page): Promise<Page<Invite>> => {
    const p = await t.page(invitesTable, [], page);
    return { items: p.items.map(withoutHash), nextCursor: p.nextCursor };
  },
  openFor: async (email) =>
    (await t.all(inviteTable, [t.org(), eq('email', email.toLowerCase())], 'id')).filter(
      (i) => i.acceptedAt === null && i.revokedAt === null,
    ),
  revoke: async (id, at) => {
    const r = await t.tx.query(
      `update invites set revoked_at = $1
       where id = $2 and org_id = $3 and accepted_at is null and revoked_at is null`,
      [at, id, t.orgId],
    );
    return r.rowCount > 0;
  },
  accept: async (id, userId, at) => {
    const r = await t.tx.query(
      `update invites set accepted_at = $1, accepted_by = $2
       where id = $3 and org_id = $4 and accepted_at is null and revoked_at is null
         and expires_at > $1`,
      [at, userId, id, t.orgId],
    );
    return r.rowCount > 0;
  },
});

/** Before the org is known, through the security-definer function of migration 0011. */
export const pgInviteLookup = (db: Database): InviteLookup => ({
  findInviteByTokenHash: async (tokenHash) => {
    const r = await db.query(
      `select ${inviteTable.keys.map(toColumn).join(', ')} from selfdevop_invite_by_token_hash($1)`,
      [tokenHash],
    );
    return r.rows[0] ? fromRow(inviteTable, r.rows[0]) : null;
  },
});
