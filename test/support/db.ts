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
