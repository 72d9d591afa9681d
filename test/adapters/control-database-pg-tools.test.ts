/**
 * The PostgreSQL client tools against the machine's real PostgreSQL: a migrated database
 * (forced row-level security and all), dumped as its superuser and restored next to it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgToolsControlDatabase } from '../../adapters/control-database/pg-tools.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { runControlDatabaseContract } from '../contracts/control-database.case.ts';
import { adminUrl, createOwnedTestDatabase, createTestDatabase } from '../support/db.ts';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
const kept = new Set<string>();

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('cpbtools');
  await migrate(db.url);
}, 120_000);

afterAll(async () => {
  for (const name of kept) await admin(`drop database if exists ${name} with (force)`);
  await db?.drop();
});

runControlDatabaseContract({
  make: () => new PgToolsControlDatabase({ url: db.url }),
  expectTable: 'public.schema_migrations',
  newName: () => {
    const name = `sdo_cpbtools_${randomBytes(4).toString('hex')}`;
    kept.add(name);
    return name;
  },
  drop: (name) => admin(`drop database if exists ${name} with (force)`),
});

describe('PgToolsControlDatabase', () => {
  it("refuses a login that row-level security confines (it would back up no tenant's rows)", async () => {
    const owned = await createOwnedTestDatabase('cpbowner');
    try {
      await migrate(owned.url);
      const tools = new PgToolsControlDatabase({ url: owned.ownerUrl });
      await expect(tools.dump({ timeoutMs: 30_000 })).rejects.toThrow(
        /neither a superuser nor BYPASSRLS/,
      );
    } finally {
      await owned.drop();
    }
  }, 120_000);

  it('names the missing tool when PG_BIN_DIR points nowhere', async () => {
    const tools = new PgToolsControlDatabase({ url: db.url, binDir: '/nonexistent' });
    await expect(tools.dump({ timeoutMs: 30_000 })).rejects.toThrow(/psql/);
  });
});
