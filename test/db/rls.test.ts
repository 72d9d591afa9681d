import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations, migrate } from '../../adapters/db/migrator.ts';
import {
  fromDatabaseUrl,
  isPgError,
  openSession,
  type SqlSession,
} from '../../adapters/db/postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import {
  aDataService,
  aDataServiceLink,
  aJob,
  aJobRun,
  aDataServiceBackup,
  aDeployJob,
  aDomain,
  anApiKey,
  anInvite,
  anAuditEvent,
  aNode,
  aRelease,
  aSecret,
  aStep,
  aUser,
  aWebhook,
  aWebhookDelivery,
  at,
  seedTenant,
  type Tenant,
} from '../contracts/store.case.ts';
import { createTestDatabase } from '../support/db.ts';

// Row-level security checked at the database itself, below the store: a query with no
// WHERE clause, run as the application role, must see one org only.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: SqlSession;
let app: SqlSession;
let a: Tenant;
let b: Tenant;
let tenantTables: string[];
/** Gives the tenant one row in every tenant table, through the store. */
async function fillEveryTable(store: PostgresStore, t: Tenant): Promise<void> {
  const user = aUser();
  await store.identity.createUser(user);
  await store.withOrg(t.orgId, async (r) => {
    await r.memberships.insert({ orgId: t.orgId, userId: user.id, role: 'owner', createdAt: at() });
    await r.apiKeys.insert(anApiKey(t.orgId));
    await r.invites.insert(anInvite(t.orgId, { tokenHash: `hash-of-${t.orgId}` }));
    const node = aNode(t.orgId);
    await r.nodes.insert(node);
    const rel = aRelease(t.orgId, t.serviceId, t.environmentId, { nodeId: node.id });
    await r.releases.insert(rel);
    await r.releaseSteps.upsert(aStep(t.orgId, rel.id));
    await r.releaseLogs.append(rel.id, [{ at: at(), stream: 'stdout', line: 'hello' }]);
    await r.deployJobs.insert(aDeployJob(t.orgId, rel.id));
    await r.domains.insert(aDomain(t.orgId, t.serviceId, t.environmentId));
    await r.secrets.put(aSecret(t.orgId, t.serviceId, t.environmentId));
    const hook = aWebhook(t.orgId);
    await r.webhooks.insert(hook);
    await r.webhookDeliveries.append(aWebhookDelivery(t.orgId, hook.id), 10);
    const push = await r.pushHooks.save({
      id: `ph_${t.orgId}`,
      orgId: t.orgId,
      serviceId: t.serviceId,
      sealedSecret: 'sealed',
      createdAt: at(),
    });
    await r.pushHooks.claimDelivery(push.id, 'delivery-1', at());
    await r.gitPolls.record(t.serviceId, { polledAt: at(), error: null, sha: 'a'.repeat(40) });
    const channel = `nc_${t.orgId}`;
    await r.notificationChannels.insert({
      id: channel,
      orgId: t.orgId,
      kind: 'email',
      name: 'on-call',
      address: 'oncall@example.test',
      sealedUrl: null,
      target: 'oncall@example.test',
      events: ['release.failed'],
      groupWindowSeconds: 60,
      createdAt: at(),
    });
    await r.heldNotifications.hold({
      id: `nh_${t.orgId}`,
      orgId: t.orgId,
      channelId: channel,
      eventId: `ev_${t.orgId}`,
      eventType: 'release.failed',
      data: {},
      heldAt: at(),
    });
    await r.notificationDeliveries.append(
      {
        id: `nd_${t.orgId}`,
        orgId: t.orgId,
        channelId: channel,
        eventType: 'release.failed',
        events: 1,
        firstEventId: `ev_${t.orgId}`,
        attempt: 1,
        delivered: true,
        error: null,
        createdAt: at(),
      },
      10,
    );
    const data = aDataService(t.orgId, t.projectId, node.id);
    await r.dataServices.insert(data);
    await r.dataServiceLinks.insert(aDataServiceLink(t.orgId, data.id, t.serviceId));
    const job = aJob(t.orgId, t.serviceId, t.environmentId);
    await r.jobs.insert(job);
    await r.jobRuns.start(aJobRun(t.orgId, job.id));
    await r.registries.insert({
      id: `reg_${t.orgId}`,
      orgId: t.orgId,
      server: 'registry.example.test',
      username: 'ci',
      sealedPassword: 'sealed',
      createdAt: at(),
    });
    await r.alertThresholds.set({
      orgId: t.orgId,
      serviceId: t.serviceId,
      rule: 'latency_p95',
      value: 2,
      updatedAt: at(),
    });
    await r.dataServiceBackups.insert(aDataServiceBackup(t.orgId, data.id));
    await r.audit.append(anAuditEvent(t.orgId));
  });
}

/** Runs fn in a transaction of the app session, rolled back after, with `org` set (or none). */
async function asApp<T>(org: string | null, fn: () => Promise<T>): Promise<T> {
  await app.query('begin');
  try {
    if (org !== null) await app.query(`select set_config('app.org_id', $1, true)`, [org]);
    return await fn();
  } finally {
    await app.query('rollback');
  }
}

async function pgCodeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (isPgError(e) ? e.code : String(e)),
  );
}

beforeAll(async () => {
  db = await createTestDatabase('rls');
  await migrate(db.url);
  const store = PostgresStore.fromUrl(db.url);
  try {
    a = await seedTenant(store);
    b = await seedTenant(store);
    await fillEveryTable(store, a);
    await fillEveryTable(store, b);
  } finally {
    await store.close();
  }
  owner = await openSession(db.url);
  app = await openSession(db.url);
  await app.query('set role selfdevop_app');
  const r = await owner.query<{ table_name: string }>(
    `select table_name from information_schema.columns
     where table_schema = 'public' and column_name = 'org_id' order by table_name`,
  );
  tenantTables = r.rows.map((x) => x.table_name);
});

afterAll(async () => {
  await app?.end();
  await owner?.end();
  await db?.drop();
});

describe('row-level security', () => {
  it('covers every table the control plane has', () => {
    expect(tenantTables).toEqual(
      [
        'api_keys',
        'audit_events',
        'data_service_backups',
        'data_service_links',
        'data_services',
        'deploy_jobs',
        'domains',
        'environments',
        'invites',
        'job_runs',
        'jobs',
        'memberships',
        'nodes',
        'projects',
        'registries',
        'release_logs',
        'release_steps',
        'releases',
        'secrets',
        'services',
        'webhooks',
        'webhook_deliveries',
        'push_hooks',
        'push_deliveries',
        'git_polls',
        'notification_channels',
        'notification_held',
        'notification_deliveries',
        'alert_thresholds',
      ].sort(),
    );
  });

  it('shows the app role only the rows of the org set, with no WHERE clause', async () => {
    await asApp(a.orgId, async () => {
      for (const t of tenantTables) {
        const rows = (await app.query<{ org_id: string }>(`select org_id from ${t}`)).rows;
        expect(rows.length, `rows of ${t}`).toBeGreaterThan(0);
        expect(new Set(rows.map((x) => x.org_id)), `orgs seen in ${t}`).toEqual(new Set([a.orgId]));
      }
      expect((await app.query('select id from orgs')).rows).toEqual([{ id: a.orgId }]);
    });
    // The owner here is a superuser, which RLS never confines (forced or not): both orgs
    // are there. A non-superuser owner sees none (test/db/owner-rls.test.ts).
    for (const t of tenantTables) {
      const orgs = await owner.query<{ n: string }>(`select count(distinct org_id) as n from ${t}`);
      expect(Number(orgs.rows[0]?.n), `orgs in ${t}`).toBe(2);
    }
  });

  it('shows nothing when no org is set, in or out of a transaction', async () => {
    await asApp(null, async () => {
      for (const t of [...tenantTables, 'orgs']) {
        expect((await app.query(`select * from ${t}`)).rows, t).toEqual([]);
      }
    });
    expect((await app.query('select * from projects')).rows).toEqual([]);
    // After a transaction that set one, the setting is gone again.
    await asApp(a.orgId, async () => undefined);
    expect((await app.query('select * from releases')).rows).toEqual([]);
  });

  it('refuses to write a row of org B while org A is set', async () => {
    await asApp(a.orgId, async () => {
      const insert = app.query(
        `insert into projects (id, org_id, name, created_at) values ('prj_x', $1, 'x', now())`,
        [b.orgId],
      );
      expect(await pgCodeOf(insert)).toBe('42501');
    });
    // Moving an own row to another org is refused by the same check, in every table.
    for (const t of tenantTables) {
      await asApp(a.orgId, async () => {
        expect(await pgCodeOf(app.query(`update ${t} set org_id = $1`, [b.orgId])), t).toBe(
          '42501',
        );
      });
    }
    await asApp(a.orgId, async () => {
      expect(await pgCodeOf(app.query(`update orgs set id = $1`, [b.orgId]))).toBe('42501');
    });
  });

  it("cannot update or delete org B's rows while org A is set", async () => {
    await asApp(a.orgId, async () => {
      expect(
        (await app.query(`update projects set name = 'hacked' where org_id = $1`, [b.orgId]))
          .rowCount,
      ).toBe(0);
      expect((await app.query(`delete from releases where org_id = $1`, [b.orgId])).rowCount).toBe(
        0,
      );
    });
    expect((await owner.query(`select 1 from projects where name = 'hacked'`)).rowCount).toBe(0);
  });

  it('forces RLS with an org_id policy on every table with an org_id column, in any schema', async () => {
    // Read from pg_catalog, so a table added later (by any migration, in any schema) that
    // carries org_id without forced RLS and the org policy fails here.
    const r = await owner.query<{
      relname: string;
      relrowsecurity: boolean;
      relforcerowsecurity: boolean;
      policies: { name: string; roles: string[]; cmd: string; using: string; check: string }[];
    }>(
      `select n.nspname || '.' || c.relname as relname, c.relrowsecurity, c.relforcerowsecurity,
              coalesce(json_agg(json_build_object(
                'name', p.polname,
                'roles', (select coalesce(array_agg(r.rolname order by r.rolname), '{public}')
                          from pg_roles r where r.oid = any(p.polroles)),
                'cmd', p.polcmd,
                'using', pg_get_expr(p.polqual, p.polrelid),
                'check', pg_get_expr(p.polwithcheck, p.polrelid)) order by p.polname)
                filter (where p.oid is not null), '[]') as policies
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace
       left join pg_policy p on p.polrelid = c.oid
       where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
         and ((n.nspname = 'public' and c.relname = 'orgs') or exists (
           select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
       group by n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity
       order by 1`,
    );
    expect(r.rows.map((x) => x.relname)).toEqual(
      [...tenantTables, 'orgs'].sort().map((t) => `public.${t}`),
    );
    const migrating = `(current_setting('selfdevop.migrating'::text, true) = 'on'::text)`;
    for (const row of r.rows) {
      expect(row.relrowsecurity, `${row.relname} has RLS enabled`).toBe(true);
      expect(row.relforcerowsecurity, `${row.relname} forces RLS (its owner too)`).toBe(true);
      const column = row.relname === 'public.orgs' ? 'id' : 'org_id';
      const byName = new Map(row.policies.map((p) => [p.name, p]));
      expect(byName.get('org_isolation'), `${row.relname} has the org policy`).toEqual({
        name: 'org_isolation',
        roles: ['public'],
        cmd: '*',
        using: `(${column} = current_setting('app.org_id'::text, true))`,
        check: `(${column} = current_setting('app.org_id'::text, true))`,
      });
      // Only the migrating role, and only while the migrator says so (migrations/0008).
      expect(byName.get('migrations'), `${row.relname} lets migrations see every org`).toEqual({
        name: 'migrations',
        roles: ['selfdevop_migrator'],
        cmd: '*',
        using: migrating,
        check: migrating,
      });
      // Any other policy widens what someone sees: reads only, and never for the roles the
      // running control plane logs in as or holds. The definer's have one exact form.
      for (const p of row.policies.filter(
        (x) => !['org_isolation', 'migrations'].includes(x.name),
      )) {
        expect(p.cmd, `${row.relname}: policy ${p.name} is for reads`).toBe('r');
        expect(
          p.roles.filter((x) =>
            ['public', 'selfdevop_app', 'selfdevop_api', 'selfdevop_queue'].includes(x),
          ),
          `${row.relname}: policy ${p.name} is not the app's`,
        ).toEqual([]);
        if (p.roles.includes('selfdevop_definer'))
          expect(p, `${row.relname}: policy ${p.name}`).toEqual({
            name: 'cross_org_lookups',
            roles: ['selfdevop_definer'],
            cmd: 'r',
            using: `(CURRENT_USER = 'selfdevop_definer'::name)`,
            check: null,
          });
      }
    }
  });

  it('runs the app as a role that cannot bypass RLS and owns nothing', async () => {
    const role = await owner.query<{
      rolbypassrls: boolean;
      rolsuper: boolean;
      rolcanlogin: boolean;
    }>(`select rolbypassrls, rolsuper, rolcanlogin from pg_roles where rolname = 'selfdevop_app'`);
    expect(role.rows).toEqual([{ rolbypassrls: false, rolsuper: false, rolcanlogin: false }]);
    const owned = await owner.query(
      `select c.relname from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = 'selfdevop_app'`,
    );
    expect(owned.rows).toEqual([]);
  });

  it('gives the app role no access to users and their password hashes', async () => {
    expect(await pgCodeOf(app.query('select * from users'))).toBe('42501');
    expect(await pgCodeOf(app.query('select count(*) from users'))).toBe('42501');
    expect(await pgCodeOf(app.query('select email from users'))).toBe('42501');
    expect(
      await pgCodeOf(
        app.query(
          `insert into users (id, email, password_hash, created_at) values ('usr_x', 'x@example.com', 'h', now())`,
        ),
      ),
    ).toBe('42501');
    expect(await pgCodeOf(app.query(`update users set password_hash = 'h'`))).toBe('42501');
    // Log-in gets the hash of the one email it asks for, nothing else.
    const [one] = (
      await owner.query<{ email: string; password_hash: string }>(
        'select email, password_hash from users order by id limit 1',
      )
    ).rows;
    const found = await app.query('select * from selfdevop_user_by_email($1)', [
      one!.email.toUpperCase(),
    ]);
    expect(found.rows).toHaveLength(1);
    expect(found.rows[0]).toMatchObject({ email: one!.email, password_hash: one!.password_hash });
    expect((await app.query('select * from selfdevop_user_by_email($1)', ['%'])).rows).toEqual([]);
    const [byId] = (await owner.query<{ id: string }>('select id from users order by id limit 1'))
      .rows;
    const session = (await app.query('select * from selfdevop_user_by_id($1)', [byId!.id])).rows;
    expect(session.map((u) => Object.keys(u).sort())).toEqual([['created_at', 'email', 'id']]);
  });

  it("lists only the set org's members through selfdevop_org_users", async () => {
    const members = async (org: string | null) =>
      asApp(
        org,
        async () => (await app.query<{ id: string }>('select id from selfdevop_org_users()')).rows,
      );
    const ofA = await owner.query<{ user_id: string }>(
      'select user_id from memberships where org_id = $1',
      [a.orgId],
    );
    expect(await members(a.orgId)).toEqual(ofA.rows.map((m) => ({ id: m.user_id })));
    expect(await members(null)).toEqual([]);
  });

  it('lets the app reach across orgs only through the narrow SECURITY DEFINER lookups', async () => {
    const fns = await owner.query<{
      proname: string;
      prosecdef: boolean;
      proconfig: string[] | null;
      owner: string;
      acl: string[];
    }>(
      `select proname, prosecdef, proconfig, pg_get_userbyid(proowner) as owner, proacl::text[] as acl
       from pg_proc where proname like 'selfdevop\\_%' order by proname`,
    );
    expect(fns.rows.map((f) => f.proname)).toEqual([
      // A self-hosted install from before operators adopts its first one (migrations/0012_operators.sql).
      'selfdevop_adopt_first_operator',
      // What the alert rules watch: live service environments, hosts, thresholds (0023).
      'selfdevop_alert_targets',
      'selfdevop_api_key_by_hash',
      // Nodes a git release ran on, for the build-prune job; per-engine build slots, across
      // orgs, in tables no app role may touch (migrations/0033_build_nodes.sql).
      'selfdevop_build_nodes',
      'selfdevop_build_slot_free',
      'selfdevop_build_slot_take',
      'selfdevop_count_users',
      // Sign-up, log-in and the session's user: the app has no access to users (0008).
      'selfdevop_create_user',
      'selfdevop_domain_by_hostname',
      // Custom domains' sweep (migrations/0002_domain_sweep.sql).
      'selfdevop_domains_to_check',
      // The git-poll job's due services, ids only (migrations/0036_git_polls.sql).
      'selfdevop_git_polls_due',
      // Accepting an invite, by its token's hash (migrations/0011_teams.sql).
      'selfdevop_invite_by_token_hash',
      // The sweep of releases whose first step was lost (migrations/0009_release_sweep.sql).
      'selfdevop_jobless_releases',
      // The edge rebuilt from the database (migrations/0006_live_routes.sql).
      'selfdevop_live_routes',
      'selfdevop_memberships_of',
      // The node checks start from the orgs that have nodes, ids only (0027).
      'selfdevop_node_orgs',
      'selfdevop_org_users',
      // A push webhook, by the id in its URL (migrations/0018_push_hooks.sql).
      'selfdevop_push_hook',
      // Moves whose worker stopped beating, ids only, for the backup-sweep job
      // (migrations/0053_stale_moves.sql).
      'selfdevop_stale_moves',
      // Backups and drills a dead worker left running, ids only, for the backup-sweep job
      // (migrations/0037_data_rotation_sweep.sql).
      'selfdevop_stuck_backups',
      'selfdevop_user_by_email',
      'selfdevop_user_by_id',
    ]);
    for (const f of fns.rows) {
      expect(f.prosecdef, f.proname).toBe(true);
      expect(f.proconfig, f.proname).toEqual(['search_path=public, pg_temp']);
      // Owned by the NOLOGIN role whose policies let it read across orgs; one owned by the
      // tables' owner would see no org under forced RLS (or every one, as a superuser).
      // The migrator hands over those of migrations that came before 0008 (invites, push
      // hooks) too.
      expect(f.owner, f.proname).toBe('selfdevop_definer');
      expect(f.acl, f.proname).toEqual(
        expect.arrayContaining([expect.stringMatching(/^selfdevop_app=X\//)]),
      );
      expect(
        f.acl.some((entry) => entry.startsWith('=')),
        `${f.proname}: PUBLIC may execute`,
      ).toBe(false);
    }
    const hosts = await owner.query<{ hostname: string; org_id: string }>(
      'select hostname, org_id from domains where org_id = $1',
      [b.orgId],
    );
    await asApp(a.orgId, async () => {
      const found = await app.query('select org_id from selfdevop_domain_by_hostname($1)', [
        hosts.rows[0]?.hostname,
      ]);
      expect(found.rows).toEqual([{ org_id: b.orgId }]);
    });
  });

  it("finds an invite across orgs only by its token's hash, which the app cannot use itself", async () => {
    await asApp(a.orgId, async () => {
      const found = await app.query('select org_id from selfdevop_invite_by_token_hash($1)', [
        `hash-of-${b.orgId}`,
      ]);
      expect(found.rows).toEqual([{ org_id: b.orgId }]);
      expect(
        (await app.query('select org_id from selfdevop_invite_by_token_hash($1)', ['nope'])).rows,
      ).toEqual([]);
    });
    // The token policy is the owner's: the app role setting the hash itself sees nothing.
    await asApp(null, async () => {
      await app.query(`select set_config('app.invite_token_hash', $1, true)`, [
        `hash-of-${b.orgId}`,
      ]);
      expect((await app.query('select id from invites')).rows).toEqual([]);
    });
  });

  it('keeps the app from writing the migration history', async () => {
    expect(
      await pgCodeOf(
        app.query(`insert into schema_migrations (version, name, checksum) values (999, 'x', 'y')`),
      ),
    ).toBe('42501');
    expect(
      (await app.query('select version from schema_migrations order by version')).rows,
    ).toEqual(loadMigrations().map((m) => ({ version: m.version })));
  });
});

describe('the org id the store sets', () => {
  it('is quoted, so a hostile org id matches nothing and injects nothing', async () => {
    const store = PostgresStore.fromUrl(db.url);
    try {
      for (const hostile of [
        `${a.orgId}' or '1'='1`,
        `x'); drop table projects; --`,
        `${a.orgId}\\'`,
      ]) {
        const seen = await store.withOrg(hostile, (r) => r.projects.list({ limit: 200 }));
        expect(seen.items).toEqual([]);
      }
      const own = await store.withOrg(a.orgId, (r) => r.projects.list({ limit: 200 }));
      expect(own.items.length).toBeGreaterThan(0);
      expect(own.items.every((p) => p.orgId === a.orgId)).toBe(true);
    } finally {
      await store.close();
    }
  });
});

describe('a read sent alone (BEGIN, the org, the query, COMMIT in one round trip)', () => {
  const readAlone = { readsAlone: true };

  it('sees only the org set, in every tenant table, even when the reads overlap', async () => {
    const pool = fromDatabaseUrl(db.url, { max: 1 });
    try {
      for (const t of [a, b]) {
        const seen = await pool.transaction(
          (tx) =>
            Promise.all(
              tenantTables.map((name) =>
                tx.query<{ org_id: string }>(`select org_id from ${name}`),
              ),
            ),
          { ...readAlone, settings: { 'app.org_id': t.orgId } },
        );
        seen.forEach((r, i) => {
          expect(r.rows.length, `rows of ${tenantTables[i]}`).toBeGreaterThan(0);
          expect(new Set(r.rows.map((x) => x.org_id)), `orgs seen in ${tenantTables[i]}`).toEqual(
            new Set([t.orgId]),
          );
        });
      }
    } finally {
      await pool.close();
    }
  });

  it('leaves the pooled connection with no org, in no transaction', async () => {
    const pool = fromDatabaseUrl(db.url, { max: 1 });
    try {
      await pool.transaction((tx) => tx.query('select id from projects'), {
        ...readAlone,
        settings: { 'app.org_id': a.orgId },
      });
      // The one pooled connection is the one the read used.
      const after = await pool.query<{ org: string | null; projects: string | null }>(
        `select current_setting('app.org_id', true) as org, (select count(*) from projects)::text as projects`,
      );
      expect(after.rows[0]?.org ?? '').toBe('');
      expect(after.rows[0]?.projects).toBe('0');
      const failed = pool.transaction((tx) => tx.query('select 1/0'), {
        ...readAlone,
        settings: { 'app.org_id': a.orgId },
      });
      await expect(failed).rejects.toMatchObject({ code: '22012' });
      // The failed read's transaction ended with it: the next statement is not refused as aborted.
      expect((await pool.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await pool.close();
    }
  });

  it('holds reads after the first write in the transaction, and rolls them all back on a throw', async () => {
    const pool = fromDatabaseUrl(db.url, { max: 1 });
    const store = new PostgresStore(pool);
    try {
      const name = `rolled-back-${Date.now()}`;
      const boom = new Error('boom');
      const seen = await store
        .withOrg(a.orgId, async (r) => {
          const before = await r.projects.list({ limit: 200 });
          await r.projects.insert({
            id: `prj_rb${Date.now()}`,
            orgId: a.orgId,
            name,
            createdAt: at(),
          });
          const during = await r.projects.list({ limit: 200 });
          throw Object.assign(boom, { counts: [before.items.length, during.items.length] });
        })
        .catch((e: unknown) => (e as { counts: number[] }).counts);
      expect(seen[1]).toBe(seen[0]! + 1);
      const after = await store.withOrg(a.orgId, (r) => r.projects.list({ limit: 200 }));
      expect(after.items.map((p) => p.name)).not.toContain(name);
      expect(after.items).toHaveLength(seen[0]!);
    } finally {
      await pool.close();
    }
  });
});

describe('the push hook look-up (before the org is known)', () => {
  it('finds exactly the hook its id names, of either org, and nothing for another id', async () => {
    const store = PostgresStore.fromUrl(db.url);
    try {
      const found = await store.pushHookLookup.findPushHook(`ph_${b.orgId}`);
      expect(found).toMatchObject({ id: `ph_${b.orgId}`, orgId: b.orgId, serviceId: b.serviceId });
      expect(await store.pushHookLookup.findPushHook('ph_nothing')).toBeNull();
      // A replayed delivery id is refused by the key, per hook.
      expect(
        await store.withOrg(a.orgId, (r) =>
          r.pushHooks.claimDelivery(`ph_${a.orgId}`, 'delivery-1', new Date().toISOString()),
        ),
      ).toBe(false);
    } finally {
      await store.close();
    }
  });
});
