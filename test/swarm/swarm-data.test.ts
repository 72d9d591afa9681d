/**
 * A data service on a Swarm target (issue 17), for real: the three-manager Swarm of
 * scripts/swarm-up.sh 7 8 9 registered as a node of kind swarm, the self-hosted API with its
 * workers behind a real Caddy. A Redis data service runs as a plain container on the
 * manager's own engine (node 7) with its volume there, on the project's attachable overlay;
 * a service of two replicas linked to it runs as Swarm services spread over the members and
 * is healthy only when it reads a key from Redis through the link's URL, so its release
 * completing proves the tasks on the other members reach it by name. A backup is taken and
 * drilled on the manager (the drill starts the app against the restored copy), and deleting
 * the data service with `volume=remove` removes its container and volume there.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import { drillNetworkName } from '../../core/data-services/drill-app.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureDataImages, ensureTestImages } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import {
  copyImage,
  dk,
  managerEngine,
  managerHost,
  memberEngines,
  removeOrgFromSwarm,
  swarmReady,
} from '../support/swarm.ts';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const memberHosts = Object.values(memberEngines);
const ready = (await swarmReady('the Swarm data-service suite')) && (await available('caddy'));

/**
 * The app: GET /health answers 200 only when REDIS_URL's server holds `swarm-marker` =
 * `kept` (RESP over a socket, no dependencies), with the host it asked.
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
  s.on('connect', () => s.write('AUTH ' + decodeURIComponent(u.password) + '\\r\\nGET swarm-marker\\r\\n'));
  s.on('data', (d) => {
    buf += d;
    const l = buf.split('\\r\\n');
    if (l[0].startsWith('-')) done(l[0]);
    else if (l[1] === '$-1') done('missing');
    else if (l.length >= 4) done(l[2]);
  });
});
http.createServer(async (req, res) => {
  if (req.url !== '/health') return res.end('swarm data app');
  const v = await marker();
  res.writeHead(v === 'kept' ? 200 : 503).end(v + ' at ' + u.hostname);
}).listen(Number(process.env.PORT || 8080));
process.on('SIGTERM', () => process.exit(0));
`;
/** One tag, built from the same inputs each run: the members keep it between runs. */
const appImage = 'selfdevop-test/swarm-data-app:v1';

describe.skipIf(!ready)(
  'a data service on a Swarm target: on the manager, reached from every member',
  { timeout: 300_000 },
  () => {
    const runtime = new DockerRuntime();
    let api: Awaited<ReturnType<typeof startSelfhostApi>>;
    let caddy: TestCaddy;
    let req: Requester;
    let token: string;
    let orgId: string;
    let projectId: string;
    let redis: { id: string; name: string; host: string; network: string; volume: string };
    let serviceId: string;
    let linkId: string;
    const h = (body?: unknown) => ({
      token,
      headers: { 'x-org-id': orgId },
      ...(body === undefined ? {} : { body }),
    });

    async function redisCli(cmd: string): Promise<string> {
      const env = await dk(
        managerHost,
        'inspect',
        '-f',
        '{{range .Config.Env}}{{println .}}{{end}}',
        redis.host,
      );
      const pw = env
        .split('\n')
        .find((l) => l.startsWith('REDIS_PASSWORD='))!
        .slice('REDIS_PASSWORD='.length);
      const r = await runtime.runOnce(
        managerEngine,
        {
          name: `sdo-test-swarm-data-cli-${Date.now()}`,
          image: 'selfdevop/redis:7',
          env: { REDISCLI_AUTH: pw },
          labels: { 'selfdevop.org': orgId },
          entrypoint: ['sh', '-ec', `redis-cli -h ${redis.host} ${cmd}`],
          restartPolicy: 'no',
          network: redis.network,
        },
        60_000,
      );
      expect(r.exitCode, r.output).toBe(0);
      return r.output.trim();
    }

    beforeAll(async () => {
      await Promise.all([ensureDataImages(), ensureTestImages()]);
      const ctx = await mkdtemp(path.join(tmpdir(), 'swarm-data-app-'));
      await writeFile(path.join(ctx, 'app.js'), appJs);
      await writeFile(
        path.join(ctx, 'Dockerfile'),
        'FROM selfdevop-test/node:base\nCOPY app.js /app.js\nCMD ["node", "/app.js"]\n',
      );
      await exec('docker', ['build', '-q', '-t', appImage, ctx], {
        env: { ...process.env, DOCKER_BUILDKIT: '0' },
        timeout: 120_000,
      });
      await rm(ctx, { recursive: true, force: true });
      // Redis runs on the manager only; the app's tasks may run on any member.
      await copyImage('selfdevop/redis:7', managerHost);
      for (const host of memberHosts) await copyImage(appImage, host);

      caddy = await startCaddy();
      api = await startSelfhostApi({
        workers: true,
        caddyAdminUrl: caddy.adminUrl,
        caddyServer: caddy.serverName,
        release: { maxStepAttempts: 2, dataReadyAttempts: 90 },
      });
      req = api.request;
      const s = await req('POST', '/api/auth/local/signup', {
        body: { email: 'swarm-data@example.com', password: 'correct horse battery' },
      });
      expect(s.status, s.text).toBe(201);
      token = s.body.token;
      orgId = s.body.org.id;
      const project = await req('POST', '/api/projects', h({ name: 'shop' }));
      expect(project.status, project.text).toBe(201);
      projectId = project.body.id;
      const node = await req(
        'POST',
        '/api/nodes',
        h({ name: 'swarm-7-9', kind: 'swarm', dockerHost: managerHost, address: '10.213.0.17' }),
      );
      expect(node.status, node.text).toBe(201);
    }, 900_000);

    afterAll(async () => {
      await api?.close();
      await caddy?.stop();
      if (!orgId) return;
      await removeOrgFromSwarm(orgId, {
        volumes: redis ? [redis.volume] : [],
        networks: redis ? [redis.network] : [],
      });
    });

    it('runs Redis on the manager, links it to Swarm tasks on other members, backs it up and drills it', async () => {
      const created = await req(
        'POST',
        '/api/data-services',
        h({ projectId, name: 'sessions', engine: 'redis', persistence: 'rdb' }),
      );
      expect(created.status, created.text).toBe(202);
      let ds = created.body;
      for (let i = 0; i < 200 && ds.status === 'provisioning'; i++) {
        await sleep(500);
        ds = (await req('GET', `/api/data-services/${ds.id}`, h())).body;
      }
      redis = ds;
      expect(ds.status, ds.error).toBe('ready');

      // A plain container on the manager's engine, its volume there, not a Swarm service.
      const [state, mounts] = (
        await dk(
          managerHost,
          'inspect',
          '-f',
          '{{.State.Status}}|{{range .Mounts}}{{.Name}} {{end}}',
          redis.host,
        )
      ).split('|');
      expect(state).toBe('running');
      expect(mounts!.trim().split(' ')).toContain(redis.volume);
      expect(await dk(managerHost, 'service', 'ls', '-q', '--filter', `name=${redis.host}`)).toBe(
        '',
      );
      // Its project network is the cluster's attachable overlay, which the services join too.
      expect(
        await dk(
          managerHost,
          'network',
          'inspect',
          '-f',
          '{{.Driver}} {{.Attachable}}',
          redis.network,
        ),
      ).toBe('overlay true');
      await redisCli('set swarm-marker kept');

      const svc = await req(
        'POST',
        '/api/services',
        h({
          projectId,
          name: 'web',
          image: appImage,
          containerPort: 8080,
          healthcheckPath: '/health',
          replicas: 2,
          health: { intervalMs: 300, successes: 2, deadlineMs: 60_000, timeoutMs: 3_000 },
        }),
      );
      expect(svc.status, svc.text).toBe(201);
      serviceId = svc.body.id;
      const link = await req('POST', `/api/data-services/${redis.id}/links`, h({ serviceId }));
      expect(link.status, link.text).toBe(201);
      linkId = link.body.id;
      // The health gate needs the live Redis: each task reads the marker through REDIS_URL.
      const release = await req('POST', '/api/releases', h({ serviceId, image: appImage }));
      expect(release.status, release.text).toBe(202);
      let r = release.body;
      for (let i = 0; i < 400 && !['completed', 'failed', 'rolled_back'].includes(r.status); i++) {
        await sleep(500);
        r = (await req('GET', `/api/releases/${release.body.id}`, h())).body;
      }
      expect(r.status, r.error).toBe('completed');
      // Swarm ran the replicas as services spread over the members: at least one on a member
      // other than the manager, so the overlay (not a shared engine) carried its Redis traffic.
      const services = (
        await dk(
          managerHost,
          'service',
          'ls',
          '-q',
          '--filter',
          `label=selfdevop.service=${serviceId}`,
        )
      )
        .split('\n')
        .filter(Boolean);
      expect(services).toHaveLength(2);
      const onMembers = new Set<string>();
      for (const s of services)
        for (const n of (
          await dk(
            managerHost,
            'service',
            'ps',
            '-f',
            'desired-state=running',
            '--format',
            '{{.Node}}',
            s,
          )
        ).split('\n'))
          if (n) onMembers.add(n);
      expect(
        [...onMembers].some((n) => n !== 'sdo-node7'),
        [...onMembers].join(', '),
      ).toBe(true);

      // A backup, and its drill starting the app against the restored copy, on the manager.
      const backup = await req('POST', `/api/data-services/${redis.id}/backups`, h());
      expect(backup.status, backup.text).toBe(202);
      let b: BackupView | undefined;
      for (let i = 0; i < 400; i++) {
        const list = await req('GET', `/api/data-services/${redis.id}/backups`, h());
        b = (list.body.items as BackupView[]).find((x) => x.id === backup.body.id);
        if (b?.status === 'failed' || b?.drillStatus === 'passed' || b?.drillStatus === 'failed')
          break;
        await sleep(500);
      }
      expect(b?.status, b?.error ?? '').toBe('completed');
      expect(b?.drillStatus, b?.drillError ?? '').toBe('passed');
      const events = await req(
        'GET',
        `/api/audit-events?action=drill.passed&targetId=${redis.id}`,
        h(),
      );
      expect(events.body.items[0]?.data).toMatchObject({ backupId: b!.id, apps: ['web'] });
      // Nothing the drill started is left on the manager.
      expect(
        await dk(
          managerHost,
          'ps',
          '-a',
          '-q',
          '--filter',
          `label=selfdevop.data-service=${redis.id}`,
          '--filter',
          'label=selfdevop.role=data-drill',
        ),
      ).toBe('');
      expect(
        (await dk(managerHost, 'network', 'ls', '--format', '{{.Name}}')).split('\n'),
      ).not.toContain(drillNetworkName(b!.id));
    }, 600_000);

    it('deletes it with volume=remove: its container and volume leave the manager', async () => {
      expect(redis, 'the first test made the data service').toBeDefined();
      const unlink = await req('DELETE', `/api/data-services/${redis.id}/links/${linkId}`, h());
      expect(unlink.status, unlink.text).toBe(204);
      const del = await req(
        'DELETE',
        `/api/data-services/${redis.id}?confirm=${redis.name}&volume=remove`,
        h(),
      );
      expect(del.status, del.text).toBe(202);
      let status = 0;
      for (let i = 0; i < 200 && status !== 404; i++) {
        status = (await req('GET', `/api/data-services/${redis.id}`, h())).status;
        if (status !== 404) await sleep(300);
      }
      expect(status).toBe(404);
      expect(await runtime.inspect(managerEngine, redis.host)).toBeNull();
      expect(
        await dk(managerHost, 'volume', 'ls', '-q', '--filter', `name=^${redis.volume}$`),
      ).toBe('');
      const audit = await req(
        'GET',
        `/api/audit-events?action=data_service.deleted&targetId=${redis.id}`,
        h(),
      );
      expect(audit.body.items[0]?.data).toMatchObject({ volume: 'removed' });
    }, 120_000);
  },
);
