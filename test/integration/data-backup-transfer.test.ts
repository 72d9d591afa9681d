/**
 * A backup that moves between installs, for real: two self-hosted installs in one test (two
 * databases, two vault key files, two object stores), MariaDB containers on the local Docker
 * Engine. Install A exports a backup (its manifest + its data key wrapped under a
 * passphrase) and serves the encrypted object as it is; install B imports the bundle with the
 * passphrase, takes the object as a stream, reseals the key with its own vault, drills it,
 * and restores it with the very same table checksums. A wrong passphrase is a 400 naming it,
 * a tampered object fails its drill loudly, and another org never sees the backup (404).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import type { BackupExport } from '../../core/data-services/backup-transfer.ts';
import {
  containerEnv,
  createDataService,
  settleDataService,
  useDataSuite,
  waitForAudit,
  waitForBackup,
  type DataInstall,
} from '../support/data-services.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');
const passphrase = 'a long shared passphrase, typed twice';

describe.skipIf(!ready)('a data-service backup moved to another install', () => {
  const s = useDataSuite(import.meta.url, { email: 'install-a@example.com' });
  let a: DataInstall;
  let b: DataInstall;
  beforeAll(async () => {
    a = s;
    b = await s.addInstall('install-b@example.com');
  }, 900_000);

  const h = (i: DataInstall) => i.h();

  /** Creates a MariaDB data service and polls until it leaves `provisioning`. */
  const createData = (i: DataInstall, name: string) =>
    createDataService(i, s.cleanup, { name, engine: 'mariadb' });

  /** A SQL statement from a one-off client on the data service's project network. */
  async function sql(ds: { host: string; network: string }, statement: string) {
    const password = await containerEnv(ds.host, 'MARIADB_PASSWORD');
    const r = await s.client(
      'selfdevop/mariadb:10.11',
      ds.network,
      { MYSQL_PWD: password },
      `mariadb -h ${ds.host} -u app app -N -B -e "${statement}"`,
    );
    expect(r.exitCode, r.output).toBe(0);
    return r.output;
  }

  const checksums = (ds: { host: string; network: string }) =>
    sql(ds, 'checksum table items, tags extended');

  /** PUTs bytes as a stream (chunked: no length known up front), as the CLI does. */
  function upload(
    i: DataInstall,
    path: string,
    bytes: Uint8Array,
    token = i.token,
    orgId = i.orgId,
  ) {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.length; at += 4096)
          controller.enqueue(bytes.slice(at, at + 4096));
        controller.close();
      },
    });
    return fetch(`${i.api.url}${path}`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${token}`,
        'x-org-id': orgId,
        'content-type': 'application/octet-stream',
      },
      body,
      duplex: 'half',
    } as RequestInit);
  }

  let source: Awaited<ReturnType<typeof createData>>;
  let target: Awaited<ReturnType<typeof createData>>;
  let bundle: BackupExport;
  let object: Uint8Array;
  let imported: BackupView;

  it('exports a backup from install A: manifest and a wrapped key, the object as it is', async () => {
    [source, target] = await Promise.all([createData(a, 'orders'), createData(b, 'orders')]);
    expect(source.status).toBe('ready');
    expect(target.status).toBe('ready');
    await sql(
      source,
      "create table items (id int primary key auto_increment, label varchar(64)); create table tags (v int); insert into tags values (1), (2), (3); insert into items (label) select concat('moved-', seq) from seq_1_to_2000",
    );
    const res = await a.request('POST', `/api/data-services/${source.id}/backups`, h(a));
    expect(res.status, res.text).toBe(202);
    const made = await waitForBackup<BackupView>(
      a,
      source.id,
      res.body.id,
      (x) => x.drillStatus !== null && x.drillStatus !== 'running',
    );
    expect(made.drillStatus, made.drillError ?? '').toBe('passed');

    const short = await a.request(
      'POST',
      `/api/data-services/${source.id}/backups/${made.id}/export`,
      {
        ...h(a),
        body: { passphrase: 'short' },
      },
    );
    expect(short.status).toBe(400);
    expect(short.text).toContain('passphrase');

    const exp = await a.request(
      'POST',
      `/api/data-services/${source.id}/backups/${made.id}/export`,
      {
        ...h(a),
        body: { passphrase },
      },
    );
    expect(exp.status, exp.text).toBe(200);
    bundle = exp.body;
    expect(bundle).toMatchObject({
      kind: 'selfdevop-data-backup',
      format: 1,
      manifest: {
        backupId: made.id,
        engine: 'mariadb',
        sha256: made.sha256,
        tables: { items: 2000, tags: 3 },
      },
    });
    // Nothing of A's vault leaves: no sealed key, and the data key only wrapped.
    expect(JSON.stringify(bundle)).not.toContain('sealedDataKey');
    expect(bundle.wrappedKey).toMatch(/^v1\.scrypt\./);

    const res2 = await fetch(
      `${a.api.url}/api/data-services/${source.id}/backups/${made.id}/object`,
      {
        headers: { authorization: `Bearer ${a.token}`, 'x-org-id': a.orgId },
      },
    );
    expect(res2.status).toBe(200);
    object = new Uint8Array(await res2.arrayBuffer());
    expect(object.byteLength).toBe(made.storedBytes);
    expect(Buffer.from(object).includes('moved-')).toBe(false);
  }, 600_000);

  it('refuses a wrong passphrase with a 400 naming it, and a bundle of another engine', async () => {
    const wrong = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...h(b),
      body: { bundle, passphrase: `${passphrase}!` },
    });
    expect(wrong.status, wrong.text).toBe(400);
    expect(wrong.body.error.message).toMatch(/^passphrase: it does not open/);
    // A manifest changed to name another object does not open with the right one either.
    const altered = { ...bundle, manifest: { ...bundle.manifest, sha256: 'f'.repeat(64) } };
    const bad = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...h(b),
      body: { bundle: altered, passphrase },
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('passphrase');
    const redis = { ...bundle, manifest: { ...bundle.manifest, engine: 'redis' } };
    const other = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...h(b),
      body: { bundle: redis, passphrase },
    });
    expect(other.status).toBe(400);
    expect(other.text).toContain('bundle.manifest.engine');
    const list = await b.request('GET', `/api/data-services/${target.id}/backups`, h(b));
    expect(list.body.items).toEqual([]);
  });

  it('imports into install B: streamed upload, resealed key, drill passes, restore gives identical checksums', async () => {
    const res = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...h(b),
      body: { bundle, passphrase },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.backup).toMatchObject({ status: 'running', trigger: 'import' });
    // Nothing to restore before its object arrives.
    const early = await b.request('POST', `/api/data-services/${target.id}/restore`, {
      ...h(b),
      body: { backupId: res.body.backup.id, target: 'new' },
    });
    expect(early.status).toBe(400);

    const short = await upload(b, res.body.uploadPath, object.slice(0, 1000));
    expect(short.status).toBe(400);
    expect(await short.text()).toContain(`the manifest says ${object.byteLength}`);
    const long = await upload(b, res.body.uploadPath, new Uint8Array([...object, 1, 2, 3]));
    expect(long.status).toBe(400);

    const put = await upload(b, res.body.uploadPath, object);
    expect(put.status, await put.clone().text()).toBe(202);
    imported = await waitForBackup<BackupView>(
      b,
      target.id,
      res.body.backup.id,
      (x) => x.drillStatus !== null && x.drillStatus !== 'running',
    );
    expect(imported.drillError).toBeNull();
    expect(imported).toMatchObject({
      status: 'completed',
      trigger: 'import',
      drillStatus: 'passed',
      sha256: bundle.manifest.sha256,
      tables: { items: 2000, tags: 3 },
    });
    const again = await upload(b, res.body.uploadPath, object);
    expect(again.status).toBe(409);
    expect(await again.text()).toContain('backup_not_awaiting_object');

    const restore = await b.request('POST', `/api/data-services/${target.id}/restore`, {
      ...h(b),
      body: { backupId: imported.id, target: 'new', name: 'orders-from-a' },
    });
    expect(restore.status, restore.text).toBe(202);
    const copyId = restore.body.dataService.id;
    await waitForAudit(b, 'data_service.restored', copyId);
    const copy = await settleDataService(b, s.cleanup, copyId, (d) => d.status !== 'provisioning');
    expect(copy.status).toBe('ready');
    const want = await checksums(source);
    expect(want).toMatch(/app\.items\t\d+/);
    expect(await checksums(copy)).toBe(want);
    expect(await sql(copy, 'select count(*), max(id) from items')).toBe('2000\t2000');
  }, 600_000);

  it('fails the drill of a tampered object loudly', async () => {
    const res = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...h(b),
      body: { bundle, passphrase },
    });
    expect(res.status, res.text).toBe(201);
    const tampered = Uint8Array.from(object);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    const put = await upload(b, res.body.uploadPath, tampered);
    expect(put.status).toBe(202);
    const x = await waitForBackup<BackupView>(
      b,
      target.id,
      res.body.backup.id,
      (y) => y.drillStatus === 'failed' || y.drillStatus === 'passed',
    );
    expect(x.drillStatus).toBe('failed');
    expect(x.drillError).toMatch(/is corrupted: the stored dump's SHA-256/);
    const events = await waitForAudit(b, 'drill.failed', target.id);
    expect(events.at(-1)!.data).toMatchObject({ backupId: x.id, reason: x.drillError });
  }, 300_000);

  it("answers 404 to another org's backup ids on every transfer route", async () => {
    const s = await b.request('POST', '/api/auth/local/signup', {
      body: { email: 'other-org@example.com', password: 'correct horse battery' },
    });
    const other = { token: s.body.token, headers: { 'x-org-id': s.body.org.id } };
    const base = `/api/data-services/${target.id}/backups/${imported.id}`;
    const exp = await b.request('POST', `${base}/export`, { ...other, body: { passphrase } });
    expect(exp.status).toBe(404);
    const obj = await b.request('GET', `${base}/object`, other);
    expect(obj.status).toBe(404);
    const put = await upload(b, `${base}/object`, object, s.body.token, s.body.org.id);
    expect(put.status).toBe(404);
    const imp = await b.request('POST', `/api/data-services/${target.id}/backups/import`, {
      ...other,
      body: { bundle, passphrase },
    });
    expect(imp.status).toBe(404);
    // And A's backup id means nothing on B.
    const foreign = await b.request(
      'POST',
      `/api/data-services/${target.id}/backups/${bundle.manifest.backupId}/export`,
      { ...h(b), body: { passphrase } },
    );
    expect(foreign.status).toBe(404);
  });
});
