import pg from 'pg';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadMigrations, migrate } from '../../adapters/db/migrator.ts';

/** Admin connection to the machine's PostgreSQL (trust auth), used to make test databases. */
export const adminUrl =
  process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function databaseUrl(name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A fresh, empty database for one test file, dropped by the returned `drop`. Files run in
 * parallel, each in its own database, as pg-boss's test hooks do.
 */
export async function createTestDatabase(
  label = 'test',
): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `sdo_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: databaseUrl(name),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * A fresh database at the schema's newest migration, for one test file, dropped by `drop`:
 * copied (CREATE DATABASE … TEMPLATE) from a template migrated once per set of migrations,
 * which takes a fraction of migrating every file's database from empty. Calling
 * `migrate(url)` on it afterwards applies nothing. The migrations' own tests (test/db) keep
 * migrating from empty.
 */
export async function createMigratedTestDatabase(
  label = 'test',
): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const template = await migratedTemplate();
  if (!template) {
    const db = await createTestDatabase(label);
    await migrate(db.url);
    return db;
  }
  const name = `sdo_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // Refused while anything is connected to the template; nothing should be, but a
    // client that visits every database of the shared cluster may be, for a moment.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(`create database ${name} template ${template}`);
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== '55006' || attempt === 20) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    // A database's privileges live in the cluster's catalog, not in the copied files: the
    // grants the migrations made on the template's database (0008: CREATE for
    // selfdevop_queue, which pg-boss creates its schema with) are made again on the copy.
    const grants = await admin.query<{ grantee: string; privilege: string }>(
      `select case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end as grantee,
              a.privilege_type as privilege
       from pg_database d, aclexplode(d.datacl) a
       left join pg_roles r on r.oid = a.grantee
       where d.datname = $1 and a.grantee <> d.datdba`,
      [template],
    );
    for (const g of grants.rows)
      await admin.query(`grant ${g.privilege} on database ${name} to ${g.grantee}`);
  } finally {
    await admin.end();
  }
  return { name, url: databaseUrl(name), drop: () => dropDatabase(name) };
}

async function dropDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(`drop database if exists ${name} with (force)`);
  } finally {
    await c.end();
  }
}

let template: Promise<string | null> | undefined;

/**
 * The template's name, made on first use in this process and kept in the cluster for later
 * runs: it is named after a hash of every migration and of the migrator (which also applies
 * the tenant rules), so a branch with other migrations gets a template of its own, and a
 * stale one is never used. Concurrent processes each migrate a scratch database and rename
 * it; the first rename wins and the others drop theirs. Null when the template would carry
 * database-level settings (ALTER DATABASE … SET), which a copy would not get: then every
 * database is migrated from empty.
 */
function migratedTemplate(): Promise<string | null> {
  template ??= (async () => {
    const migrator = fileURLToPath(new URL('../../adapters/db/migrator.ts', import.meta.url));
    const hash = createHash('sha256').update(readFileSync(migrator));
    for (const m of loadMigrations()) hash.update(`${m.version} ${m.checksum}\n`);
    const name = `sdo_template_${hash.digest('hex').slice(0, 16)}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const exists = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (exists.rowCount === 0) {
        const scratch = `${name}_${randomBytes(4).toString('hex')}`;
        await admin.query(`create database ${scratch}`);
        try {
          await migrate(databaseUrl(scratch));
          await admin.query(`alter database ${scratch} rename to ${name}`);
        } catch (e) {
          await admin.query(`drop database if exists ${scratch} with (force)`);
          // Another process renamed its copy first: use that one.
          if ((e as { code?: string }).code !== '42P04') throw e;
        }
      }
      const settings = await admin.query(
        `select 1 from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase
         where d.datname = $1`,
        [name],
      );
      return settings.rowCount === 0 ? name : null;
    } finally {
      await admin.end();
    }
  })();
  return template;
}

/**
 * A fresh database owned by a fresh non-superuser role with CREATEROLE, as Compose's
 * `selfdevop` and RDS's master user are: row-level security forced on a table confines its
 * owner only when the owner is not a superuser. `ownerUrl` logs in as that role; `drop`
 * removes both.
 */
export async function createOwnedTestDatabase(label = 'owned'): Promise<{
  url: string;
  ownerUrl: string;
  owner: string;
  name: string;
  drop: () => Promise<void>;
}> {
  const suffix = randomBytes(4).toString('hex');
  const name = `sdo_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${suffix}`;
  const owner = `sdo_owner_${suffix}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create role ${owner} login createrole`);
    await admin.query(`create database ${name} owner ${owner}`);
  } finally {
    await admin.end();
  }
  const ownerUrl = new URL(databaseUrl(name));
  ownerUrl.username = owner;
  return {
    name,
    owner,
    url: databaseUrl(name),
    ownerUrl: ownerUrl.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
        // What it still holds elsewhere in the cluster: grants on the shared roles.
        await c.query(`drop owned by ${owner}`);
        await c.query(`drop role if exists ${owner}`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Runs fn while holding a lock every test that sets the cluster-wide login roles'
 * passwords takes (advisory locks are per database, so it is taken in the admin database):
 * a test that reads a password back must not see another file's.
 */
export async function withLoginRolesLock<T>(fn: () => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query('select pg_advisory_lock(7402115932)');
    return await fn();
  } finally {
    await c.end();
  }
}
