import { afterAll, beforeAll } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { PostgresUpstreamRegistry } from '../../adapters/edge/upstreams-postgres.ts';
import { runUpstreamRegistryContract } from '../contracts/upstream-registry.case.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Database;

beforeAll(async () => {
  testDb = await createTestDatabase('upstreams');
  await migrate(testDb.url);
  db = fromDatabaseUrl(testDb.url);
});
afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

runUpstreamRegistryContract({
  make: async () => {
    await db.query('delete from edge_upstreams where label is not null');
    return new PostgresUpstreamRegistry(db);
  },
});
