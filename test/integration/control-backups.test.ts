/**
 * The control plane's own database, backed up and proven for real: the worker (pg-boss)
 * runs pg_dump of the test's PostgreSQL database in one snapshot with its row counts,
 * streams it through gzip and AES-256-GCM into the local object store (and s3rver), writes
 * the manifest last, then drills it into a scratch database on the same server and compares
 * every table. A flipped byte fails the drill; an unreachable object store fails the backup
 * with its reason and the event; a backup restores into a new database, also one made by
 * "another install" given that install's vault key. Operators only.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../adapters/objects/s3.ts';
import { AesFileKeyVault } from '../../adapters/vault/aes-file.ts';
import type { ControlBackupDeps, ControlBackupEvent } from '../../core/control-backups/deps.ts';
import type { ControlBackupView } from '../../core/control-backups/use-cases.ts';
import { runControlBackup, runControlDrill } from '../../core/control-backups/work.ts';
import { startSelfhostApi } from '../support/api.ts';
import { adminUrl, createTestDatabase } from '../support/db.ts';
import type { Requester } from '../support/http.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe('control-plane backups on the real PostgreSQL', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let operator: string;
  let tenant: string;
  let tenantKey: string;
  let s3: LocalS3;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  const restored: string[] = [];
  const as = (token: string) => ({ token });

  beforeAll(async () => {
    s3 = await startS3rver(['control']);
    db = await createTestDatabase('cpbackup');
    // The machine's superuser: pg_dump reads past forced row-level security, as in Compose.
    api = await startSelfhostApi({
      workers: true,
      databaseUrl: db.url,
      controlBackupDatabaseUrl: db.url,
    });
    req = api.request;
    const first = await req('POST', '/api/auth/local/signup', {
      body: { email: 'ops@example.com', password: 'correct horse battery' },
    });
    expect(first.status, first.text).toBe(201);
    operator = first.body.token;
    const second = await req('POST', '/api/auth/local/signup', {
      body: { email: 'tenant@example.com', password: 'correct horse battery' },
    });
    tenant = second.body.token;
    tenantKey = (
      await req('POST', `/api/orgs/${second.body.org.id}/api-keys`, {
        ...as(tenant),
        body: { name: 'ci', role: 'owner' },
      })
    ).body.key;
  }, 300_000);

  afterAll(async () => {
    for (const name of restored)
      await admin(`drop database if exists ${name} with (force)`).catch(() => undefined);
    await api?.close();
    await db?.drop();
    await s3?.stop();
  });

  /** Polls the list until `done` says so (bounded: 240 polls, about two minutes). */
  async function waitFor(id: string, done: (b: ControlBackupView) => boolean) {
    for (let i = 0; i < 240; i++) {
      const r = await req('GET', `/api/control-backups/${id}`, as(operator));
      expect(r.status, r.text).toBe(200);
      if (done(r.body)) return r.body as ControlBackupView;
      await sleep(500);
    }
    throw new Error(`control backup ${id} did not settle`);
  }

  /** The wired deps with some ports swapped, for the failure paths. */
  const depsWith = (patch: Partial<ControlBackupDeps>, events: string[] = []) => ({
    ...api.system.api.controlBackups!,
    queue: undefined,
    onEvent: (e: ControlBackupEvent) => void events.push(e),
    ...patch,
  });

  let first: ControlBackupView;

  it('backs up on demand: pg_dump in one snapshot, encrypted to the object store, manifest last, then a drill that passes', async () => {
    const res = await req('POST', '/api/control-backups', as(operator));
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ status: 'running', trigger: 'manual' });
    expect(res.body).not.toHaveProperty('sealedDataKey');
    first = await waitFor(
      res.body.id,
      (b) => b.drillStatus === 'passed' || b.status === 'failed' || b.drillStatus === 'failed',
    );
    expect(first, JSON.stringify(first)).toMatchObject({
      status: 'completed',
      drillStatus: 'passed',
      drillError: null,
    });
    // The two people who signed up, counted in the snapshot the dump read.
    expect(first.tables!['public.users']).toBe(2);
    expect(first.tables!['public.orgs']).toBe(2);
    expect(first.serverVersion).toMatch(/^\d+/);
    expect(first.storedBytes).toBeGreaterThan(1000);
    const dir = path.join(api.objectsDir, 'objects', 'control-backups', first.id);
    const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      kind: 'control-plane',
      tool: 'pg_dump -Fc',
      sha256: first.sha256,
    });
    // Encrypted: pg_dump's custom format starts with PGDMP; the stored object must not.
    const stored = await readFile(path.join(dir, 'dump.gz.enc'));
    expect(stored.subarray(0, 5).toString()).not.toBe('PGDMP');
    const list = await req('GET', '/api/control-backups', as(operator));
    expect(list.body).toMatchObject({
      available: true,
      unavailableReason: null,
      settings: { schedule: '0 2 * * *', retention: { daily: 14, weekly: 8, monthly: 6 } },
    });
    expect(list.body.items[0].id).toBe(first.id);
  }, 180_000);

  it('fails the drill of a backup with one flipped byte, loudly', async () => {
    const file = path.join(api.objectsDir, 'objects', 'control-backups', first.id, 'dump.gz.enc');
    const original = await readFile(file);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
    await writeFile(file, flipped);
    try {
      const events: string[] = [];
      const drilled = await runControlDrill(depsWith({}, events), first.id);
      expect(drilled).toMatchObject({ drillStatus: 'failed' });
      expect(drilled!.drillError).toMatch(/corrupted: the stored dump's SHA-256/);
      expect(events).toEqual(['drill.failed']);
      const shown = await req('GET', `/api/control-backups/${first.id}`, as(operator));
      expect(shown.body).toMatchObject({ drillStatus: 'failed' });
    } finally {
      await writeFile(file, original);
    }
    // Put back, it passes again (and the newest passed drill is what retention keeps).
    const again = await req('POST', `/api/control-backups/${first.id}/drill`, as(operator));
    expect(again.status, again.text).toBe(202);
    await waitFor(first.id, (b) => b.drillStatus === 'passed');
  }, 180_000);

  it('restores a backup into a new database that holds what the manifest says', async () => {
    const database = `sdo_cpb_restored_${randomBytes(3).toString('hex')}`;
    restored.push(database);
    const res = await req('POST', '/api/control-backups/restore', {
      ...as(operator),
      body: { backupId: first.id, database },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ backupId: first.id, database, matchesManifest: true });
    expect(res.body.tables['public.users']).toBe(2);
    const again = await req('POST', '/api/control-backups/restore', {
      ...as(operator),
      body: { backupId: first.id, database },
    });
    expect(again.status, again.text).toBe(409);
    expect(again.body.error.code).toBe('database_exists');
  }, 180_000);

  it('refuses bad input with a 400 naming the field', async () => {
    const cases: [string, string, unknown, string][] = [
      ['PATCH', '/api/control-backups/settings', { schedule: '* * * * *' }, 'schedule'],
      ['PATCH', '/api/control-backups/settings', { schedule: 'nightly please' }, 'schedule'],
      ['PATCH', '/api/control-backups/settings', { retention: { daily: -1 } }, 'retention'],
      ['PATCH', '/api/control-backups/settings', { retention: { yearly: 2 } }, 'retention'],
      [
        'PATCH',
        '/api/control-backups/settings',
        { retention: { daily: 0, weekly: 0, monthly: 0 } },
        'retention',
      ],
      [
        'POST',
        '/api/control-backups/restore',
        { backupId: first.id, database: 'Bad-Name' },
        'database',
      ],
      ['POST', '/api/control-backups/restore', { database: 'sdo_x' }, 'backupId'],
      [
        'POST',
        '/api/control-backups/restore',
        { manifestKey: 'backups/o/d/b/manifest.json', database: 'sdo_x' },
        'manifestKey',
      ],
      [
        'POST',
        '/api/control-backups/restore',
        { backupId: first.id, database: 'sdo_x', vaultKey: 'short' },
        'vaultKey',
      ],
    ];
    for (const [method, url, body, field] of cases) {
      const r = await req(method, url, { ...as(operator), body });
      expect(r.status, `${JSON.stringify(body)} → ${r.text}`).toBe(400);
      expect(JSON.stringify(r.body.error), JSON.stringify(body)).toContain(field);
    }
    const unknown = await req('POST', '/api/control-backups/cbk_nope/drill', as(operator));
    expect(unknown.status).toBe(404);
  });

  it('changes the schedule and retention, and keeps them', async () => {
    const r = await req('PATCH', '/api/control-backups/settings', {
      ...as(operator),
      body: { schedule: '30 4 * * *', retention: { daily: 7 } },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({
      schedule: '30 4 * * *',
      retention: { daily: 7, weekly: 8, monthly: 6 },
    });
    const list = await req('GET', '/api/control-backups', as(operator));
    expect(list.body.settings).toMatchObject({ schedule: '30 4 * * *', retention: { daily: 7 } });
  });

  it('is for operators only: a tenant and an API key get 403', async () => {
    for (const token of [tenant, tenantKey]) {
      for (const [method, url] of [
        ['GET', '/api/control-backups'],
        ['POST', '/api/control-backups'],
        ['GET', `/api/control-backups/${first.id}`],
        ['POST', `/api/control-backups/${first.id}/drill`],
      ] as const) {
        const r = await req(method, url, as(token));
        expect(r.status, `${method} ${url}: ${r.text}`).toBe(403);
      }
    }
  });

  it('fails the backup with the reason and backup.failed when the object store is unreachable', async () => {
    const dead = new S3ObjectStore({
      bucket: 'control',
      client: { ...s3.clientConfig, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 },
    });
    const events: string[] = [];
    const row = await runControlBackup(depsWith({ objects: dead }, events), {
      op: 'backup',
      trigger: 'schedule',
    });
    expect(row).toMatchObject({ status: 'failed', trigger: 'schedule' });
    expect(row!.error).toMatch(/storing the backup failed: object store s3:\/\/control\//);
    expect(events).toEqual(['backup.failed']);
    const shown = await req('GET', `/api/control-backups/${row!.id}`, as(operator));
    expect(shown.body).toMatchObject({ status: 'failed', error: row!.error });
    // The dump was stopped, and its snapshot released: no pg_dump is left reading.
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try {
      for (let i = 0; i < 40; i++) {
        const r = await c.query(
          "select count(*)::int as n from pg_stat_activity where application_name = 'pg_dump'",
        );
        if (r.rows[0].n === 0) break;
        await sleep(250);
      }
      const r = await c.query(
        "select count(*)::int as n from pg_stat_activity where application_name = 'pg_dump'",
      );
      expect(r.rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  }, 120_000);

  it("restores another install's backup given that install's vault key, and refuses without it", async () => {
    const otherKey = randomBytes(32).toString('base64');
    const other = new AesFileKeyVault({ current: Buffer.from(otherKey, 'base64') });
    const made = await runControlBackup(depsWith({ vault: other }), {
      op: 'backup',
      trigger: 'schedule',
    });
    expect(made, JSON.stringify(made)).toMatchObject({ status: 'completed' });
    const manifestKey = `control-backups/${made!.id}/manifest.json`;
    const database = `sdo_cpb_foreign_${randomBytes(3).toString('hex')}`;
    restored.push(database);
    const without = await req('POST', '/api/control-backups/restore', {
      ...as(operator),
      body: { manifestKey, database },
    });
    expect(without.status, without.text).toBe(409);
    expect(without.body.error.code).toBe('backup_key_missing');
    const wrong = await req('POST', '/api/control-backups/restore', {
      ...as(operator),
      body: { manifestKey, database, vaultKey: randomBytes(32).toString('base64') },
    });
    expect(wrong.status, wrong.text).toBe(409);
    expect(wrong.body.error.code).toBe('backup_key_mismatch');
    const right = await req('POST', '/api/control-backups/restore', {
      ...as(operator),
      body: { manifestKey, database, vaultKey: otherKey },
    });
    expect(right.status, right.text).toBe(200);
    expect(right.body).toMatchObject({ backupId: made!.id, matchesManifest: true });
  }, 180_000);

  it('backs up to an S3-compatible store (s3rver) and drills from it', async () => {
    const store = new S3ObjectStore({ bucket: 'control', client: s3.clientConfig });
    const events: string[] = [];
    const deps = depsWith({ objects: store }, events);
    const row = await runControlBackup(deps, { op: 'backup', trigger: 'schedule' });
    expect(row, JSON.stringify(row)).toMatchObject({ status: 'completed' });
    expect(await store.list(`control-backups/${row!.id}/`)).toEqual([
      `control-backups/${row!.id}/dump.gz.enc`,
      `control-backups/${row!.id}/manifest.json`,
    ]);
    const drilled = await runControlDrill(deps, row!.id);
    expect(drilled, JSON.stringify(drilled)).toMatchObject({ drillStatus: 'passed' });
    expect(events).toEqual(['backup.completed', 'drill.passed']);
  }, 180_000);
});
