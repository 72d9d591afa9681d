/**
 * Backups that prove themselves, for real: MariaDB, PostgreSQL and Redis containers from the
 * offline images on the real Docker Engine, dumped next to the server, streamed through
 * gzip and AES-256-GCM into the local object store (and s3rver), then restored by a drill
 * into a container with no network and checked against the manifest. A flipped byte fails
 * its drill loudly; an unreachable object store fails the backup with its reason; restores
 * into a new service and in place bring the rows back.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ObjectStore } from '../../adapters/objects/s3.ts';
import { handleDataServiceWork } from '../../core/data-services/work.ts';
import {
  dataServiceWorkQueue,
  type DataServiceWorkMessage,
} from '../../core/data-services/deps.ts';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import { containerEnv, sleep, useDataSuite, type DataSuite } from '../support/data-services.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');

describe.skipIf(!ready)('data service backups and drills on Docker', () => {
  let s3: LocalS3;
  const s = useDataSuite(import.meta.url, {
    email: 'backups@example.com',
    before: async () => {
      s3 = await startS3rver(['backups']);
    },
  });
  let api: DataSuite['api'];
  let req: DataSuite['request'];
  let token: string;
  let orgId: string;
  const h = () => s.h();
  beforeAll(() => void ({ api, request: req, token, orgId } = s));
  afterAll(async () => {
    await s3?.stop();
  });

  const createData = (body: Record<string, unknown>) => s.create(body);
  const settle = (id: string) => s.settle(id);

  /** Polls the backups until `done` says so (bounded: 200 polls). */
  async function waitBackup(id: string, backupId: string, done: (b: BackupView) => boolean) {
    let last: BackupView | undefined;
    for (let i = 0; i < 200; i++) {
      const r = await req('GET', `/api/data-services/${id}/backups`, h());
      expect(r.status, r.text).toBe(200);
      const b = r.body.items.find((x: { id: string }) => x.id === backupId);
      if (b && done(b)) return b;
      last = b;
      await sleep(500);
    }
    throw new Error(
      `backup ${backupId} did not settle: ${last ? `${last.status}, drill ${last.drillStatus}` : 'no row'}`,
    );
  }

  /** Polls the audit trail until an event of `action` for `targetId` appears (bounded). */
  async function waitAudit(action: string, targetId: string, after = 0) {
    for (let i = 0; i < 200; i++) {
      const r = await req(
        'GET',
        `/api/audit-events?action=${action}&targetId=${targetId}&limit=200`,
        h(),
      );
      if (r.body.items?.length > after) return r.body.items;
      await sleep(500);
    }
    throw new Error(`no ${action} for ${targetId}`);
  }

  const envOf = containerEnv;

  /** A one-off client from a data image on the project network; it must exit 0. */
  async function client(image: string, network: string, env: Record<string, string>, sh: string) {
    const r = await s.client(image, network, env, sh);
    expect(r.exitCode, r.output).toBe(0);
    return r.output;
  }

  const mariadb = async (ds: { host: string; network: string }, sql: string) =>
    client(
      'selfdevop/mariadb:10.11',
      ds.network,
      { MYSQL_PWD: await envOf(ds.host, 'MARIADB_PASSWORD') },
      `mariadb -h ${ds.host} -u app app -N -B -e "${sql}"`,
    );

  /** Runs one data-service-work message in this process with other ports (the object store). */
  const work = (m: DataServiceWorkMessage, objects: S3ObjectStore) =>
    handleDataServiceWork({ ...api.system.release, objects })({ id: 'm', attempt: 1, payload: m });

  let db: Awaited<ReturnType<typeof createData>>;
  let firstBackup: BackupView;

  it('backs up MariaDB on demand: streamed, encrypted, manifest last, then a drill that passes', async () => {
    db = await createData({ name: 'orders', engine: 'mariadb' });
    expect(db.status, db.error ?? '').toBe('ready');
    await mariadb(
      db,
      "create table items (id int primary key auto_increment, label varchar(64)); create table tags (v int); insert into tags values (1), (2), (3); insert into items (label) select concat('selfdevop-marker-', seq) from seq_1_to_1000",
    );
    // Rows enough for three INSERT statements of ~1 MB (a restore into a new data service
    // shares them out between two connections), and a trigger that fires on their table:
    // restored after its rows, it adds none.
    await mariadb(
      db,
      "create table events (id int primary key, payload varchar(64)); insert into events select seq, concat(repeat('e', 40), seq) from seq_1_to_60000; create table fired (id int); create trigger events_ai after insert on events for each row insert into fired values (new.id)",
    );
    const res = await req('POST', `/api/data-services/${db.id}/backups`, h());
    expect(res.status, res.text).toBe(202);
    expect(res.body).toMatchObject({ status: 'running', trigger: 'manual' });
    expect(res.body).not.toHaveProperty('sealedDataKey');
    const b = await waitBackup(
      db.id,
      res.body.id,
      (x) => x.drillStatus === 'passed' || x.drillStatus === 'failed' || x.status === 'failed',
    );
    expect(b.error).toBeNull();
    expect(b.drillError).toBeNull();
    expect(b).toMatchObject({
      status: 'completed',
      drillStatus: 'passed',
      tables: { items: 1000, tags: 3, events: 60000, fired: 0 },
      keys: null,
    });
    expect(b.serverVersion).toMatch(/^10\.11/);
    expect(b.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.rawBytes).toBeGreaterThan(b.storedBytes);
    expect(b.drillRtoMs).toBeGreaterThan(0);
    expect(b.drillRpoMs).toBeGreaterThanOrEqual(0);
    firstBackup = b;

    // What the store holds is ciphertext: no row's text is readable in it.
    const stored = await readFile(objectPath(b.objectKey));
    expect(stored.byteLength).toBe(b.storedBytes);
    expect(stored.includes('selfdevop-marker')).toBe(false);
    const manifest = JSON.parse(await readFile(objectPath(b.manifestKey), 'utf8'));
    // Format 2: gzipped in the dump's one-off on the node; the control plane only sealed it.
    expect(manifest).toMatchObject({
      format: 2,
      backupId: b.id,
      engine: 'mariadb',
      tool: 'mariadb-dump --single-transaction | gzip -6',
      sha256: b.sha256,
      rawSha256: null,
      gzipSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      gzipBytes: b.storedBytes - 12 - 16,
      rawBytes: b.rawBytes,
      tables: { items: 1000, tags: 3 },
    });
    expect(manifest.sealedDataKey).toMatch(/\S/);

    const drills = await req('GET', `/api/data-services/${db.id}/drills`, h());
    expect(drills.body.items[0]).toMatchObject({ backupId: b.id, status: 'passed', error: null });
    const passed = await waitAudit('drill.passed', db.id);
    // Where the RTO went: each step the drill reached, from the worker and the container.
    const phases = passed.at(-1).data.phases;
    for (const step of ['manifestMs', 'verifyMs', 'startMs', 'readyMs', 'restoreMs', 'countMs'])
      expect(phases[step], step).toBeGreaterThanOrEqual(0);
    expect(phases.readyMs).toBeGreaterThan(0);
    await waitAudit('backup.completed', db.id);
  }, 300_000);

  const objectPath = (key: string) => path.join(api.objectsDir, 'objects', ...key.split('/'));

  it('downloads the dump decrypted, and refuses one that does not match its checksum', async () => {
    const res = await fetch(
      `${api.url}/api/data-services/${db.id}/backups/${firstBackup.id}/download`,
      {
        headers: { authorization: `Bearer ${token}`, 'x-org-id': orgId },
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain(`orders-${firstBackup.id}.sql`);
    const text = await res.text();
    // The size the one-off counted beside gzip is the dump's own.
    expect(Buffer.byteLength(text)).toBe(firstBackup.rawBytes);
    expect(text).toContain('CREATE TABLE `items`');
    expect(text).toContain('selfdevop-marker-1000');
  });

  it('fails the drill of a backup with one flipped byte, loudly (drill.failed with the reason)', async () => {
    const file = objectPath(firstBackup.objectKey);
    const good = await readFile(file);
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x01;
    await writeFile(file, bad);
    try {
      const before = (
        await req('GET', `/api/audit-events?action=drill.failed&targetId=${db.id}`, h())
      ).body.items.length;
      await handleDataServiceWork(api.system.release)({
        id: 'flip',
        attempt: 1,
        payload: { orgId, dataServiceId: db.id, op: 'drill', backupId: firstBackup.id },
      });
      const b = await waitBackup(db.id, firstBackup.id, (x) => x.drillStatus === 'failed');
      expect(b.drillError).toMatch(/is corrupted: the stored dump's SHA-256/);
      const events = await waitAudit('drill.failed', db.id, before);
      expect(events.at(-1).data).toMatchObject({ backupId: firstBackup.id, reason: b.drillError });
      const dl = await req(
        'GET',
        `/api/data-services/${db.id}/backups/${firstBackup.id}/download`,
        h(),
      );
      expect(dl.status).toBe(409);
      expect(dl.text).toContain('backup_corrupted');
    } finally {
      await writeFile(file, good);
    }
    // Put back, it drills clean again.
    await handleDataServiceWork(api.system.release)({
      id: 'unflip',
      attempt: 1,
      payload: { orgId, dataServiceId: db.id, op: 'drill', backupId: firstBackup.id },
    });
    const again = await waitBackup(db.id, firstBackup.id, (x) => x.drillStatus !== 'running');
    expect(again.drillStatus, again.drillError).toBe('passed');
  }, 300_000);

  it('restores into a new data service with every row', async () => {
    const res = await req('POST', `/api/data-services/${db.id}/restore`, {
      ...h(),
      body: { backupId: firstBackup.id, target: 'new', name: 'orders-copy' },
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body.dataService).toMatchObject({
      name: 'orders-copy',
      status: 'provisioning',
      engine: 'mariadb',
    });
    const copyId = res.body.dataService.id;
    await waitAudit('data_service.restored', copyId);
    const copy = await settle(copyId);
    expect(copy.status).toBe('ready');
    expect(copy.error).toBeNull();
    expect(await mariadb(copy, 'select count(*), max(label) from items')).toBe(
      '1000\tselfdevop-marker-999',
    );
    // Its rows over two connections, each once; the trigger back, created after them.
    expect(
      await mariadb(copy, 'select count(*), count(distinct id), sum(id), max(payload) from events'),
    ).toBe(`60000\t60000\t1800030000\t${'e'.repeat(40)}9999`);
    expect(await mariadb(copy, 'select count(*) from fired')).toBe('0');
    await mariadb(copy, "insert into events values (60001, 'after')");
    expect(await mariadb(copy, 'select id from fired')).toBe('60001');
  }, 300_000);

  it('restores in place after the name is typed, backing up the current state first', async () => {
    const refused = await req('POST', `/api/data-services/${db.id}/restore`, {
      ...h(),
      body: { backupId: firstBackup.id, target: 'in_place' },
    });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('confirm');
    await mariadb(db, 'delete from items where id > 10');
    expect(await mariadb(db, 'select count(*) from items')).toBe('10');
    const res = await req('POST', `/api/data-services/${db.id}/restore`, {
      ...h(),
      body: { backupId: firstBackup.id, target: 'in_place', confirm: 'orders' },
    });
    expect(res.status, res.text).toBe(202);
    await waitAudit('data_service.restored', db.id);
    expect(await mariadb(db, 'select count(*) from items')).toBe('1000');
    const list = await req('GET', `/api/data-services/${db.id}/backups`, h());
    const safety = list.body.items.find((b: BackupView) => b.trigger === 'pre_restore');
    expect(safety).toMatchObject({ status: 'completed', tables: { items: 10, tags: 3 } });
  }, 300_000);

  it('refuses bad input with clear 4xx answers', async () => {
    const every = await req('PUT', `/api/data-services/${db.id}/backup-schedule`, {
      ...h(),
      body: { cron: '* * * * *' },
    });
    expect(every.status).toBe(400);
    expect(every.text).toContain('more than once an hour');
    const nightly = await req('PUT', `/api/data-services/${db.id}/backup-schedule`, {
      ...h(),
      body: { cron: '30 2 * * *' },
    });
    expect(nightly.status, nightly.text).toBe(200);
    expect((await req('GET', `/api/data-services/${db.id}/backups`, h())).body.backupSchedule).toBe(
      '30 2 * * *',
    );
    const unknown = await req('POST', `/api/data-services/${db.id}/restore`, {
      ...h(),
      body: { backupId: 'bak_nope', target: 'new' },
    });
    expect(unknown.status).toBe(404);
  });

  it('records backup.failed with the reason when the object store is unreachable', async () => {
    const dead = new S3ObjectStore({
      bucket: 'backups',
      client: { ...s3.clientConfig, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 },
    });
    const before = (
      await req('GET', `/api/audit-events?action=backup.failed&targetId=${db.id}`, h())
    ).body.items.length;
    await work({ orgId, dataServiceId: db.id, op: 'backup', trigger: 'schedule' }, dead);
    const events = await waitAudit('backup.failed', db.id, before);
    expect(events.at(-1).data.reason).toMatch(
      /storing the backup failed: object store s3:\/\/backups\//,
    );
    const list = await req('GET', `/api/data-services/${db.id}/backups`, h());
    const failed = list.body.items.find((b: BackupView) => b.id === events.at(-1).data.backupId);
    expect(failed).toMatchObject({ status: 'failed', trigger: 'schedule' });
    expect(failed.error).toContain('object store');
  }, 120_000);

  it('backs up to an S3-compatible store (s3rver) and drills from it', async () => {
    const store = new S3ObjectStore({ bucket: 'backups', client: s3.clientConfig });
    await work({ orgId, dataServiceId: db.id, op: 'backup', trigger: 'schedule' }, store);
    const list = await req('GET', `/api/data-services/${db.id}/backups`, h());
    const b = list.body.items[0];
    expect(b, JSON.stringify(b)).toMatchObject({ status: 'completed', tables: { items: 1000 } });
    expect(await store.list(`backups/${orgId}/${db.id}/${b.id}/`)).toEqual([
      b.objectKey,
      b.manifestKey,
    ]);
    await work({ orgId, dataServiceId: db.id, op: 'drill', backupId: b.id }, store);
    const drilled = await waitBackup(
      db.id,
      b.id,
      (x) => x.drillStatus !== 'running' && x.drillStatus !== null,
    );
    expect(drilled.drillStatus, drilled.drillError).toBe('passed');
    await store.destroy();
  }, 300_000);

  let pg: Awaited<ReturnType<typeof createData>>;
  const psql = async (sql: string) =>
    client(
      'selfdevop/postgres:15',
      pg.network,
      { PGPASSWORD: await envOf(pg.host, 'POSTGRES_PASSWORD') },
      `psql -h ${pg.host} -U app -d app -v ON_ERROR_STOP=1 -At -c "${sql}"`,
    );

  it('backs up PostgreSQL with pg_dump -Fc and drills it', async () => {
    pg = await createData({ name: 'ledger', engine: 'postgres' });
    expect(pg.status, pg.error ?? '').toBe('ready');
    await client(
      'selfdevop/postgres:15',
      pg.network,
      { PGPASSWORD: await envOf(pg.host, 'POSTGRES_PASSWORD') },
      `psql -h ${pg.host} -U app -d app -v ON_ERROR_STOP=1 -c "create table entries (id serial primary key, amount int); insert into entries (amount) select g from generate_series(1, 500) g"`,
    );
    const res = await req('POST', `/api/data-services/${pg.id}/backups`, h());
    expect(res.status, res.text).toBe(202);
    const b = await waitBackup(
      pg.id,
      res.body.id,
      (x) => x.status === 'failed' || (x.drillStatus !== null && x.drillStatus !== 'running'),
    );
    expect(b.error).toBeNull();
    expect(b.drillStatus, b.drillError).toBe('passed');
    expect(b.tables).toEqual({ 'public.entries': 500 });
    expect(b.serverVersion).toMatch(/^15/);
  }, 300_000);

  let cache: Awaited<ReturnType<typeof createData>>;
  const redisCli = async (args: string) =>
    client(
      'selfdevop/redis:7',
      cache.network,
      { REDISCLI_AUTH: await envOf(cache.host, 'REDIS_PASSWORD') },
      `redis-cli -h ${cache.host} ${args}`,
    );

  it('backs up Redis with BGSAVE and its RDB file, and the drill counts the keys', async () => {
    cache = await createData({ name: 'cache', engine: 'redis', persistence: 'none' });
    expect(cache.status, cache.error ?? '').toBe('ready');
    await client(
      'selfdevop/redis:7',
      cache.network,
      { REDISCLI_AUTH: await envOf(cache.host, 'REDIS_PASSWORD') },
      `for i in $(seq 1 50); do redis-cli -h ${cache.host} set k$i v$i >/dev/null; done`,
    );
    const res = await req('POST', `/api/data-services/${cache.id}/backups`, h());
    expect(res.status, res.text).toBe(202);
    const b = await waitBackup(
      cache.id,
      res.body.id,
      (x) => x.status === 'failed' || (x.drillStatus !== null && x.drillStatus !== 'running'),
    );
    expect(b.error).toBeNull();
    expect(b.drillStatus, b.drillError).toBe('passed');
    expect(b).toMatchObject({ keys: 50, tables: {} });
    expect(b.serverVersion).toMatch(/^7\./);
  }, 300_000);

  it('drills weekly: a scheduled backup within 7 days of a passed drill is stored, not drilled (drill.skipped); one asked for is drilled', async () => {
    const put = await req('PUT', `/api/data-services/${cache.id}/drill-schedule`, {
      ...h(),
      body: { drillSchedule: 'weekly' },
    });
    expect(put.status, put.text).toBe(200);
    const before = (
      await req('GET', `/api/audit-events?action=drill.skipped&targetId=${cache.id}`, h())
    ).body.items.length;
    // What the schedule fires, through the real queue and the suite's worker.
    const fired: DataServiceWorkMessage = {
      orgId,
      dataServiceId: cache.id,
      op: 'backup',
      trigger: 'schedule',
    };
    await api.system.release.queue.send(dataServiceWorkQueue, fired);
    const skipped = (await waitAudit('drill.skipped', cache.id, before)).at(-1).data;
    expect(skipped.reason).toMatch(/^weekly drills: the drill of backup bak_\w+ .* passed; /);
    const b = await waitBackup(cache.id, skipped.backupId, (x) => x.status !== 'running');
    expect(b).toMatchObject({ status: 'completed', trigger: 'schedule', keys: 50 });
    expect(b.drillStatus).toBeNull();

    const res = await req('POST', `/api/data-services/${cache.id}/backups`, h());
    expect(res.status, res.text).toBe(202);
    const asked = await waitBackup(
      cache.id,
      res.body.id,
      (x) => x.status === 'failed' || (x.drillStatus !== null && x.drillStatus !== 'running'),
    );
    expect(asked.drillStatus, asked.drillError ?? asked.error ?? '').toBe('passed');
    // Nothing drilled the skipped one behind the schedule's back (retention may since have let
    // it go: the manual backup is the newest of its day and the newest whose drill passed).
    for (const action of ['drill.passed', 'drill.failed']) {
      const events = await req(
        'GET',
        `/api/audit-events?action=${action}&targetId=${cache.id}&limit=200`,
        h(),
      );
      expect(
        events.body.items.map((e: { data: { backupId: string } }) => e.data.backupId),
      ).not.toContain(b.id);
    }
  }, 300_000);

  // Each engine's gzip stream is gunzipped and counted in the restore's container, beside
  // the server; MariaDB's in-place and new-service restores are above.
  it('restores PostgreSQL and Redis in place: the rows and keys of the backup back', async () => {
    await psql('delete from entries where id > 5; insert into entries (amount) values (-1)');
    expect(await psql('select count(*), sum(amount) from entries')).toBe('6|14');
    await redisCli('del k2');
    await redisCli('set k1 changed');
    await redisCli('set extra 1');
    for (const [ds, name] of [
      [pg, 'ledger'],
      [cache, 'cache'],
    ] as const) {
      // The newest: retention may have let an older one of the same day go.
      const backup = (await req('GET', `/api/data-services/${ds.id}/backups`, h())).body.items.find(
        (b: BackupView) => b.status === 'completed',
      );
      expect(backup).toMatchObject(
        name === 'ledger' ? { tables: { 'public.entries': 500 } } : { keys: 50 },
      );
      const before = (
        await req('GET', `/api/audit-events?action=data_service.restored&targetId=${ds.id}`, h())
      ).body.items.length;
      const res = await req('POST', `/api/data-services/${ds.id}/restore`, {
        ...h(),
        body: { backupId: backup.id, target: 'in_place', confirm: name },
      });
      expect(res.status, res.text).toBe(202);
      const done = (await waitAudit('data_service.restored', ds.id, before)).at(-1).data;
      expect(done).toMatchObject({ backupId: backup.id, inPlace: true });
      expect(done.restoreMs).toBeGreaterThan(0);
      expect((await settle(ds.id)).error).toBeNull();
    }
    expect(await psql('select count(*), sum(amount) from entries')).toBe('500|125250');
    expect((await redisCli('dbsize')).trim()).toBe('50');
    expect((await redisCli('mget k1 k2')).trim().split('\n')).toEqual(['v1', 'v2']);
    expect((await redisCli('exists extra')).trim()).toBe('0');
  }, 300_000);
});
