import { afterAll, beforeAll } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { runStoreContract } from '../contracts/store.case.ts';
import { createTestDatabase } from '../support/db.ts';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase('store');
  await migrate(db.url);
});
afterAll(async () => {
  await db?.drop();
});

runStoreContract({ make: () => PostgresStore.fromUrl(db.url) });
