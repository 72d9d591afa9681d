/**
 * A backup's dump downloaded past the API, as the cloud edition must (Lambda answers 6 MB at
 * most): `POST …/download-url` hands out a short-lived URL to the stored object and that
 * backup's data key, and the client checks, decrypts and gunzips. Run on the self-hosted API
 * with a real S3 peer (s3rver) and OBJECTS_S3_DIRECT — the cloud's S3 adapter and core — and
 * through the real CLI: the dump it writes is the one that was backed up, a tampered object
 * leaves no file behind, an install without direct transfers says so (409) and streams, and
 * an API with a bounded answer refuses a larger dump naming the route that carries it.
 */
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DirectDownload } from '../../core/data-services/backup-transfer.ts';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { encodedBackup, seedCompletedBackup } from '../support/data-services.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';

type Api = Awaited<ReturnType<typeof startSelfhostApi>>;

/** A dump of `bytes` bytes (SQL-like text, so gzip has something to do), encoded as a backup is. */
function encodedDump(bytes: number) {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `INSERT INTO orders VALUES (${i},'${randomBytes(24).toString('hex')}');\n`;
    parts.push(line);
    size += line.length;
  }
  return encodedBackup(Buffer.from(parts.join('')));
}

describe("a backup's dump downloaded from the object store and decrypted by the client", () => {
  let s3: LocalS3;
  let direct: Api;
  let local: Api;
  let dir: string;
  const dumps: Awaited<ReturnType<typeof encodedDump>>[] = [];

  async function signup(api: Api, email: string) {
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email, password: 'correct horse battery' },
    });
    return { token: s.body.token as string, orgId: s.body.org.id as string };
  }

  /** An org with a completed backup of `dump` in `api`'s store. */
  async function seeded(api: Api, email: string, dump: (typeof dumps)[number]) {
    const auth = await signup(api, email);
    const project = await api.request('POST', '/api/projects', {
      token: auth.token,
      body: { name: 'shop' },
    });
    const ids = await seedCompletedBackup(
      api,
      { orgId: auth.orgId, projectId: project.body.id },
      dump.object,
      'orders',
      { dataKey: dump.dataKey, rawBytes: dump.dump.length },
    );
    const base = `/api/data-services/${ids.dataServiceId}/backups/${ids.backupId}`;
    return { ...auth, ...ids, base };
  }

  beforeAll(async () => {
    s3 = await startS3rver(['direct', 'proxied']);
    direct = await startSelfhostApi({ objectsS3: s3.objectsS3('direct', true) });
    local = await startSelfhostApi({ objectsS3: s3.objectsS3('proxied', false) });
    // Past the cloud API's 4 MiB bound once decompressed; small enough to stay quick.
    dumps.push(await encodedDump(6 * 1024 * 1024), await encodedDump(200_000));
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-direct-download-'));
  }, 120_000);
  afterAll(async () => {
    await direct?.close();
    await local?.close();
    await s3?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("hands out the store's URL, the SHA-256 and this backup's key, audited; another org gets a 404", async () => {
    const { token, base, backupId } = await seeded(direct, 'ops@example.com', dumps[0]!);
    const res = await direct.request('POST', `${base}/download-url`, { token });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const d = res.body as DirectDownload;
    expect(d).toMatchObject({
      method: 'GET',
      filename: `orders-${backupId}.sql`,
      encoding: 'gzip+aes-256-gcm',
      dataKey: dumps[0]!.dataKey,
      storedBytes: dumps[0]!.object.length,
      rawBytes: dumps[0]!.dump.length,
    });
    expect(d.url.startsWith(`${s3.endpoint}/direct/backups/`)).toBe(true);
    expect(new URL(d.url).searchParams.get('X-Amz-Expires')).toBe('900');
    expect(Date.parse(d.expiresAt) - Date.now()).toBeGreaterThan(14 * 60_000);
    expect(Buffer.from(await (await fetch(d.url)).arrayBuffer())).toEqual(dumps[0]!.object);
    const audit = await direct.request('GET', '/api/audit-events?action=backup.downloaded', {
      token,
    });
    expect(audit.status).toBe(200);
    expect(audit.body.items).toEqual([
      expect.objectContaining({
        action: 'backup.downloaded',
        data: expect.objectContaining({ backupId, direct: true }),
      }),
    ]);
    const stranger = await signup(direct, 'stranger@example.com');
    const other = await direct.request('POST', `${base}/download-url`, { token: stranger.token });
    expect(other.status).toBe(404);
    expect(JSON.stringify(other.body)).not.toContain(dumps[0]!.dataKey);
  });

  it('the CLI writes the decrypted dump; a tampered object fails and leaves no file', async () => {
    const { token, dataServiceId, backupId, orgId } = await seeded(
      direct,
      'cli@example.com',
      dumps[0]!,
    );
    const env = { SELFDEVOP_URL: direct.url, SELFDEVOP_TOKEN: token };
    const out = path.join(dir, 'orders.sql');
    const ok = await runCli(['data-services', 'download', dataServiceId, backupId, '--out', out], {
      cwd: dir,
      env,
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect((await readFile(out)).equals(dumps[0]!.dump)).toBe(true);
    // One byte flipped in the stored object: the GCM tag (and the SHA-256) refuse it.
    const flipped = Buffer.from(dumps[0]!.object);
    flipped[flipped.length >> 1]! ^= 1;
    const key = (await direct.system.api.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.get(backupId),
    ))!.objectKey;
    await direct.system.release.objects!.put(key, flipped);
    const bad = path.join(dir, 'tampered.sql');
    const refused = await runCli(
      ['data-services', 'download', dataServiceId, backupId, '--out', bad],
      { cwd: dir, env },
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/does not decrypt|does not match its manifest/);
    await expect(access(bad)).rejects.toThrow();
    expect((await readdir(dir)).filter((f) => f.startsWith('tampered'))).toEqual([]);
  });

  it('an install without direct transfers answers 409 naming GET …/download, and the CLI streams', async () => {
    const { token, base, dataServiceId, backupId } = await seeded(
      local,
      'ops@local.example.com',
      dumps[1]!,
    );
    const res = await local.request('POST', `${base}/download-url`, { token });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('no_direct_download');
    expect(res.body.error.message).toContain(`GET ${base}/download streams the dump`);
    const out = path.join(dir, 'local.sql');
    const ok = await runCli(['data-services', 'download', dataServiceId, backupId, '--out', out], {
      cwd: dir,
      env: { SELFDEVOP_URL: local.url, SELFDEVOP_TOKEN: token },
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect((await readFile(out)).equals(dumps[1]!.dump)).toBe(true);
    const audit = await local.request('GET', '/api/audit-events?action=backup.downloaded', {
      token,
    });
    expect(audit.body.items).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ backupId, direct: false }) }),
    ]);
  });

  it('an API with a bounded answer (the cloud) refuses a larger dump by name and streams a smaller one', async () => {
    // As the cloud wiring sets it (adapters/modes/cloud.ts): Lambda answers 6 MB at most.
    direct.system.api.api.maxResponseBytes = 4 * 1024 * 1024;
    try {
      const big = await seeded(direct, 'big@example.com', dumps[0]!);
      const refused = await direct.request('GET', `${big.base}/download`, { token: big.token });
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('download_too_large');
      expect(refused.body.error.message).toContain(`POST ${big.base}/download-url`);
      const small = await seeded(direct, 'small@example.com', dumps[1]!);
      const res = await fetch(`${direct.url}${small.base}/download`, {
        headers: { authorization: `Bearer ${small.token}` },
      });
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(dumps[1]!.dump)).toBe(true);
    } finally {
      delete direct.system.api.api.maxResponseBytes;
    }
  });
});
