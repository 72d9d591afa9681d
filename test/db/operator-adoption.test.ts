/**
 * Migration 0012 on an install made before operators existed: the self-hosted processes
 * adopt its first account as the operator, and the nodes of the orgs it owns as vouched for,
 * so the local engine it registered keeps deploying; other orgs' nodes stay tenants' (they
 * may be the registrations hole 1 closes). Real PostgreSQL, as the application role.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { adoptFirstOperator } from '../../adapters/store/postgres/identity.ts';
import { aNode, anOrg, aUser, at } from '../contracts/store/builders.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Database;
let store: PostgresStore;

beforeAll(async () => {
  testDb = await createTestDatabase('adoption');
  await migrate(testDb.url);
  db = fromDatabaseUrl(testDb.url);
  store = new PostgresStore(db);
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

describe('adopting the first operator of an older install', () => {
  it('does nothing on an install with no user yet', async () => {
    expect(await adoptFirstOperator(db)).toBeNull();
  });

  it("makes the first account the operator and vouches for its own orgs' nodes only", async () => {
    // As an older version left them: plain users, nodes nobody vouched for.
    const installer = aUser({ createdAt: at(1) });
    const stranger = aUser({ createdAt: at(2) });
    await store.identity.createUser(stranger);
    await store.identity.createUser(installer);
    const orgs = [anOrg(), anOrg()] as const;
    const nodes = [
      aNode(orgs[0].id, { operatorRegistered: false }),
      aNode(orgs[1].id, { operatorRegistered: false }),
    ];
    const owners = [installer, stranger];
    for (const [i, org] of orgs.entries()) {
      await store.withOrg(org.id, async (r) => {
        await r.orgs.insert(org);
        await r.memberships.insert({
          orgId: org.id,
          userId: owners[i]!.id,
          role: 'owner',
          createdAt: at(3),
        });
        await r.nodes.insert(nodes[i]!);
      });
    }

    expect(await adoptFirstOperator(db)).toBe(installer.id);
    expect(await store.identity.isOperator(installer.id)).toBe(true);
    expect(await store.identity.isOperator(stranger.id)).toBe(false);
    const vouched = async (i: number) =>
      (await store.withOrg(orgs[i]!.id, (r) => r.nodes.get(nodes[i]!.id)))?.operatorRegistered;
    expect(await vouched(0)).toBe(true);
    expect(await vouched(1)).toBe(false);

    // Once there is an operator, never again: a later start changes nothing.
    expect(await adoptFirstOperator(db)).toBeNull();
    expect(await store.identity.isOperator(stranger.id)).toBe(false);
  });
});
