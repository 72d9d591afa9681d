import type { ApiKey, User, UserWithPassword } from '../../../core/models.ts';
import type { IdentityRepo } from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';
import { isViolation, violationOf } from './constraints.ts';
import { membershipsTable } from './orgs.ts';
import { fromRow, table } from './sql.ts';

const usersTable = table<UserWithPassword>('users', ['id', 'email', 'passwordHash', 'createdAt']);
const userTable = table<User>('users', ['id', 'email', 'createdAt']);
const apiKeyTable = table<ApiKey>('api_keys', [
  'id',
  'orgId',
  'name',
  'role',
  'prefix',
  'createdAt',
  'revokedAt',
]);

/**
 * Before an org is known, the rows it needs come through security-definer functions
 * (migrations 0001 and 0008); users, with their password hashes, only through them: the
 * app role has no privilege on the table at all.
 */
const createUserSql = 'select selfdevop_create_user($1, $2, $3, $4)';
const createUserValues = (u: UserWithPassword) => [u.id, u.email, u.passwordHash, u.createdAt];

/** Any key will do, as long as nothing else takes this advisory lock: it serialises first-user signups. */
const firstUserLock = 0x5d0_0001;

const grantOperatorSql =
  'insert into operators (user_id, granted_at) values ($1, $2) on conflict (user_id) do nothing';

export const pgIdentityRepo = (db: Database): IdentityRepo => ({
  createUser: async (user) => {
    const lowered = { ...user, email: user.email.toLowerCase() };
    try {
      // A write behind a SELECT: in a transaction, so a dropped connection is never retried.
      await db.transaction((tx) => tx.query(createUserSql, createUserValues(lowered)));
    } catch (e) {
      throw (isViolation(e) ? violationOf(e, lowered) : null) ?? e;
    }
  },
  findUserByEmail: async (email) => {
    const r = await db.query(
      'select id, email, password_hash, created_at from selfdevop_user_by_email($1)',
      [email],
    );
    return r.rows[0] ? fromRow(usersTable, r.rows[0]) : null;
  },
  findUserById: async (id) => {
    const r = await db.query('select id, email, created_at from selfdevop_user_by_id($1)', [id]);
    return r.rows[0] ? fromRow(userTable, r.rows[0]) : null;
  },
  membershipsOf: async (userId) => {
    const r = await db.query(
      'select org_id, user_id, role, created_at from selfdevop_memberships_of($1)',
      [userId],
    );
    return r.rows.map((row) => fromRow(membershipsTable, row));
  },
  findApiKeyByHash: async (keyHash) => {
    const r = await db.query(
      'select id, org_id, name, role, prefix, created_at, revoked_at from selfdevop_api_key_by_hash($1)',
      [keyHash],
    );
    return r.rows[0] ? fromRow(apiKeyTable, r.rows[0]) : null;
  },
  countUsers: async () => {
    const r = await db.query<{ n: string }>('select selfdevop_count_users() as n');
    return Number(r.rows[0]?.n ?? 0);
  },
  createFirstUser: async (user) => {
    const lowered = { ...user, email: user.email.toLowerCase() };
    try {
      return await db.transaction(async (tx) => {
        // Held to COMMIT: the next caller counts only after this one's user is visible.
        await tx.query('select pg_advisory_xact_lock($1)', [firstUserLock]);
        const r = await tx.query<{ n: string }>('select selfdevop_count_users() as n');
        if (Number(r.rows[0]?.n ?? 0) > 0) return false;
        await tx.query(createUserSql, createUserValues(lowered));
        await tx.query(grantOperatorSql, [lowered.id, lowered.createdAt]);
        return true;
      });
    } catch (e) {
      throw (isViolation(e) ? violationOf(e, lowered) : null) ?? e;
    }
  },
  createUserFirstIsOperator: async (user) => {
    const lowered = { ...user, email: user.email.toLowerCase() };
    try {
      return await db.transaction(async (tx) => {
        // The same lock as createFirstUser: two concurrent first signups cannot both see none.
        await tx.query('select pg_advisory_xact_lock($1)', [firstUserLock]);
        const r = await tx.query<{ n: string }>('select selfdevop_count_users() as n');
        await tx.query(createUserSql, createUserValues(lowered));
        if (Number(r.rows[0]?.n ?? 0) > 0) return { operator: false };
        await tx.query(grantOperatorSql, [lowered.id, lowered.createdAt]);
        return { operator: true };
      });
    } catch (e) {
      throw (isViolation(e) ? violationOf(e, lowered) : null) ?? e;
    }
  },
  isOperator: async (userId) => {
    const r = await db.query('select 1 from operators where user_id = $1', [userId]);
    return r.rows.length > 0;
  },
});

/**
 * Upgrades a self-hosted install made before operators existed: its first account becomes
 * the operator and the nodes of the orgs it owns count as the operator's (migration 0012's
 * `selfdevop_adopt_first_operator`). Returns the adopted user's id, or null when an operator
 * already exists or there is no user yet. Self-hosted only: a cloud's first user is a tenant.
 */
export async function adoptFirstOperator(db: Database): Promise<string | null> {
  const r = await db.query<{ adopted: string | null }>(
    'select selfdevop_adopt_first_operator() as adopted',
  );
  return r.rows[0]?.adopted ?? null;
}
