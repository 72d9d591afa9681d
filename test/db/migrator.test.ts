import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkMigrations,
  checksumOf,
  loadMigrations,
  migrate,
  MigrationsOutOfStep,
  planMigrations,
  type Migration,
} from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, openSession, type Database } from '../../adapters/db/postgres.ts';
import { createTestDatabase } from '../support/db.ts';

type TestDb = Awaited<ReturnType<typeof createTestDatabase>>;

const dirs: string[] = [];
/** A migrations folder holding exactly these files. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sdo-migrations-'));
  dirs.push(dir);
  for (const [name, sql] of Object.entries(files)) writeFileSync(path.join(dir, name), sql);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function rowsOf(url: string): Promise<{ version: number; name: string; checksum: string }[]> {
  const s = await openSession(url);
  try {
    return (
      await s.query<{ version: number; name: string; checksum: string }>(
        'select version, name, checksum from schema_migrations order by version',
      )
    ).rows;
  } finally {
    await s.end();
  }
}

async function exec(url: string, sql: string): Promise<void> {
  const s = await openSession(url);
  try {
    await s.query(sql);
  } finally {
    await s.end();
  }
}

describe('planMigrations', () => {
  const m = (version: number, sql = `-- ${version}`): Migration => ({
    version,
    name: `m${version}`,
    sql,
    checksum: checksumOf(sql),
  });

  it('returns what is not applied yet, in order', () => {
    const code = [m(1), m(2), m(3)];
    expect(
      planMigrations(code, [{ version: 1, name: 'm1', checksum: code[0]!.checksum }]).pending.map(
        (x) => x.version,
      ),
    ).toEqual([2, 3]);
    expect(planMigrations(code, [])).toEqual({ pending: code, problems: [] });
  });

  it('names a database that is ahead, and one that diverged', () => {
    const { problems } = planMigrations(
      [m(1)],
      [
        { version: 1, name: 'm1', checksum: 'f'.repeat(64) },
        { version: 7, name: 'future', checksum: 'x' },
      ],
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^migration 1 \(m1\) has diverged/);
    expect(problems[1]).toMatch(/^database is ahead of this code: it has migration 7 \(future\)/);
  });
});

describe('loadMigrations', () => {
  it('reads the repository migrations in version order', () => {
    const all = loadMigrations();
    expect(all[0]).toMatchObject({ version: 1, name: 'init' });
    expect(all.map((x) => x.version)).toEqual([...all.map((x) => x.version)].sort((x, y) => x - y));
  });

  it('refuses a badly named file and a duplicated version', () => {
    expect(() => loadMigrations(folder({ 'init.sql': 'select 1' }))).toThrow(
      'migration file init.sql is not named NNNN_name.sql',
    );
    expect(() =>
      loadMigrations(folder({ '0001_a.sql': 'select 1', '01_b.sql': 'select 2' })),
    ).toThrow('two migration files have version 1');
  });
});

describe('migrate', () => {
  let db: TestDb;
  beforeEach(async () => {
    db = await createTestDatabase('migrator');
  });
  afterEach(async () => {
    await db.drop();
  });

  it('applies every migration once; running it again is a no-op', async () => {
    const code = loadMigrations();
    const first = await migrate(db.url);
    expect(first).toEqual(
      code.map((x) => ({ version: x.version, name: x.name, checksum: x.checksum })),
    );
    expect(await migrate(db.url)).toEqual([]);
    expect(await rowsOf(db.url)).toEqual(first);
    await expect(asApp(db.url, (app) => checkMigrations(app))).resolves.toEqual({ pending: [] });
  });

  it('applies once when two processes migrate at the same time', async () => {
    const results = await Promise.all([migrate(db.url), migrate(db.url), migrate(db.url)]);
    const applied = results.flat();
    expect(applied.map((x) => x.version)).toEqual(loadMigrations().map((x) => x.version));
    expect(await rowsOf(db.url)).toHaveLength(loadMigrations().length);
  });

  it('refuses a database that is ahead of the code', async () => {
    await migrate(db.url);
    await exec(
      db.url,
      `insert into schema_migrations (version, name, checksum) values (9999, 'from_the_future', 'abc')`,
    );
    const expected =
      /database is ahead of this code: it has migration 9999 \(from_the_future\) which this build does not/;
    await expect(migrate(db.url)).rejects.toThrow(expected);
    await expect(migrate(db.url)).rejects.toBeInstanceOf(MigrationsOutOfStep);
    await expect(asApp(db.url, (app) => checkMigrations(app))).rejects.toThrow(expected);
  });

  it('refuses a database whose applied migration differs from the file', async () => {
    await migrate(db.url);
    await exec(db.url, `update schema_migrations set checksum = repeat('0', 64) where version = 1`);
    const expected =
      /migration 1 \(init\) has diverged: the file's checksum [0-9a-f]{12} differs from the applied 000000000000/;
    await expect(migrate(db.url)).rejects.toThrow(expected);
    await expect(asApp(db.url, (app) => checkMigrations(app))).rejects.toThrow(expected);
  });

  it('reports what a database that is behind still needs', async () => {
    const dir = folder({
      '0001_one.sql': 'create table one (id int)',
      '0002_two.sql': 'create table two (id int)',
    });
    const session = await openSession(db.url);
    try {
      await expect(checkMigrations(session, { dir })).resolves.toEqual({
        pending: [
          { version: 1, name: 'one' },
          { version: 2, name: 'two' },
        ],
      });
      await migrate(db.url, { dir: folder({ '0001_one.sql': 'create table one (id int)' }) });
      await expect(checkMigrations(session, { dir })).resolves.toEqual({
        pending: [{ version: 2, name: 'two' }],
      });
      expect(await migrate(db.url, { dir })).toEqual([
        { version: 2, name: 'two', checksum: checksumOf('create table two (id int)') },
      ]);
    } finally {
      await session.end();
    }
  });

  it('rolls back a failing migration whole, names it, and keeps the ones before it', async () => {
    const dir = folder({
      '0001_good.sql': 'create table good (id int);',
      '0002_bad.sql': 'create table half (id int);\nselect * from no_such_table;',
    });
    await expect(migrate(db.url, { dir })).rejects.toThrow(
      /^migration 2 \(bad\) failed: relation "no_such_table" does not exist/,
    );
    expect((await rowsOf(db.url)).map((r) => r.version)).toEqual([1]);
    const s = await openSession(db.url);
    try {
      const t = await s.query<{ good: string | null; half: string | null }>(
        `select to_regclass('good')::text as good, to_regclass('half')::text as half`,
      );
      expect(t.rows[0]).toEqual({ good: 'good', half: null });
    } finally {
      await s.end();
    }
  });

  it('forces RLS on a tenant table a later migration adds without it, and opens it to migrations', async () => {
    const dir = folder({
      ...Object.fromEntries(
        loadMigrations().map((m) => [`${String(m.version).padStart(4, '0')}_${m.name}.sql`, m.sql]),
      ),
      '9002_unforced.sql': `
        create table unforced (id text primary key, org_id text not null references orgs (id));
        alter table unforced enable row level security;
        create policy org_isolation on unforced using (org_id = current_setting('app.org_id', true));`,
      '9003_not_even_enabled.sql': `
        create table not_enabled (id text primary key, org_id text not null references orgs (id));`,
    });
    await migrate(db.url, { dir });
    const s = await openSession(db.url);
    try {
      const r = await s.query<{
        relname: string;
        enabled: boolean;
        forced: boolean;
        policies: string[];
      }>(
        `select c.relname, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
                array(select polname::text from pg_policy p where p.polrelid = c.oid order by polname) as policies
         from pg_class c where c.relname in ('unforced', 'not_enabled') order by c.relname`,
      );
      expect(r.rows).toEqual([
        // RLS with no org policy: nobody but a superuser sees a row (rls.test.ts fails it).
        {
          relname: 'not_enabled',
          enabled: true,
          forced: true,
          policies: ['cross_org_lookups', 'migrations'],
        },
        {
          relname: 'unforced',
          enabled: true,
          forced: true,
          policies: ['cross_org_lookups', 'migrations', 'org_isolation'],
        },
      ]);
    } finally {
      await s.end();
    }
  });

  it('names the database when it cannot be reached', async () => {
    await expect(migrate('postgres://postgres@127.0.0.1:1/nothing')).rejects.toMatchObject({
      code: 'database_unavailable',
    });
  });
});

describe('migrate on several databases of one cluster at once', () => {
  it('succeeds on each (the app role is shared by the cluster)', async () => {
    const dbs = await Promise.all([
      createTestDatabase('mig_a'),
      createTestDatabase('mig_b'),
      createTestDatabase('mig_c'),
    ]);
    try {
      const results = await Promise.all(dbs.map((d) => migrate(d.url)));
      for (const r of results)
        expect(r.map((x) => x.version)).toEqual(loadMigrations().map((x) => x.version));
    } finally {
      await Promise.all(dbs.map((d) => d.drop()));
    }
  });
});

/** Runs fn with a pool of the application role (as the API has), closed after. */
async function asApp<T>(url: string, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = fromDatabaseUrl(url, { max: 1 });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
