/**
 * Applies migrations/NNNN_name.sql in order, forward only. Each file runs in its own
 * transaction and is recorded with its sha256 in schema_migrations, under an advisory
 * lock so several processes starting at once apply each file exactly once.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openSession, type SqlClient, type SqlSession } from './postgres.ts';

export const defaultMigrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Any constant works; it only has to be the same for every selfdevop process. Advisory
// locks are scoped to the current database, so other databases of the cluster do not wait.
const lockKey = 7_402_115_931;

export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

export class MigrationsOutOfStep extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationsOutOfStep';
  }
}

/**
 * Another session held the migrations lock for longer than the migrate step would wait:
 * another selfdevop migrating the same database, or a session of one that is stuck.
 */
export class MigrationsLocked extends Error {
  /** The holder's backend pid, when PostgreSQL shows it. */
  readonly holderPid: number | null;
  constructor(waitedMs: number, holderPid: number | null) {
    super(
      `another session (${holderPid === null ? 'pid not visible' : `PostgreSQL pid ${holderPid}`}) held the migrations lock for more than ${Math.round(waitedMs / 1000)} s`,
    );
    this.name = 'MigrationsLocked';
    this.holderPid = holderPid;
  }
}

/** Who holds the migrations lock (an advisory lock on one bigint: classid high, objid low). */
async function lockHolder(session: SqlSession): Promise<number | null> {
  const r = await session
    .query<{ pid: number }>(
      `select pid from pg_locks
        where locktype = 'advisory' and granted and objsubid = 1
          and classid::bigint = ($1::bigint >> 32) and objid::bigint = ($1::bigint & 4294967295)`,
      [lockKey],
    )
    .catch(() => ({ rows: [] as { pid: number }[] }));
  return r.rows[0]?.pid ?? null;
}

/**
 * Takes the migrations lock, waiting at most `waitMs`: a session that keeps it (another
 * selfdevop migrating, a stuck one) fails the start naming it instead of blocking it forever
 * as `pg_advisory_lock` did. `onWait` hears the holder once, when the first try fails.
 */
async function takeLock(
  session: SqlSession,
  waitMs: number,
  onWait?: (holderPid: number | null) => void,
): Promise<void> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const r = await session.query<{ ok: boolean }>('select pg_try_advisory_lock($1) as ok', [
      lockKey,
    ]);
    if (r.rows[0]?.ok) return;
    if (attempt === 0) onWait?.(await lockHolder(session));
    if (Date.now() - started >= waitMs)
      throw new MigrationsLocked(Date.now() - started, await lockHolder(session));
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, waitMs)));
  }
}

const fileName = /^(\d+)_([a-z0-9_-]+)\.sql$/;

export const checksumOf = (sql: string): string => createHash('sha256').update(sql).digest('hex');

/** Reads the migration files; a badly named or duplicated version is refused. */
export function loadMigrations(dir = defaultMigrationsDir): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = fileName.exec(file);
    if (!m) throw new Error(`migration file ${file} is not named NNNN_name.sql`);
    const sql = readFileSync(`${dir.replace(/\/$/, '')}/${file}`, 'utf8');
    migrations.push({ version: Number(m[1]), name: m[2] ?? '', sql, checksum: checksumOf(sql) });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]?.version === migrations[i - 1]?.version) {
      throw new Error(`two migration files have version ${migrations[i]?.version}`);
    }
  }
  return migrations;
}

/**
 * What to apply, or why not: the database is *ahead* when it records a version this code
 * does not have (an older build started after an upgrade), *diverged* when a recorded
 * file was edited after it was applied. Pure, so it is tested without a database.
 * Pending is every file not recorded, in version order, including one numbered below the
 * newest applied: branches merge migrations out of number order (0008 landed after 0009
 * and 0010), and an existing database must still get it.
 */
export function planMigrations(
  code: readonly Migration[],
  applied: readonly AppliedMigration[],
): { pending: Migration[]; problems: string[] } {
  const byVersion = new Map(code.map((m) => [m.version, m]));
  const problems: string[] = [];
  for (const a of applied) {
    const m = byVersion.get(a.version);
    if (!m) {
      problems.push(
        `database is ahead of this code: it has migration ${a.version} (${a.name}) which this build does not; run a newer build`,
      );
    } else if (m.checksum !== a.checksum) {
      problems.push(
        `migration ${a.version} (${a.name}) has diverged: the file's checksum ${m.checksum.slice(0, 12)} differs from the applied ${a.checksum.slice(0, 12)}; migrations are forward-only, add a new one instead of editing`,
      );
    }
  }
  const done = new Set(applied.map((a) => a.version));
  return { pending: code.filter((m) => !done.has(m.version)), problems };
}

const createTableSql = `
  create table if not exists schema_migrations (
    version integer primary key,
    name text not null,
    checksum text not null,
    applied_at timestamptz not null default now()
  )`;

/**
 * Runs after every migrate that applied something, once migration 0008 (the database
 * roles) is in, so the rules hold whatever order migrations merge in (0011, 0015, 0016 and
 * 0018 were written before 0008 and run after it on a fresh database):
 * - every table with an org_id column (and orgs) has row-level security enabled and
 *   FORCEd, the `migrations` policy (the migrating role sees every org while it migrates),
 *   and the `cross_org_lookups` read policy and grant for selfdevop_definer;
 * - every `selfdevop_*` SECURITY DEFINER function is owned by selfdevop_definer, which reads
 *   only inside its own functions. One left to the owner would see no org under forced RLS
 *   where the owner is no superuser (Compose, RDS), and run as a superuser where it is.
 * The org policy itself is each migration's to write; test/db/rls.test.ts fails a tenant
 * table without one.
 */
const rolesMigration = 8;
const tenantRulesSql = `
do $$
declare
  t record;
  f regprocedure;
begin
  for t in
    select n.nspname, c.relname, c.relrowsecurity and c.relforcerowsecurity as forced,
      exists (select 1 from pg_catalog.pg_policy p
              where p.polrelid = c.oid and p.polname = 'migrations') as open_to_migrations,
      exists (select 1 from pg_catalog.pg_policy p
              where p.polrelid = c.oid and p.polname = 'cross_org_lookups') as open_to_lookups
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    where c.relkind in ('r', 'p') and (c.relname = 'orgs' or exists (
      select 1 from pg_catalog.pg_attribute a
      where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
  loop
    if not t.forced then
      execute format('alter table %I.%I enable row level security, force row level security',
        t.nspname, t.relname);
    end if;
    if not t.open_to_migrations then
      execute format(
        'create policy migrations on %I.%I to selfdevop_migrator '
        'using (current_setting(''selfdevop.migrating'', true) = ''on'') '
        'with check (current_setting(''selfdevop.migrating'', true) = ''on'')',
        t.nspname, t.relname);
    end if;
    if not t.open_to_lookups then
      execute format(
        'create policy cross_org_lookups on %I.%I for select to selfdevop_definer '
        'using (current_user = ''selfdevop_definer'')', t.nspname, t.relname);
    end if;
    execute format('grant select on %I.%I to selfdevop_definer', t.nspname, t.relname);
  end loop;
  for f in
    select p.oid::regprocedure from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace and n.nspname = 'public'
    where p.proname like 'selfdevop\\_%' and p.prosecdef
      and p.proowner <> 'selfdevop_definer'::regrole
  loop
    execute format('alter function %s owner to selfdevop_definer', f);
  end loop;
end
$$`;

async function readApplied(db: SqlClient): Promise<AppliedMigration[] | null> {
  const exists = await db.query<{ t: string | null }>(
    `select to_regclass('public.schema_migrations')::text as t`,
  );
  if (!exists.rows[0]?.t) return null;
  const r = await db.query<AppliedMigration>(
    'select version, name, checksum from schema_migrations order by version',
  );
  return r.rows;
}

/**
 * Applies pending migrations to the database at url and returns what it applied ([] when
 * up to date). Throws MigrationsOutOfStep when the database is ahead or has diverged.
 * @example await migrate(config.DATABASE_URL)
 */
export async function migrate(
  url: string,
  options: {
    dir?: string;
    /** How long another session may keep the migrations lock before this fails; 120 s. */
    lockWaitMs?: number;
    /** Told once when the lock is held by another session (its pid, when visible). */
    onLockWait?: (holderPid: number | null) => void;
  } = {},
): Promise<AppliedMigration[]> {
  const code = loadMigrations(options.dir);
  const session = await openSession(url);
  try {
    await takeLock(session, options.lockWaitMs ?? 120_000, options.onLockWait);
    try {
      // Only when missing: CREATE TABLE IF NOT EXISTS still needs the right to create in
      // the schema, which a role that merely checks an up-to-date database has not.
      const applied = (await readApplied(session)) ?? (await session.query(createTableSql), []);
      const { pending, problems } = planMigrations(code, applied);
      if (problems.length > 0) throw new MigrationsOutOfStep(problems.join('; '));
      const done: AppliedMigration[] = [];
      for (const m of pending) {
        await session.query('begin');
        try {
          // Row-level security is forced on tenant tables, for their owner too; this lets a
          // migration see every org's rows (the `migrations` policy of 0008, which only the
          // migrating role's membership of selfdevop_migrator makes apply). Local: it ends
          // with the migration's transaction.
          await session.query(`select set_config('selfdevop.migrating', 'on', true)`);
          await session.query(m.sql);
          await session.query(
            'insert into schema_migrations (version, name, checksum) values ($1, $2, $3)',
            [m.version, m.name, m.checksum],
          );
          await session.query('commit');
        } catch (e) {
          await session.query('rollback').catch(() => undefined);
          if (e instanceof Error)
            e.message = `migration ${m.version} (${m.name}) failed: ${e.message}`;
          throw e;
        }
        done.push({ version: m.version, name: m.name, checksum: m.checksum });
      }
      if (done.length > 0 && [...applied, ...done].some((m) => m.version === rolesMigration))
        await session.query(tenantRulesSql);
      return done;
    } finally {
      await session.query('select pg_advisory_unlock($1)', [lockKey]).catch(() => undefined);
    }
  } finally {
    await session.end().catch(() => undefined);
  }
}

/**
 * For the API at start: refuses (throws MigrationsOutOfStep naming the problem) when the
 * database is ahead of this code or has diverged from it. Returns the migrations not yet
 * applied, so the caller decides whether a database that is behind may serve.
 */
export async function checkMigrations(
  db: SqlClient,
  options: { dir?: string } = {},
): Promise<{ pending: { version: number; name: string }[] }> {
  const code = loadMigrations(options.dir);
  const applied = (await readApplied(db)) ?? [];
  const { pending, problems } = planMigrations(code, applied);
  if (problems.length > 0) throw new MigrationsOutOfStep(problems.join('; '));
  return { pending: pending.map((m) => ({ version: m.version, name: m.name })) };
}
