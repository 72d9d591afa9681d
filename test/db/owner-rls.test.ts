import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkMigrations,
  defaultMigrationsDir,
  loadMigrations,
  migrate,
} from '../../adapters/db/migrator.ts';
import {
  fromDatabaseUrl,
  isPgError,
  openSession,
  toPgBossDb,
  type SqlSession,
} from '../../adapters/db/postgres.ts';
import { loginUrl, provisionLoginRoles } from '../../adapters/db/roles.ts';
import { PostgresRouteCatalog } from '../../adapters/edge/route-catalog-postgres.ts';
import { fromPgBoss } from '../../adapters/queue/pg-boss.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import {
  aDomain,
  anApiKey,
  anInvite,
  aNode,
  aRelease,
  aStep,
  aUser,
  at,
  seedTenant,
  type Tenant,
} from '../contracts/store.case.ts';
import { createOwnedTestDatabase, withLoginRolesLock } from '../support/db.ts';

// Compose's database owner (`selfdevop`) and RDS's master user are not superusers, so
// there, and only there, forced row-level security confines the tables' owner. These tests
// migrate as such an owner and run the control plane as the login roles migration 0008
// makes, as the Compose stack and the cloud do.

type OwnedDb = Awaited<ReturnType<typeof createOwnedTestDatabase>>;

const passwords = { api: 'test-api-login-password', queue: 'test-queue-login-password' };

const dirs: string[] = [];
/** The repository's migrations, without some, plus extra files. */
function migrationsFolder(options: { without?: number[]; extra?: Record<string, string> }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sdo-owner-migrations-'));
  dirs.push(dir);
  for (const file of readdirSync(defaultMigrationsDir)) {
    if (!file.endsWith('.sql')) continue;
    if (options.without?.includes(Number(file.slice(0, 4)))) continue;
    writeFileSync(path.join(dir, file), readFileSync(path.join(defaultMigrationsDir, file)));
  }
  for (const [name, sql] of Object.entries(options.extra ?? {}))
    writeFileSync(path.join(dir, name), sql);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function pgCodeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (isPgError(e) ? e.code : String(e)),
  );
}

async function withSession<T>(url: string, fn: (s: SqlSession) => Promise<T>): Promise<T> {
  const s = await openSession(url);
  try {
    return await fn(s);
  } finally {
    await s.end();
  }
}

const tenantTablesOf = async (s: SqlSession) =>
  (
    await s.query<{ table_name: string }>(
      `select table_name from information_schema.columns
       where table_schema = 'public' and column_name = 'org_id' order by table_name`,
    )
  ).rows.map((r) => r.table_name);

/** One row in the tables the cross-org lookups read, through the store as the API login. */
async function fill(store: PostgresStore, t: Tenant) {
  const user = aUser();
  await store.identity.createUser(user);
  const key = anApiKey(t.orgId);
  const domain = aDomain(t.orgId, t.serviceId, t.environmentId);
  const node = aNode(t.orgId);
  // Looked up before their org is known, by functions of migrations older than 0008.
  const invite = anInvite(t.orgId, { tokenHash: `hash-of-${t.orgId}` });
  const pushHookId = `ph_${t.orgId}`;
  const live = aRelease(t.orgId, t.serviceId, t.environmentId, {
    nodeId: node.id,
    status: 'completed',
    upstream: '10.0.0.5:8080',
  });
  await store.withOrg(t.orgId, async (r) => {
    await r.memberships.insert({ orgId: t.orgId, userId: user.id, role: 'owner', createdAt: at() });
    await r.apiKeys.insert(key);
    await r.nodes.insert(node);
    await r.releases.insert(live);
    await r.releaseSteps.upsert(aStep(t.orgId, live.id));
    // Queued with no step recorded: what the release sweep looks for across orgs.
    await r.releases.insert(aRelease(t.orgId, t.serviceId, t.environmentId));
    await r.domains.insert(domain);
    await r.invites.insert(invite);
    await r.pushHooks.save({
      id: pushHookId,
      orgId: t.orgId,
      serviceId: t.serviceId,
      sealedSecret: 'sealed',
      createdAt: at(),
    });
  });
  return { user, key, domain, invite, pushHookId };
}

describe('a database whose owner is not a superuser (Compose, RDS)', () => {
  let db: OwnedDb;
  let store: PostgresStore;
  let a: Tenant;
  let b: Tenant;
  let filled: Awaited<ReturnType<typeof fill>>;
  let tenantTables: string[];

  beforeAll(async () => {
    db = await createOwnedTestDatabase('owner_rls');
    await migrate(db.ownerUrl);
    await withLoginRolesLock(() => provisionLoginRoles(db.ownerUrl, passwords));
    store = PostgresStore.fromUrl(loginUrl(db.ownerUrl, 'api', passwords.api));
    a = await seedTenant(store);
    b = await seedTenant(store);
    filled = await fill(store, a);
    await fill(store, b);
    tenantTables = await withSession(db.url, tenantTablesOf);
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it('shows the owner no tenant rows unless an org is set', async () => {
    await withSession(db.ownerUrl, async (owner) => {
      for (const t of [...tenantTables, 'orgs']) {
        expect((await owner.query(`select * from ${t}`)).rows, t).toEqual([]);
      }
      await owner.query('begin');
      await owner.query(`select set_config('app.org_id', $1, true)`, [a.orgId]);
      const seen = await owner.query<{ org_id: string }>('select org_id from projects');
      expect(new Set(seen.rows.map((r) => r.org_id))).toEqual(new Set([a.orgId]));
      await owner.query('rollback');
      // The owner can open every org by hand as the migrator does (it could as well drop the
      // policies); the switch is for the roles the policy names, and the API login is none.
      await owner.query('begin');
      await owner.query(`select set_config('selfdevop.migrating', 'on', true)`);
      expect((await owner.query('select 1 from projects')).rowCount).toBe(2);
      await owner.query('rollback');
    });
    await withSession(loginUrl(db.ownerUrl, 'api', passwords.api), async (api) => {
      await api.query('begin');
      await api.query(`select set_config('selfdevop.migrating', 'on', true)`);
      expect((await api.query('select 1 from projects')).rows).toEqual([]);
      await api.query('rollback');
    });
    // Everything is there for the superuser.
    await withSession(db.url, async (admin) => {
      expect((await admin.query('select 1 from projects')).rowCount).toBe(2);
    });
  });

  it('lets a migration read and rewrite every org’s rows, and closes again after it', async () => {
    const dir = migrationsFolder({
      extra: {
        '9001_reads_tenants.sql': `
          create table seen as
            select (select count(*) from projects) as projects,
                   (select count(distinct org_id) from releases) as orgs;
          update services set name = name || '-renamed';
          grant select on seen to public;`,
      },
    });
    expect((await migrate(db.ownerUrl, { dir })).map((m) => m.version)).toEqual([9001]);
    await withSession(db.ownerUrl, async (owner) => {
      expect((await owner.query('select projects::int, orgs::int from seen')).rows).toEqual([
        { projects: 2, orgs: 2 },
      ]);
      expect((await owner.query('select * from services')).rows).toEqual([]);
    });
    await withSession(db.url, async (admin) => {
      const names = await admin.query<{ name: string }>('select name from services');
      expect(names.rows).toHaveLength(2);
      expect(names.rows.every((s) => s.name.endsWith('-renamed'))).toBe(true);
    });
  });

  it('keeps every cross-org lookup working through the definer', async () => {
    const byEmail = await store.identity.findUserByEmail(filled.user.email.toUpperCase());
    expect(byEmail).toEqual({ ...filled.user, email: filled.user.email.toLowerCase() });
    expect(await store.identity.findUserById(filled.user.id)).toEqual({
      id: filled.user.id,
      email: filled.user.email.toLowerCase(),
      createdAt: filled.user.createdAt,
    });
    expect(await store.identity.countUsers()).toBe(2);
    expect((await store.identity.membershipsOf(filled.user.id)).map((m) => m.orgId)).toEqual([
      a.orgId,
    ]);
    expect((await store.identity.findApiKeyByHash(filled.key.keyHash))?.id).toBe(filled.key.id);
    expect((await store.inviteLookup.findInviteByTokenHash(`hash-of-${a.orgId}`))?.id).toBe(
      filled.invite.id,
    );
    expect((await store.pushHookLookup.findPushHook(filled.pushHookId))?.orgId).toBe(a.orgId);
    expect(await store.domainLookup.findDomainByHostname(filled.domain.hostname)).toEqual({
      id: filled.domain.id,
      orgId: a.orgId,
      status: filled.domain.status,
    });
    const toCheck = await store.domainLookup.domainsToCheck(
      { active: '2999-01-01T00:00:00.000Z', other: '2999-01-01T00:00:00.000Z' },
      10,
    );
    expect(new Set(toCheck.map((d) => d.orgId))).toEqual(new Set([a.orgId, b.orgId]));
    const pool = fromDatabaseUrl(loginUrl(db.ownerUrl, 'api', passwords.api), { max: 1 });
    try {
      const routes = await new PostgresRouteCatalog(pool).liveRoutes();
      expect(new Set(routes.map((r) => r.serviceId))).toEqual(new Set([a.serviceId, b.serviceId]));
      const jobless = await store.releaseLookup.joblessReleases('2999-01-01T00:00:00.000Z', 10);
      expect(new Set(jobless.map((r) => r.orgId))).toEqual(new Set([a.orgId, b.orgId]));
    } finally {
      await pool.close();
    }
  });

  it('connects the API as a login that is no superuser, owns nothing and cannot read users', async () => {
    await withSession(loginUrl(db.ownerUrl, 'api', passwords.api), async (api) => {
      const me = await api.query<{ rolsuper: boolean; rolbypassrls: boolean; owned: string }>(
        `select rolsuper, rolbypassrls,
                (select count(*) from pg_class c where c.relowner = r.oid)::text as owned
         from pg_roles r where rolname = current_user`,
      );
      expect(me.rows).toEqual([{ rolsuper: false, rolbypassrls: false, owned: '0' }]);
      expect(await pgCodeOf(api.query('select * from users'))).toBe('42501');
      expect((await api.query('select * from projects')).rows).toEqual([]);
    });
  });

  it('runs pg-boss as its own login, which owns its schema', async () => {
    const queueUrl = loginUrl(db.ownerUrl, 'queue', passwords.queue);
    // A restored dump carries no database-level grant; the migrate job's provisioning,
    // which precedes every start, gives pg-boss's CREATE SCHEMA IF NOT EXISTS its right back.
    await withSession(db.url, (admin) =>
      admin.query(`revoke create on database ${db.name} from selfdevop_queue`),
    );
    await withLoginRolesLock(() => provisionLoginRoles(db.ownerUrl, passwords));
    const system = await fromPgBoss({ db: toPgBossDb(queueUrl, { max: 2 }) });
    try {
      expect(await system.queue.send('owner-rls-check', { n: 1 })).toEqual(expect.any(String));
    } finally {
      await system.stop({ graceful: false });
    }
    await withSession(db.url, async (admin) => {
      const owners = await admin.query<{ owner: string }>(
        `select distinct pg_get_userbyid(c.relowner) as owner from pg_class c
         where c.relnamespace = 'pgboss'::regnamespace and c.relkind in ('r', 'p')`,
      );
      expect(owners.rows).toEqual([{ owner: 'selfdevop_queue' }]);
    });
  });
});

describe('an install that applied 0009 and 0010 before 0008 existed', () => {
  let db: OwnedDb;
  beforeAll(async () => {
    db = await createOwnedTestDatabase('late_0008');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gets 0008 applied, its lookups and pg-boss handed to their roles, and keeps its queue', async () => {
    const without = migrationsFolder({ without: [8] });
    const before = await migrate(db.ownerUrl, { dir: without });
    expect(before.map((m) => m.version)).toEqual(
      loadMigrations()
        .map((m) => m.version)
        .filter((v) => v !== 8),
    );
    // pg-boss as it ran before 0008: as the owner, whose schema it made.
    const old = await fromPgBoss({ db: toPgBossDb(db.ownerUrl, { max: 2 }) });
    const sent = await old.queue.send('late-0008-check', { kept: true });
    await old.stop({ graceful: false });

    await withSession(db.ownerUrl, async (owner) => {
      await expect(checkMigrations(owner)).resolves.toEqual({
        pending: [{ version: 8, name: 'database_roles' }],
      });
    });
    const applied = await migrate(db.ownerUrl);
    expect(applied.map((m) => m.version)).toEqual([8]);
    expect(await migrate(db.ownerUrl)).toEqual([]);
    await withLoginRolesLock(() => provisionLoginRoles(db.ownerUrl, passwords));
    // An API that runs migrate() at start on an up-to-date database must not need the
    // right to create tables, which its login has not.
    expect(await migrate(loginUrl(db.ownerUrl, 'api', passwords.api))).toEqual([]);

    await withSession(db.url, async (admin) => {
      const fns = await admin.query<{ proname: string; owner: string }>(
        `select proname, pg_get_userbyid(proowner) as owner from pg_proc
         where proname like 'selfdevop\\_%' and prosecdef order by proname`,
      );
      expect(fns.rows.length).toBeGreaterThan(7);
      // 0009's function existed before 0008 ran; it was handed over too.
      expect(fns.rows).toContainEqual({
        proname: 'selfdevop_jobless_releases',
        owner: 'selfdevop_definer',
      });
      expect(new Set(fns.rows.map((f) => f.owner))).toEqual(new Set(['selfdevop_definer']));
      const pgboss = await admin.query<{ owner: string }>(
        `select distinct pg_get_userbyid(owner) as owner from (
           select nspowner as owner from pg_namespace where nspname = 'pgboss'
           union all select relowner from pg_class where relnamespace = 'pgboss'::regnamespace
           union all select proowner from pg_proc where pronamespace = 'pgboss'::regnamespace
           union all select typowner from pg_type where typnamespace = 'pgboss'::regnamespace
         ) o`,
      );
      expect(pgboss.rows).toEqual([{ owner: 'selfdevop_queue' }]);
      // The owner keeps no membership of the queue's role once the hand-over is done.
      const member = await admin.query(
        `select 1 from pg_auth_members where roleid = 'selfdevop_queue'::regrole and member = $1::regrole`,
        [db.owner],
      );
      expect(member.rows).toEqual([]);
    });

    // The queue's login picks up the message sent before the upgrade, and makes new queues.
    const boss = await fromPgBoss({
      db: toPgBossDb(loginUrl(db.ownerUrl, 'queue', passwords.queue)),
    });
    try {
      const got: unknown[] = [];
      const stop = await boss.queue.consume('late-0008-check', async (m) => {
        got.push(m);
      });
      for (let i = 0; i < 100 && got.length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      await stop();
      expect(got).toHaveLength(1);
      expect(JSON.stringify(got[0])).toContain('"kept":true');
      expect(sent).toEqual(expect.any(String));
      expect(await boss.queue.send('made-after-0008', {})).toEqual(expect.any(String));
    } finally {
      await boss.stop({ graceful: false });
    }
  });
});
