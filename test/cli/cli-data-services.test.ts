/**
 * `selfdevop data-services`: the real CLI process against the self-hosted API with its
 * workers, which start a real Redis on the real Docker Engine. Create (waiting until
 * ready), list, show, link to a service, unlink, remove, move a shared database to a
 * dedicated server; and bad input named clearly.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { ensureDataImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { runCli } from '../support/cli.ts';

const ready = await available('docker');
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('the selfdevop CLI for data services', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let env: Record<string, string>;
  let orgId: string;
  let serviceId: string;
  const cleanup: {
    volume?: string;
    network?: string;
    serverVolume?: string;
    movedVolume?: string;
    extraVolumes: string[];
  } = { extraVolumes: [] };

  const cli = (args: string[]) => runCli(args, { cwd: dir, env, timeoutMs: 120_000 });

  beforeAll(async () => {
    await ensureDataImages();
    api = await startSelfhostApi({ workers: true, release: { dataReadyAttempts: 60 } });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-data@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    const token = s.body.token as string;
    const key = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token,
      body: { name: 'ci', role: 'deployer' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: key.body.key };
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    serviceId = svc.body.id;
    await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-data-'));
  }, 900_000);

  afterAll(async () => {
    await api?.close();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (cleanup.volume) await docker('volume', 'rm', '-f', cleanup.volume).catch(() => undefined);
    if (cleanup.serverVolume)
      await docker('volume', 'rm', '-f', cleanup.serverVolume).catch(() => undefined);
    if (cleanup.movedVolume)
      await docker('volume', 'rm', '-f', cleanup.movedVolume).catch(() => undefined);
    for (const v of cleanup.extraVolumes)
      await docker('volume', 'rm', '-f', v).catch(() => undefined);
    if (cleanup.network) await docker('network', 'rm', cleanup.network).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('creates a Redis and waits until it is ready, lists and shows it, links, unlinks and removes it', async () => {
    const created = await cli([
      'data-services',
      'create',
      'cache',
      '--project',
      'shop',
      '--engine',
      'redis',
      '--maxmemory-mb',
      '32',
      '--persistence',
      'none',
      '--wait',
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const ds = JSON.parse(created.stdout);
    cleanup.volume = ds.volume;
    cleanup.network = ds.network;
    expect([ds.status, ds.engine, ds.settings]).toEqual([
      'ready',
      'redis',
      { maxmemoryMb: 32, evictionPolicy: 'noeviction', persistence: 'none' },
    ]);
    const list = await cli(['data-services', '--project', 'shop']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[1]).toMatch(new RegExp(`^${ds.id} +cache +redis 7 +ready `));
    const link = await cli(['data-services', 'link', ds.id, '--service', serviceId]);
    expect(link.code, link.stderr).toBe(0);
    expect(link.stdout).toMatch(/^linked as REDIS_URL \(dsl_\w+\)/);
    const linkId = /\((dsl_\w+)\)/.exec(link.stdout)![1]!;
    const show = await cli(['data-services', 'show', ds.id]);
    expect(show.stdout).toContain(`linked: ${serviceId} as REDIS_URL (${linkId})`);
    // A backup, waited for until its restore drill passed, then seen in both lists.
    const backup = await cli(['data-services', 'backup', ds.id, '--wait']);
    expect(backup.code, backup.stderr).toBe(0);
    expect(backup.stdout).toMatch(/^backup (bak_\w+): completed, drill passed\n$/);
    const backupId = /(bak_\w+)/.exec(backup.stdout)![1]!;
    const backups = await cli(['data-services', 'backups', ds.id]);
    expect(backups.code, backups.stderr).toBe(0);
    expect(backups.stdout).toContain('schedule: 0 3 * * * (UTC)');
    expect(backups.stdout).toMatch(
      new RegExp(`${backupId} .* manual +completed .* passed +0 keys`),
    );
    const drills = await cli(['data-services', 'drills', ds.id, '--json']);
    expect(drills.code, drills.stderr).toBe(0);
    expect(JSON.parse(drills.stdout)[0]).toMatchObject({ backupId, status: 'passed', error: null });
    const everySecond = await cli(['data-services', 'schedule', ds.id, '* * * * *']);
    expect(everySecond.code).toBe(1);
    expect(everySecond.stderr).toContain('more than once an hour');
    const out = join(dir, 'cache.rdb');
    const download = await cli(['data-services', 'download', ds.id, backupId, '--out', out]);
    expect(download.code, download.stderr).toBe(0);
    expect((await readFile(out)).subarray(0, 5).toString()).toBe('REDIS');
    const noTarget = await cli(['data-services', 'restore', ds.id, '--backup', backupId]);
    expect(noTarget.code).toBe(2);
    expect(noTarget.stderr).toContain('--target new|in_place');
    const noId = await cli(['data-services', 'rotate-password']);
    expect(noId.code).toBe(2);
    expect(noId.stderr).toContain('rotate-password needs the ID');
    expect(show.stdout).not.toMatch(/password/i);
    // A password rotation, waited for; the linked service has no release to redeploy yet.
    const rotated = await cli(['data-services', 'rotate-password', ds.id, '--wait']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toBe('password rotated\n');
    const shown = await cli(['data-services', 'show', ds.id]);
    expect(shown.stdout).toMatch(/ {2}password: rotated \d{4}-/);
    // Redis retires the old password by recreating its server: let that end before removal.
    for (let i = 0; i < 60; i++) {
      const r = await api.request(
        'GET',
        `/api/audit-events?action=data_service.old_password_retired&targetId=${ds.id}`,
        { token: env.SELFDEVOP_TOKEN!, headers: { 'x-org-id': orgId } },
      );
      if (r.body.items?.length > 0) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const linked = await cli(['data-services', 'rm', ds.id, '--confirm', 'cache']);
    expect(linked.code).toBe(1);
    expect(linked.stderr).toContain('unlink them first');
    expect((await cli(['data-services', 'unlink', ds.id, linkId])).code).toBe(0);
    const removed = await cli([
      'data-services',
      'rm',
      ds.id,
      '--confirm',
      'cache',
      '--remove-volume',
    ]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe(`removing data service ${ds.id} and its data volume\n`);
  }, 240_000);

  it('creates a shareable MariaDB and a database on it (engine taken from the server), moves it to a dedicated server and confirms', async () => {
    const server = await cli([
      'data-services',
      'create',
      'main',
      '--project',
      'shop',
      '--engine',
      'mariadb',
      '--shareable',
      '--wait',
    ]);
    expect(server.code, server.stderr).toBe(0);
    expect(server.stdout).toMatch(
      /^data service main \((dat_\w+)\): ready, mariadb 10\.11 .*, shareable server\n$/,
    );
    const serverId = /\((dat_\w+)\)/.exec(server.stdout)![1]!;
    const db = await cli([
      'data-services',
      'create',
      'shop-db',
      '--project',
      'shop',
      '--shared-server',
      serverId,
      '--wait',
      '--json',
    ]);
    expect(db.code, db.stderr).toBe(0);
    const shared = JSON.parse(db.stdout);
    expect(shared).toMatchObject({ status: 'ready', engine: 'mariadb', mode: 'shared' });
    const show = await cli(['data-services', 'show', shared.id]);
    expect(show.stdout).toContain(`database ${shared.database} on shared server ${serverId}`);
    const redis = await cli([
      'data-services',
      'create',
      'r',
      '--project',
      'shop',
      '--engine',
      'redis',
      '--shareable',
    ]);
    expect(redis.code).toBe(1);
    expect(redis.stderr).toContain('shareable: redis is never shared');
    const busy = await cli(['data-services', 'rm', serverId, '--confirm', 'main']);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('holds 1 database(s) (shop-db)');
    // Moved out as one action (the real backup, restore and re-link against real MariaDB),
    // then confirmed: the shared copy goes, the dedicated one stays.
    const moved = await cli(['data-services', 'move-to-dedicated', 'shop-db', '--wait']);
    expect(moved.code, moved.stderr).toBe(0);
    const target = /dedicated data service (dat_\w+)/.exec(moved.stdout)?.[1];
    expect(target, moved.stdout).toBeDefined();
    const own = JSON.parse((await cli(['data-services', 'show', target!, '--json'])).stdout);
    expect(own).toMatchObject({ status: 'ready', mode: 'dedicated', engine: 'mariadb' });
    cleanup.movedVolume = own.volume;
    const twice = await cli(['data-services', 'move-to-dedicated', shared.id]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('confirm-move drops this copy');
    const notShared = await cli(['data-services', 'move-to-dedicated', target!]);
    expect(notShared.code).toBe(1);
    expect(notShared.stderr).toContain('is already dedicated');
    const confirmed = await cli(['data-services', 'confirm-move', 'shop-db']);
    expect(confirmed.code, confirmed.stderr).toBe(0);
    expect(confirmed.stdout).toContain('removing the shared copy shop-db');
    await cli(['data-services', 'rm', target!, '--confirm', own.name, '--remove-volume']);
    cleanup.serverVolume = JSON.parse(
      (await cli(['data-services', 'show', serverId, '--json'])).stdout,
    ).volume;
  }, 480_000);

  it('exports a backup (a wrapped key and the object) and imports it into another Redis; the drill passes', async () => {
    const make = async (name: string) => {
      const r = await cli([
        'data-services',
        'create',
        name,
        '--project',
        'shop',
        '--engine',
        'redis',
        '--maxmemory-mb',
        '32',
        '--wait',
        '--json',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const ds = JSON.parse(r.stdout);
      cleanup.extraVolumes.push(ds.volume);
      return ds as { id: string };
    };
    const [from, into] = [await make('sessions'), await make('sessions-b')];
    const backup = await cli(['data-services', 'backup', from.id, '--wait', '--json']);
    expect(backup.code, backup.stderr + backup.stdout).toBe(0);
    const b = JSON.parse(backup.stdout);
    const secret = join(dir, 'passphrase');
    await writeFile(secret, 'cli passphrase, long enough\n', { mode: 0o600 });
    const noPass = await cli(['data-services', 'export', from.id, b.id, '--out', join(dir, 'x')]);
    expect(noPass.code).toBe(2);
    expect(noPass.stderr).toContain('--passphrase-file FILE or SELFDEVOP_BACKUP_PASSPHRASE');
    const out = join(dir, 'sessions-export');
    const exp = await cli([
      'data-services',
      'export',
      from.id,
      b.id,
      '--out',
      out,
      '--passphrase-file',
      secret,
    ]);
    expect(exp.code, exp.stderr).toBe(0);
    expect(exp.stdout).toContain(`wrote ${out}.json and ${out}.gz.enc`);
    const bundle = JSON.parse(await readFile(`${out}.json`, 'utf8'));
    expect(bundle.manifest).toMatchObject({ backupId: b.id, engine: 'redis' });
    expect((await readFile(`${out}.gz.enc`)).byteLength).toBe(bundle.manifest.storedBytes);

    const wrong = await runCli(['data-services', 'import', into.id, '--from', out], {
      cwd: dir,
      env: { ...env, SELFDEVOP_BACKUP_PASSPHRASE: 'not the passphrase at all' },
      timeoutMs: 120_000,
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("passphrase: it does not open this backup's key");
    const imp = await cli([
      'data-services',
      'import',
      into.id,
      '--from',
      out,
      '--passphrase-file',
      secret,
      '--wait',
      '--json',
    ]);
    expect(imp.code, imp.stderr + imp.stdout).toBe(0);
    expect(JSON.parse(imp.stdout)).toMatchObject({
      trigger: 'import',
      status: 'completed',
      drillStatus: 'passed',
      keys: 0,
    });
  }, 300_000);

  it('names bad input: unknown engine or version, a wrong confirmation, missing flags', async () => {
    const engine = await cli([
      'data-services',
      'create',
      'x',
      '--project',
      'shop',
      '--engine',
      'mongo',
    ]);
    expect(engine.code).toBe(1);
    expect(engine.stderr).toContain('engine');
    const version = await cli([
      'data-services',
      'create',
      'x',
      '--project',
      'shop',
      '--engine',
      'postgres',
      '--version',
      '9',
    ]);
    expect(version.code).toBe(1);
    expect(version.stderr).toContain('version: postgres 9 is not available; available: 15');
    const noEngine = await cli(['data-services', 'create', 'x', '--project', 'shop']);
    expect(noEngine.code).toBe(2);
    expect(noEngine.stderr).toContain('--engine');
    const noConfirm = await cli(['data-services', 'rm', 'dat_0nothing']);
    expect(noConfirm.code).toBe(2);
    expect(noConfirm.stderr).toContain('--confirm');
    const unknown = await cli(['data-services', 'rm', 'dat_0nothing', '--confirm', 'x']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('data_service dat_0nothing not found');
  }, 120_000);
});
