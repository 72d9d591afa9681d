/**
 * Restore drills that start the linked app, for real (issue 15): a Redis data service linked
 * to a web service whose health check reads a key from Redis through REDIS_URL (a tiny Node
 * server in an image this file builds FROM selfdevop-test/node:base). The drill
 * restores the backup on a network of its own, starts the service's current image against
 * the restored copy and runs its health check there: it passes when the key came back, and
 * fails with the app's answer when the backup lacks it. Nothing the drill started is left.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import { drillNetworkName } from '../../core/data-services/drill-app.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  dockerTarget,
  ensureDataImages,
  ensureTestImages,
  removeContainersByLabel,
  testRun,
} from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 60_000 }).then((r) => r.stdout.trim());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The app: GET /health answers 200 only when REDIS_URL's server holds `drill-marker` =
 * `restored` (RESP over a socket, no dependencies). Node on selfdevop-test/node:base, not
 * busybox: static busybox crashes resolving names on an internal Docker network.
 */
const appJs = `
const http = require('node:http');
const net = require('node:net');
const u = new URL(process.env.REDIS_URL);
const marker = () => new Promise((resolve) => {
  const s = net.connect(Number(u.port), u.hostname);
  let buf = '';
  const done = (v) => { s.destroy(); resolve(v); };
  s.setTimeout(3000, () => done('timeout'));
  s.on('error', (e) => done(e.code));
  s.on('connect', () => s.write('AUTH ' + decodeURIComponent(u.password) + '\\r\\nGET drill-marker\\r\\n'));
  s.on('data', (d) => {
    buf += d;
    const l = buf.split('\\r\\n');
    if (l[0].startsWith('-')) done(l[0]);
    else if (l[1] === '$-1') done('missing');
    else if (l.length >= 4) done(l[2]);
  });
});
http.createServer(async (req, res) => {
  if (req.url !== '/health') return res.end('drill app');
  const v = await marker();
  res.writeHead(v === 'restored' ? 200 : 503).end(v + ' at ' + u.hostname);
}).listen(Number(process.env.PORT || 8080));
process.on('SIGTERM', () => process.exit(0));
`;

describe.skipIf(!ready)('restore drills that start the linked app, on Docker', () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  const image = `selfdevop-test/drill-app:${run.id.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}`;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let caddy: TestCaddy;
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;
  let redis: { id: string; host: string; network: string; volume: string };
  let serviceId: string;
  const h = () => ({ token, headers: { 'x-org-id': orgId } });

  async function redisCli(cmd: string) {
    const pw = (
      await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', redis.host)
    )
      .split('\n')
      .find((l) => l.startsWith('REDIS_PASSWORD='))!
      .slice('REDIS_PASSWORD='.length);
    const r = await runtime.runOnce(
      dockerTarget,
      {
        name: run.name('cli'),
        image: 'selfdevop/redis:7',
        env: { REDISCLI_AUTH: pw },
        labels: run.labels,
        entrypoint: ['sh', '-ec', `redis-cli -h ${redis.host} ${cmd}`],
        restartPolicy: 'no',
        network: redis.network,
      },
      60_000,
    );
    expect(r.exitCode, r.output).toBe(0);
    return r.output.trim();
  }

  /** Backs up on demand and polls until its drill ends (bounded: 300 polls). */
  async function backupAndDrill(): Promise<BackupView> {
    const res = await req('POST', `/api/data-services/${redis.id}/backups`, h());
    expect(res.status, res.text).toBe(202);
    for (let i = 0; i < 300; i++) {
      const r = await req('GET', `/api/data-services/${redis.id}/backups`, h());
      const b = r.body.items.find((x: BackupView) => x.id === res.body.id) as BackupView;
      if (b.status === 'failed') throw new Error(`backup failed: ${b.error}`);
      if (b.drillStatus === 'passed' || b.drillStatus === 'failed') return b;
      await sleep(500);
    }
    throw new Error('the drill did not end');
  }

  async function drillEvent(action: string, backupId: string) {
    for (let i = 0; i < 100; i++) {
      const r = await req('GET', `/api/audit-events?action=${action}&targetId=${redis.id}`, h());
      const e = r.body.items.find(
        (x: { data: { backupId: string } }) => x.data.backupId === backupId,
      );
      if (e) return e;
      await sleep(300);
    }
    throw new Error(`no ${action} for ${backupId}`);
  }

  /** Nothing the drill started is left: no container of its role, no network of its name. */
  async function expectCleanedUp(backupId: string) {
    const left = await docker(
      'ps',
      '-a',
      '--filter',
      `label=selfdevop.data-service=${redis.id}`,
      '--filter',
      'label=selfdevop.role=data-drill',
      '--format',
      '{{.Names}}',
    );
    expect(left).toBe('');
    const nets = await docker('network', 'ls', '--format', '{{.Name}}');
    expect(nets.split('\n')).not.toContain(drillNetworkName(backupId));
  }

  beforeAll(async () => {
    await Promise.all([ensureDataImages(), ensureTestImages()]);
    const ctx = await mkdtemp(path.join(tmpdir(), 'drill-app-'));
    await writeFile(path.join(ctx, 'app.js'), appJs);
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      `FROM selfdevop-test/node:base\nLABEL ${Object.entries(run.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}\nCOPY app.js /app.js\nCMD ["node", "/app.js"]\n`,
    );
    await promisify(execFile)('docker', ['build', '-q', '-t', image, ctx], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      timeout: 120_000,
    });
    await rm(ctx, { recursive: true, force: true });

    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, dataReadyAttempts: 90 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'drills@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token, body: { name: 'chat' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const created = await req('POST', '/api/data-services', {
      ...h(),
      body: { projectId, name: 'sessions', engine: 'redis', persistence: 'rdb' },
    });
    expect(created.status, created.text).toBe(202);
    let ds = created.body;
    for (let i = 0; i < 150 && ds.status === 'provisioning'; i++) {
      await sleep(400);
      ds = (await req('GET', `/api/data-services/${ds.id}`, h())).body;
    }
    expect(ds.status, ds.error).toBe('ready');
    redis = ds;
    await redisCli('set drill-marker restored');

    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image,
        containerPort: 8080,
        healthcheckPath: '/health',
        env: { GREETING: 'hello' },
        health: { intervalMs: 200, successes: 2, deadlineMs: 15_000, timeoutMs: 2_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
    const link = await req('POST', `/api/data-services/${redis.id}/links`, {
      token,
      body: { serviceId },
    });
    expect(link.status, link.text).toBe(201);
    // The release's own gate already needs the live Redis: the app reads its data to be healthy.
    const release = await req('POST', '/api/releases', { token, body: { serviceId, image } });
    expect(release.status, release.text).toBe(202);
    let r = release.body;
    for (let i = 0; i < 300 && !['completed', 'failed', 'rolled_back'].includes(r.status); i++) {
      await sleep(300);
      r = (await req('GET', `/api/releases/${release.body.id}`, { token })).body;
    }
    expect(r.status, r.error).toBe('completed');
  }, 900_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    await removeContainersByLabel(run.labels);
    if (redis) {
      await docker('volume', 'rm', '-f', redis.volume).catch(() => undefined);
      await docker('network', 'rm', redis.network).catch(() => undefined);
    }
    await docker('rmi', '-f', image).catch(() => undefined);
  });

  it('starts the app against the restored copy on the drill network and passes when it is healthy there', async () => {
    const b = await backupAndDrill();
    expect(b.drillError).toBeNull();
    expect(b.drillStatus).toBe('passed');
    expect(b.drillRtoMs).toBeGreaterThan(0);
    expect(b.drillRpoMs).toBeGreaterThanOrEqual(0);
    const event = await drillEvent('drill.passed', b.id);
    expect(event.data).toMatchObject({ backupId: b.id, apps: ['web'] });
    await expectCleanedUp(b.id);
  }, 300_000);

  it("fails the drill with the app's answer when the restored copy cannot make it healthy", async () => {
    // The backup no longer holds what the app needs: the app (not the counts) notices.
    await redisCli('del drill-marker');
    const b = await backupAndDrill();
    expect(b.drillStatus).toBe('failed');
    expect(b.drillError).toMatch(
      /app web \([^)]+\) did not become healthy against the restored copy: GET \/health HTTP\/1\.[01] 503/,
    );
    const event = await drillEvent('drill.failed', b.id);
    expect(event.data).toMatchObject({ backupId: b.id, apps: ['web'], reason: b.drillError });
    await expectCleanedUp(b.id);
    // The live data service was never touched by the drill.
    expect(await redisCli('ping')).toBe('PONG');
  }, 300_000);
});
