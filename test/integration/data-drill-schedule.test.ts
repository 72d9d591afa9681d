/**
 * Weekly restore drills, for real: the self-hosted API on its own PostgreSQL database (the
 * column of migration 0054, the API's validation, the audit trail) and the worker's step
 * after a completed backup (`afterBackup`) reading the drill history from the same database
 * and sending the drill through the real pg-boss queue. No container runs: the backups are
 * rows (and objects in the local store) as the worker leaves them; the drill itself is
 * test/integration/data-backups.test.ts's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFsObjectStore } from '../../adapters/objects/local-fs.ts';
import { afterBackup, newBackupRow } from '../../core/data-services/backup-work.ts';
import type { DataServiceDeps } from '../../core/data-services/deps.ts';
import { dataServiceWorkQueue } from '../../core/data-services/deps.ts';
import { dataServiceSecretContext } from '../../core/data-services/plan.ts';
import type { DataService, DataServiceBackup } from '../../core/models.ts';
import type { EventQueue } from '../../core/ports.ts';
import { startSelfhostApi } from '../support/api.ts';
import type { Requester } from '../support/http.ts';

describe('drill schedules: every_backup or weekly (real PostgreSQL)', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;
  let nodeId: string;
  const h = () => ({ token, headers: { 'x-org-id': orgId } });
  const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

  beforeAll(async () => {
    api = await startSelfhostApi();
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'drills@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    nodeId = node.body.id;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
  });

  it('takes drillSchedule on create, returns it on GET and with the backups, changes it by PUT and names the field on bad input', async () => {
    const create = (body: Record<string, unknown>) =>
      req('POST', '/api/data-services', {
        ...h(),
        body: { projectId, engine: 'mariadb', ...body },
      });
    const weekly = await create({ name: 'orders', drillSchedule: 'weekly' });
    expect(weekly.status, weekly.text).toBe(202);
    expect(weekly.body.drillSchedule).toBe('weekly');
    const plain = await create({ name: 'plain' });
    expect(plain.status, plain.text).toBe(202);
    expect(plain.body.drillSchedule).toBe('every_backup');

    const bad = await create({ name: 'bad', drillSchedule: 'monthly' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^drillSchedule: /);
    expect(bad.text).toContain('weekly');
    // Nothing was made of the refused request.
    const names = (
      await req('GET', `/api/data-services?projectId=${projectId}`, h())
    ).body.items.map((d: { name: string }) => d.name);
    expect(names.sort()).toEqual(['orders', 'plain']);

    const id = weekly.body.id as string;
    expect((await req('GET', `/api/data-services/${id}`, h())).body.drillSchedule).toBe('weekly');
    const backups = await req('GET', `/api/data-services/${id}/backups`, h());
    expect(backups.body).toMatchObject({ items: [], drillSchedule: 'weekly' });

    const put = (body: unknown, target = id) =>
      req('PUT', `/api/data-services/${target}/drill-schedule`, { ...h(), body });
    const changed = await put({ drillSchedule: 'every_backup' });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toEqual({ drillSchedule: 'every_backup' });
    expect((await req('GET', `/api/data-services/${id}`, h())).body.drillSchedule).toBe(
      'every_backup',
    );
    for (const body of [{ drillSchedule: 'week' }, {}, { drillSchedule: 'weekly', every: 7 }]) {
      const r = await put(body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.text).toMatch(/drillSchedule|every/);
    }
    expect((await put({ drillSchedule: 'weekly' }, 'dat_nothere')).status).toBe(404);
    expect((await put({ drillSchedule: 'weekly' })).status).toBe(200);
    const audit = await req(
      'GET',
      `/api/audit-events?action=drill.schedule_changed&targetId=${id}`,
      h(),
    );
    expect(audit.body.items.map((e: { data: unknown }) => e.data)).toEqual([
      { name: 'orders', from: 'weekly', to: 'every_backup' },
      { name: 'orders', from: 'every_backup', to: 'weekly' },
    ]);
  });

  describe('the worker after a completed scheduled backup', () => {
    const d = () => api.system.release;
    const sent: { queue: string; op: string; backupId: string }[] = [];
    let ds: DataService;

    /** The worker's deps, its queue the real pg-boss one, each send also noted. */
    const deps = (): DataServiceDeps => {
      const real = d().queue;
      const queue: EventQueue = {
        consume: (...a) => real.consume(...a),
        ping: () => real.ping(),
        send: async (name, payload, options) => {
          const m = payload as { op: string; backupId: string };
          sent.push({ queue: name, op: m.op, backupId: m.backupId });
          return real.send(name, payload, options);
        },
      };
      return { ...d(), queue } as DataServiceDeps;
    };

    /** A completed backup as takeBackup leaves it, started `startedAt`, its objects stored. */
    async function completed(
      startedAt: string,
      o: Partial<DataServiceBackup> = {},
    ): Promise<DataServiceBackup> {
      const row = await newBackupRow({ ...d(), backupCodec: d().backupCodec! }, ds, 'schedule');
      const done: DataServiceBackup = {
        ...row,
        status: 'completed',
        startedAt,
        finishedAt: startedAt,
        sha256: 'ab'.repeat(32),
        ...o,
      };
      await d().store.withOrg(orgId, (r) => r.dataServiceBackups.insert(done));
      const objects = new LocalFsObjectStore(api.objectsDir);
      await objects.put(done.objectKey, new Uint8Array(64));
      await objects.put(done.manifestKey, '{}');
      return done;
    }

    const setSchedule = async (drillSchedule: string) => {
      const r = await req('PUT', `/api/data-services/${ds.id}/drill-schedule`, {
        ...h(),
        body: { drillSchedule },
      });
      expect(r.status, r.text).toBe(200);
      ds = (await d().store.withOrg(orgId, (r2) => r2.dataServices.get(ds.id)))!;
    };

    const skipped = async () =>
      (
        await req('GET', `/api/audit-events?action=drill.skipped&targetId=${ds.id}&limit=50`, h())
      ).body.items.map((e: { data: { backupId: string; reason: string } }) => e.data);

    beforeAll(async () => {
      const now = new Date().toISOString();
      ds = {
        id: 'dat_weekly1',
        orgId,
        projectId,
        name: 'ledger',
        engine: 'postgres',
        version: '15',
        nodeId,
        status: 'ready',
        error: null,
        settings: {},
        sealedPassword: await d().vault.seal('pw', dataServiceSecretContext(orgId, 'dat_weekly1')),
        removeVolume: false,
        backupSchedule: '0 3 * * *',
        createdAt: now,
        updatedAt: now,
      };
      await d().store.withOrg(orgId, (r) => r.dataServices.insert(ds));
      // Read back as the worker reads it: the column's default for a row that did not say.
      ds = (await d().store.withOrg(orgId, (r) => r.dataServices.get(ds.id)))!;
      expect(ds.drillSchedule).toBe('every_backup');
    });

    it('every_backup (the default): drills each completed backup', async () => {
      await completed(ago(1), { drillStatus: 'passed', drilledAt: ago(1) });
      const b = await completed(new Date().toISOString());
      sent.length = 0;
      expect((await afterBackup(deps(), ds, b)).drill).toBe(true);
      expect(sent).toEqual([{ queue: dataServiceWorkQueue, op: 'drill', backupId: b.id }]);
      await d().store.withOrg(orgId, (r) =>
        r.dataServiceBackups.update(b.id, { drillStatus: 'passed', drilledAt: b.startedAt }),
      );
    });

    it('weekly: skips the drill when one passed within 7 days (drill.skipped with why, retention applied at once), drills when none did', async () => {
      await setSchedule('weekly');
      const objects = new LocalFsObjectStore(api.objectsDir);
      // Outside the 2 days, 1 week and 1 month kept below, never drilled: retention deletes it.
      const stale = await completed(ago(200));
      await req('PUT', `/api/data-services/${ds.id}/backup-retention`, {
        ...h(),
        body: { daily: 2, weekly: 1, monthly: 1 },
      });
      ds = (await d().store.withOrg(orgId, (r) => r.dataServices.get(ds.id)))!;

      const b = await completed(new Date(Date.now() + 1000).toISOString());
      sent.length = 0;
      const decision = await afterBackup(deps(), ds, b);
      expect(decision.drill).toBe(false);
      expect(decision.reason).toMatch(/^weekly drills: the drill of backup bak_\w+ .* passed; /);
      expect(sent).toEqual([]);
      expect(await skipped()).toEqual([
        { name: 'ledger', backupId: b.id, reason: decision.reason },
      ]);
      // Undrilled, and shown so: no drill row for it.
      const drills = await req('GET', `/api/data-services/${ds.id}/drills`, h());
      expect(drills.body.items.map((x: { backupId: string }) => x.backupId)).not.toContain(b.id);
      // Retention ran without waiting for the week's drill.
      expect(await d().store.withOrg(orgId, (r) => r.dataServiceBackups.get(stale.id))).toBeNull();
      expect(await objects.get(stale.objectKey)).toBeNull();
      expect(await d().store.withOrg(orgId, (r) => r.dataServiceBackups.get(b.id))).not.toBeNull();

      // The passed drills are now 8 days old: the next scheduled backup is drilled.
      const rows = await d().store.withOrg(orgId, (r) => r.dataServiceBackups.list(ds.id));
      await d().store.withOrg(orgId, async (r) => {
        for (const x of rows.filter((x) => x.drillStatus === 'passed'))
          await r.dataServiceBackups.update(x.id, { startedAt: ago(8), drilledAt: ago(8) });
      });
      const next = await completed(new Date(Date.now() + 2000).toISOString());
      const due = await afterBackup(deps(), ds, next);
      expect(due).toEqual({
        drill: true,
        reason: 'weekly drills: no backup started in the last 7 days has a drill that passed',
      });
      expect(sent).toEqual([{ queue: dataServiceWorkQueue, op: 'drill', backupId: next.id }]);
      expect(await skipped()).toHaveLength(1);
    });

    it('weekly: a failed drill is retried on the next backup, not a week later', async () => {
      await completed(ago(2), { drillStatus: 'passed', drilledAt: ago(2) });
      await completed(ago(1), { drillStatus: 'failed', drilledAt: ago(1), drillError: 'rows' });
      const b = await completed(new Date(Date.now() + 3000).toISOString());
      sent.length = 0;
      const decision = await afterBackup(deps(), ds, b);
      expect(decision.drill).toBe(true);
      expect(decision.reason).toMatch(/^the newest drill \(of backup bak_\w+\) failed/);
      expect(sent).toEqual([{ queue: dataServiceWorkQueue, op: 'drill', backupId: b.id }]);
    });

    it('weekly: a backup a person asked for is drilled anyway', async () => {
      await completed(ago(1), { drillStatus: 'passed', drilledAt: ago(1) });
      const b = await completed(new Date(Date.now() + 4000).toISOString(), { trigger: 'manual' });
      sent.length = 0;
      expect(await afterBackup(deps(), ds, b)).toEqual({
        drill: true,
        reason: 'a manual backup is always drilled',
      });
      expect(sent).toEqual([{ queue: dataServiceWorkQueue, op: 'drill', backupId: b.id }]);
    });
  });
});
