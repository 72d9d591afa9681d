/**
 * The login roles the running control plane connects as (migration 0008 makes them,
 * NOLOGIN). Their passwords belong to the install, not to the schema, so the migrate job
 * gives them here, as the owner, after migrating: `selfdevop_api` for the API and the
 * workers (a member of selfdevop_app, owns nothing) and `selfdevop_queue` for pg-boss (owns
 * pg-boss's schema only). Neither is a superuser or bypasses row-level security.
 */
import { isPgError, openSession, type SqlClient } from './postgres.ts';

/** The login roles, by what connects as them. */
export const loginRoles = { api: 'selfdevop_api', queue: 'selfdevop_queue' } as const;

export type LoginRole = keyof typeof loginRoles;

/**
 * The URL `url` names, with another login and password: the API's or the queue's URL
 * derived from the owner's, same host, port, database and options.
 * @example loginUrl(ownerUrl, 'api', apiPassword)
 */
export function loginUrl(url: string, role: LoginRole, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(loginRoles[role]);
  u.password = encodeURIComponent(password);
  return u.toString();
}

// ALTER ROLE on a role another session alters at the same moment (several databases of
// one cluster migrating together, as in tests) fails with "tuple concurrently updated";
// the second try finds the first one's row committed.
const attempts = 5;

async function setLogin(db: SqlClient, role: string, password: string): Promise<void> {
  // format(%L) quotes on the server: ALTER ROLE takes no bind parameters.
  const { rows } = await db.query<{ sql: string }>(
    `select format('alter role %I with login password %L', $1::text, $2::text) as sql`,
    [role, password],
  );
  for (let attempt = 1; ; attempt++) {
    try {
      await db.query(rows[0]!.sql);
      return;
    } catch (e) {
      const raced = isPgError(e) && e.code === 'XX000' && /concurrently/.test(e.message);
      if (!raced || attempt >= attempts) throw e;
    }
  }
}

/**
 * Gives each named login role LOGIN and its password, as the migrating role at ownerUrl
 * (which must be allowed to alter roles: a superuser, or CREATEROLE as in Compose and RDS).
 * Run after migrate(), which creates the roles; setting the same password again is a no-op
 * in effect, so the migrate job runs it every time and a changed password takes.
 * @example await provisionLoginRoles(ownerUrl, { api: apiPassword, queue: queuePassword })
 */
export async function provisionLoginRoles(
  ownerUrl: string,
  passwords: Partial<Record<LoginRole, string>>,
): Promise<LoginRole[]> {
  const given = (Object.keys(loginRoles) as LoginRole[]).filter((r) => passwords[r]);
  if (given.length === 0) return [];
  const session = await openSession(ownerUrl);
  try {
    for (const role of given) await setLogin(session, loginRoles[role], passwords[role]!);
    if (given.includes('queue')) {
      // pg-boss runs CREATE SCHEMA IF NOT EXISTS at every start, which checks this right
      // even when its schema exists. A database-level grant is not in a dump, so a restored
      // database gets it back here, at the migrate job that precedes every start.
      await session
        .query(
          `select format('grant create on database %I to %I', current_database(), $1::text) as sql`,
          [loginRoles.queue],
        )
        .then((r) => session.query((r.rows[0] as { sql: string }).sql));
    }
    return given;
  } finally {
    await session.end().catch(() => undefined);
  }
}
