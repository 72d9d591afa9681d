import { afterAll, beforeAll } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { PostgresRouteCatalog } from '../../adapters/edge/route-catalog-postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { runRouteCatalogContract } from '../contracts/route-catalog.case.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Database;
let owner: Database;

beforeAll(async () => {
  testDb = await createTestDatabase('routes');
  await migrate(testDb.url);
  // As the application connects: the application role, under row-level security.
  db = fromDatabaseUrl(testDb.url, { appRole: 'selfdevop_app' });
  owner = fromDatabaseUrl(testDb.url, { appRole: null });
});
afterAll(async () => {
  await db?.close();
  await owner?.close();
  await testDb?.drop();
});

runRouteCatalogContract({
  make: async () => {
    await owner.query(
      'truncate domains, release_logs, release_steps, deploy_jobs, releases, services, environments, projects, orgs cascade',
    );
    const store = new PostgresStore(db);
    return {
      catalog: new PostgresRouteCatalog(db),
      seed: async (f) => {
        for (const org of f.orgs) {
          await store.withOrg(org.id, async (r) => {
            await r.orgs.insert(org);
            for (const p of f.projects.filter((x) => x.orgId === org.id))
              await r.projects.insert(p);
            for (const e of f.environments.filter((x) => x.orgId === org.id))
              await r.environments.insert(e);
            for (const s of f.services.filter((x) => x.orgId === org.id))
              await r.services.insert(s);
            for (const x of f.releases.filter((y) => y.orgId === org.id))
              await r.releases.insert(x);
            for (const d of f.domains.filter((x) => x.orgId === org.id)) await r.domains.insert(d);
          });
        }
      },
    };
  },
});
