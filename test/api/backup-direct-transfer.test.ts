/**
 * A backup's object past the API, as the cloud edition moves it (its API cannot carry a
 * backup: API Gateway takes 10 MB in, Lambda answers 6 MB out): the object store hands out
 * presigned URLs. Run on the self-hosted API with a real S3 peer (s3rver) and
 * OBJECTS_S3_DIRECT — the same S3 adapter and core as the cloud's — and through the real CLI:
 * the object's GET is a 303 to the store, an import answers an upload URL, the completion
 * checks what landed (nothing, or another size, is a 400 naming it and nothing stays), and an
 * install whose store takes no direct upload says so (409).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupKeys } from '../../core/data-services/backups.ts';
import type { BackupExport } from '../../core/data-services/backup-transfer.ts';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { seedCompletedBackup } from '../support/data-services.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';

type Api = Awaited<ReturnType<typeof startSelfhostApi>>;
const passphrase = 'a long shared passphrase, typed twice';

describe('backup objects moved directly between clients and the object store', () => {
  let s3: LocalS3;
  let direct: Api;
  let local: Api;
  let dir: string;
  let token: string;
  let orgId: string;
  let dataServiceId: string;
  let backupId: string;
  const object = randomBytes(300_000);

  /** A ready MariaDB data service with one completed backup whose object is in the store. */
  async function seed(api: Api, auth: { token: string; orgId: string }) {
    const project = await api.request('POST', '/api/projects', {
      token: auth.token,
      body: { name: 'shop' },
    });
    return seedCompletedBackup(api, { orgId: auth.orgId, projectId: project.body.id }, object);
  }

  async function signup(api: Api, email: string) {
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email, password: 'correct horse battery' },
    });
    return { token: s.body.token as string, orgId: s.body.org.id as string };
  }

  beforeAll(async () => {
    s3 = await startS3rver(['direct', 'proxied']);
    direct = await startSelfhostApi({ objectsS3: s3.objectsS3('direct', true) });
    local = await startSelfhostApi({ objectsS3: s3.objectsS3('proxied', false) });
    ({ token, orgId } = await signup(direct, 'ops@example.com'));
    ({ dataServiceId, backupId } = await seed(direct, { token, orgId }));
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-direct-'));
  }, 120_000);
  afterAll(async () => {
    await direct?.close();
    await local?.close();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const base = () => `/api/data-services/${dataServiceId}/backups`;

  it("answers a backup's object with a 303 to a short-lived URL of the store", async () => {
    const res = await fetch(`${direct.url}${base()}/${backupId}/object`, {
      headers: { authorization: `Bearer ${token}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = res.headers.get('location')!;
    expect(location.startsWith(`${s3.endpoint}/direct/backups/`)).toBe(true);
    expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('900');
    const got = await fetch(location);
    expect(got.headers.get('content-disposition')).toMatch(
      new RegExp(`attachment; filename=".*-${backupId}\\.gz\\.enc"`),
    );
    expect(Buffer.from(await got.arrayBuffer())).toEqual(object);
  });

  it('imports through an upload URL: nothing there or another size is a 400 and nothing stays; the whole object completes and queues its drill', async () => {
    const auth = { token, headers: {} };
    const bundle = (await direct.request('POST', `${base()}/${backupId}/export`, {
      ...auth,
      body: { passphrase },
    })) as { status: number; body: BackupExport };
    expect(bundle.status).toBe(200);
    const started = await direct.request('POST', `${base()}/import`, {
      ...auth,
      body: { bundle: bundle.body, passphrase },
    });
    expect(started.status).toBe(201);
    const upload = started.body.upload as {
      method: string;
      url: string;
      headers: Record<string, string>;
      completePath: string;
      expiresAt: string;
    };
    const imported = started.body.backup.id as string;
    expect(upload.method).toBe('PUT');
    expect(upload.headers).toEqual({
      'content-type': 'application/octet-stream',
      'content-length': String(object.length),
    });
    expect(upload.completePath).toBe(`${base()}/${imported}/object/complete`);
    expect(Date.parse(upload.expiresAt) - Date.now()).toBeGreaterThan(55 * 60_000);
    // Nothing uploaded yet.
    const early = await direct.request('POST', upload.completePath, auth);
    expect(early.status).toBe(400);
    expect(early.body.error.message).toContain('is not in the store');
    // A short object (S3 itself refuses it against the signed size; s3rver checks no
    // signature, so the API's own check is what stops it here).
    const put = (body: Buffer, url = upload.url) =>
      fetch(url, {
        method: 'PUT',
        body: new Uint8Array(body),
        headers: { 'content-type': 'application/octet-stream' },
      });
    expect((await put(object.subarray(0, 1000))).status).toBe(200);
    const short = await direct.request('POST', upload.completePath, auth);
    expect(short.status).toBe(400);
    expect(short.body.error.message).toBe(
      `body: the object has 1000 bytes, the manifest says ${object.length}; send the whole object again`,
    );
    const importedKey = backupKeys({ orgId, dataServiceId, id: imported }).objectKey;
    expect(await direct.system.release.objects!.direct!.size(importedKey)).toBeNull();
    // A fresh URL, the whole object, then the completion.
    const again = await direct.request('POST', `${base()}/${imported}/object/upload-url`, auth);
    expect(again.status).toBe(200);
    expect((await put(object, again.body.url)).status).toBe(200);
    const done = await direct.request('POST', upload.completePath, auth);
    expect(done.status, JSON.stringify(done.body)).toBe(202);
    expect(done.body).toMatchObject({ id: imported, status: 'completed', trigger: 'import' });
    const list = await direct.request('GET', base(), auth);
    expect(list.body.items.find((b: { id: string }) => b.id === imported)).toMatchObject({
      status: 'completed',
      storedBytes: object.length,
    });
    // Done once: another completion or URL is a 409.
    const twice = await direct.request('POST', upload.completePath, auth);
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('backup_not_awaiting_object');
    const late = await direct.request('POST', `${base()}/${imported}/object/upload-url`, auth);
    expect(late.status).toBe(409);
  });

  it("never hands another org a URL to this org's objects (404)", async () => {
    const other = await signup(direct, 'stranger@example.com');
    const auth = { token: other.token };
    const object = await fetch(`${direct.url}${base()}/${backupId}/object`, {
      headers: { authorization: `Bearer ${other.token}` },
      redirect: 'manual',
    });
    expect(object.status).toBe(404);
    for (const tail of ['object/upload-url', 'object/complete']) {
      const r = await direct.request('POST', `${base()}/${backupId}/${tail}`, auth);
      expect(r.status).toBe(404);
      expect(JSON.stringify(r.body)).not.toContain('X-Amz-Signature');
    }
  });

  it('is a 409 naming the upload path on an install whose store takes no direct upload', async () => {
    const auth = await signup(local, 'ops@local.example.com');
    const seeded = await seed(local, auth);
    const b = `/api/data-services/${seeded.dataServiceId}/backups`;
    const res = await fetch(`${local.url}${b}/${seeded.backupId}/object`, {
      headers: { authorization: `Bearer ${auth.token}` },
      redirect: 'manual',
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(object);
    for (const tail of ['object/complete', 'object/upload-url']) {
      const r = await local.request('POST', `${b}/${seeded.backupId}/${tail}`, {
        token: auth.token,
      });
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('no_direct_upload');
      expect(r.body.error.message).toContain(`PUT the object to ${b}/${seeded.backupId}/object`);
    }
  });

  it('exports and imports through the CLI, which follows the redirect and uploads to the store', async () => {
    const env = {
      SELFDEVOP_URL: direct.url,
      SELFDEVOP_TOKEN: token,
      SELFDEVOP_BACKUP_PASSPHRASE: passphrase,
    };
    const out = path.join(dir, 'orders');
    const exported = await runCli(
      ['data-services', 'export', dataServiceId, backupId, '--out', out],
      { cwd: dir, env },
    );
    expect(exported.code, exported.stderr).toBe(0);
    expect(await readFile(`${out}.gz.enc`)).toEqual(object);
    const imported = await runCli(['data-services', 'import', dataServiceId, '--from', out], {
      cwd: dir,
      env,
    });
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/^imported backup bak_\S+: completed, drill queued/);
    const id = /imported backup (bak_\S+):/.exec(imported.stdout)![1]!;
    const key = backupKeys({ orgId, dataServiceId, id }).objectKey;
    expect(Buffer.from((await direct.system.release.objects!.get(key))!)).toEqual(object);
    const list = await direct.request('GET', base(), { token });
    expect(list.body.items.find((b: { id: string }) => b.id === id)).toMatchObject({
      status: 'completed',
      trigger: 'import',
    });
    // A missing object file is named before anything is opened on the API.
    await writeFile(`${out}-alone.json`, await readFile(`${out}.json`));
    const missing = await runCli(
      ['data-services', 'import', dataServiceId, '--from', `${out}-alone`],
      { cwd: dir, env },
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`cannot read ${out}-alone.gz.enc`);
  });
});
