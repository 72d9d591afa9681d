/**
 * The test databases copied from the migrated template (test/support/db.ts,
 * createMigratedTestDatabase) must be what migrating an empty database makes: the same
 * schema, rows and privileges, database-level grants included (those live in the cluster's
 * catalog, not in the copied files). Otherwise every suite that starts the API would test
 * a database no install ever has.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { adminUrl, createMigratedTestDatabase, createTestDatabase } from '../support/db.ts';

const run = promisify(execFile);

type Db = Awaited<ReturnType<typeof createTestDatabase>>;

/** pg_dump of schema and data, without what differs between any two dumps. */
async function dump(url: string): Promise<string> {
  const { stdout } = await run('pg_dump', ['--no-comments', '--restrict-key=sdo', url], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter((l) => !l.startsWith('-- Dumped') && !l.startsWith('--'))
    .join('\n')
    .replace(/^(INSERT INTO|COPY) public\.schema_migrations[\s\S]*?^\\\.$/m, '')
    .replace(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+\+\d\d/g, '<time>');
}

async function databaseGrants(name: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const r = await c.query<{ g: string }>(
      `select coalesce(r.rolname, 'public') || ' ' || a.privilege_type as g
       from pg_database d, aclexplode(d.datacl) a left join pg_roles r on r.oid = a.grantee
       where d.datname = $1 order by 1`,
      [name],
    );
    return r.rows.map((row) => row.g);
  } finally {
    await c.end();
  }
}

describe('a test database copied from the migrated template', () => {
  let migrated: Db;
  let copied: Db;

  beforeAll(async () => {
    migrated = await createTestDatabase('tmpl_migrated');
    await migrate(migrated.url);
    copied = await createMigratedTestDatabase('tmpl_copied');
  });
  afterAll(async () => {
    await migrated?.drop();
    await copied?.drop();
  });

  it('has nothing left to migrate', async () => {
    expect(await migrate(copied.url)).toEqual([]);
  });

  it('has the schema, rows and privileges of a database migrated from empty', async () => {
    const [a, b] = await Promise.all([dump(migrated.url), dump(copied.url)]);
    expect(a).toContain('CREATE TABLE public.orgs');
    expect(b).toBe(a);
  });

  it('has the database-level grants the migrations make (CREATE for the queue role)', async () => {
    const grants = await databaseGrants(migrated.name);
    expect(grants).toContain('selfdevop_queue CREATE');
    expect(await databaseGrants(copied.name)).toEqual(grants);
  });
});
