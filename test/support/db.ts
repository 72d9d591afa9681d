import pg from 'pg';
import { randomBytes } from 'node:crypto';

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
