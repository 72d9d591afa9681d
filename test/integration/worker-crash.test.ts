/**
 * A release worker that dies mid-deploy never takes the app down. The control plane runs
 * here without workers; each release is taken by a worker process that SIGKILLs itself at
 * one operation of the engine (test/support/crash-worker.ts), leaving the release in one
 * status with its queue job held by a dead process. A fresh worker then picks the job up
 * once it expires, and the release must finish, while traffic through a real Caddy to a
 * real Docker Engine answers 200 throughout and no container is left behind.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { ReleaseStatus } from '../../core/models.ts';
import type { ContainerInfo } from '../../core/ports.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import {
  startWorkerProcess,
  stopAllWorkers,
  type CrashOperation,
  type CrashRecord,
  type WorkerSettings,
} from '../support/worker-process.ts';

const ready = (await available('docker')) && (await available('caddy'));

interface KillPoint {
  /** The status the release is left in when the worker dies. */
  leaves: ReleaseStatus;
  at: CrashOperation;
  when: 'before' | 'after' | 'during';
  what: string;
}

/** One per status a release passes through, plus the two that differ in what has happened. */
const killPoints: KillPoint[] = [
  {
    leaves: 'building',
    at: 'runtime.resolveImage',
    when: 'before',
    what: 'before the image is resolved',
  },
  {
    leaves: 'artifact_ready',
    at: 'runtime.start',
    when: 'after',
    what: 'after the candidate container started, before it is recorded',
  },
  {
    leaves: 'candidate_started',
    at: 'queue.send:release-steps:candidate_started',
    when: 'before',
    what: 'after moving to candidate_started, before the next step is queued',
  },
  {
    leaves: 'migrating',
    at: 'runtime.runOnce',
    when: 'during',
    what: 'while the migration container runs',
  },
  {
    leaves: 'health_validating',
    at: 'probe.check',
    when: 'before',
    what: 'before the first health probe',
  },
  {
    leaves: 'health_validating',
    at: 'edge.put',
    when: 'after',
    what: 'after Caddy switched to the candidate, before the switch is recorded',
  },
  {
    leaves: 'traffic_shifted',
    at: 'queue.send:release-steps:traffic_shifted',
    when: 'before',
    what: 'after moving to traffic_shifted, before the complete step is queued',
  },
  {
    leaves: 'completed',
    at: 'queue.send:release-retire',
    when: 'before',
    what: 'after completing, before the replaced release is scheduled to retire',
  },
  {
    leaves: 'completed',
    at: 'runtime.stop',
    when: 'after',
    what: 'while retiring the replaced release: stopped, not removed',
  },
];

const images = { v1: 'selfdevop-test/app:v1', v2: 'selfdevop-test/app:v2' } as const;
type Version = keyof typeof images;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('a worker killed mid-deploy', () => {
  const runtime = new DockerRuntime();
  // Short expiry so a job held by a killed worker comes back within seconds; still well
  // above the longest step here (a migration run), so a live worker's job never expires.
  const queue = {
    pollingIntervalSeconds: 0.5,
    retryDelaySeconds: 0,
    expireInSeconds: 5,
    superviseIntervalSeconds: 1,
  };
  const release = { maxStepAttempts: 3, migrationTimeoutMs: 20_000 };
  let dir: string;
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let settings: WorkerSettings;
  let req: Requester;
  let token: string;
  let orgId: string;
  let service: { id: string; host: string };
  let serving: { id: string; version: Version };

  const traffic = { ok: 0, failures: [] as string[], versions: new Map<string, number>() };
  /** Per release: most web containers seen at once; per sample, running web containers of the service. */
  const containers = {
    webPerRelease: new Map<string, number>(),
    maxRunningWeb: 0,
    errors: [] as string[],
  };
  let watching = true;
  let watchers: Promise<void>[] = [];

  const viaCaddy = (host: string, urlPath = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get(
        {
          host: '127.0.0.1',
          port: caddy.httpPort,
          path: urlPath,
          headers: { host },
          agent: false,
          timeout: 3000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
        },
      );
      r.on('timeout', () => r.destroy(new Error(`GET ${urlPath} via Caddy timed out`)));
      r.on('error', reject);
    });

  async function getRelease(id: string) {
    const r = await req('GET', `/api/releases/${id}`, { token });
    expect(r.status, r.text).toBe(200);
    return r.body as {
      id: string;
      status: ReleaseStatus;
      error: string | null;
      upstream: string | null;
      steps: { name: string; status: string; attempt: number }[];
    };
  }

  async function settle(id: string, deadlineMs = 30_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await getRelease(id);
      if (['completed', 'failed', 'rolled_back'].includes(r.status)) return r;
      if (Date.now() > end) {
        // A release left behind by a dead worker moves again only once its job expires and the
        // queue's supervisor redelivers it: say what the queue reported, not only the status.
        const queueErrors = api
          .logLines()
          .filter((l) => l.includes('"level":"error"'))
          .slice(-3);
        throw new Error(
          `release ${id} still ${r.status} after ${deadlineMs} ms; last errors of the control plane:\n${queueErrors.join('\n')}`,
        );
      }
      await sleep(100);
    }
  }

  async function deploy(version: Version) {
    const res = await req('POST', '/api/releases', {
      token,
      body: { serviceId: service.id, image: images[version] },
    });
    expect(res.status, res.text).toBe(202);
    return res.body.id as string;
  }

  const serviceContainers = () => runtime.list(dockerTarget, { 'selfdevop.service': service.id });
  const releaseOf = (c: ContainerInfo) => c.labels['selfdevop.release'];

  async function waitUntilGone(releaseId: string, deadlineMs = 20_000): Promise<ContainerInfo[]> {
    const end = Date.now() + deadlineMs;
    let left = await runtime.list(dockerTarget, { 'selfdevop.release': releaseId });
    while (left.length > 0 && Date.now() < end) {
      await sleep(200);
      left = await runtime.list(dockerTarget, { 'selfdevop.release': releaseId });
    }
    return left;
  }

  /** Traffic through Caddy, one request at a time, until the file ends. */
  async function pollTraffic(): Promise<void> {
    while (watching) {
      try {
        const r = await viaCaddy(service.host);
        if (r.status === 200) {
          traffic.ok++;
          traffic.versions.set(r.body, (traffic.versions.get(r.body) ?? 0) + 1);
        } else
          traffic.failures.push(`${new Date().toISOString()} ${r.status} ${r.body.slice(0, 200)}`);
      } catch (e) {
        traffic.failures.push(
          `${new Date().toISOString()} ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      await sleep(20);
    }
  }

  /** Samples the service's containers: at most one per release, at most blue and green running. */
  async function watchContainers(): Promise<void> {
    while (watching) {
      try {
        const list = await serviceContainers();
        const web = list.filter((c) => c.labels['selfdevop.role'] === 'web');
        const perRelease = new Map<string, number>();
        for (const c of web)
          perRelease.set(releaseOf(c)!, (perRelease.get(releaseOf(c)!) ?? 0) + 1);
        for (const [id, n] of perRelease)
          containers.webPerRelease.set(id, Math.max(n, containers.webPerRelease.get(id) ?? 0));
        containers.maxRunningWeb = Math.max(
          containers.maxRunningWeb,
          web.filter((c) => c.state === 'running').length,
        );
      } catch (e) {
        containers.errors.push(e instanceof Error ? e.message : String(e));
      }
      await sleep(250);
    }
  }

  beforeAll(async () => {
    await ensureTestImages();
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-crash-'));
    caddy = await startCaddy();
    // The API and the worker processes share the key file and JWT secret, as a deployment does.
    const encryptionKeyFile = path.join(dir, 'encryption.key');
    await ensureKeyFile(encryptionKeyFile);
    const jwtSecret = randomBytes(32).toString('base64url');
    const shared = {
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      encryptionKeyFile,
      jwtSecret,
      queue,
      release,
    };
    api = await startSelfhostApi(shared);
    settings = {
      ...shared,
      // Worker processes use the API process's DNS server, as workers beside an API do.
      edgeDns: { address: api.system.edgeDnsAddress!, refreshMs: 100 },
      databaseUrl: api.databaseUrl,
      signupMode: 'open',
      edgeDomain: 'localhost',
      maxBodyBytes: 256 * 1024,
      dbPoolMax: 3,
      version: 'test',
      workerConcurrency: 2,
    };
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'crash@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body
      .id as string;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const created = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: images.v1,
        containerPort: 8080,
        healthcheckPath: '/health',
        // A migrate command, so every release passes through `migrating`.
        migrateCommand: '/bin/migrate',
        health: { intervalMs: 100, successes: 2, deadlineMs: 10_000, timeoutMs: 1_000 },
        // Retired a second after a switch, so each round ends with nothing but the new release.
        warmSeconds: 1,
        drainSeconds: 1,
      },
    });
    expect(created.status, created.text).toBe(201);
    service = { id: created.body.id, host: created.body.hosts[0].host };
    // A secret the workers must open with the shared key for every candidate.
    const secret = await req('POST', `/api/services/${service.id}/secrets`, {
      token,
      body: { name: 'SECRET_TOKEN', value: 'kept-across-crashes' },
    });
    expect(secret.status, secret.text).toBeLessThan(300);

    const worker = await startWorkerProcess(settings);
    const v1 = await settle(await deploy('v1'));
    await worker.stop();
    expect(v1.status, v1.error ?? worker.output()).toBe('completed');
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
    serving = { id: v1.id, version: 'v1' };
    watchers = [pollTraffic(), watchContainers()];
  }, 120_000);

  afterAll(async () => {
    watching = false;
    await Promise.all(watchers);
    await stopAllWorkers();
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const [i, kp] of killPoints.entries()) {
    it(`resumes a release whose worker died in ${kp.leaves}, ${kp.what}`, async () => {
      const marker = path.join(dir, `crash-${i}.json`);
      const before = { ok: traffic.ok, failures: traffic.failures.length };
      const previous = serving;
      const next: Version = previous.version === 'v1' ? 'v2' : 'v1';

      const crashing = await startWorkerProcess(settings, { at: kp.at, when: kp.when, marker });
      const id = await deploy(next);
      const exit = await crashing.waitForExit(30_000);
      expect(exit, crashing.output()).toEqual({ code: null, signal: 'SIGKILL' });
      const record = JSON.parse(await readFile(marker, 'utf8')) as CrashRecord;
      expect(record.at).toBe(kp.at);

      // The state the dead worker left, before anyone picks the release up again.
      const stuck = await getRelease(id);
      expect(stuck.status, stuck.error ?? '').toBe(kp.leaves);
      const candidate = await runtime.list(dockerTarget, { 'selfdevop.release': id });
      const leftBehind = await runtime.list(dockerTarget, { 'selfdevop.release': previous.id });
      switch (`${kp.at}/${kp.when}`) {
        case 'runtime.start/after':
          expect(candidate.map((c) => c.state)).toEqual(['running']);
          break;
        case 'runtime.runOnce/during':
          expect(candidate.map((c) => c.labels['selfdevop.role']).sort()).toEqual([
            'migrate',
            'web',
          ]);
          break;
        case 'edge.put/after':
          // The route already points at the candidate though the release does not say so.
          expect(await viaCaddy(service.host)).toEqual({ status: 200, body: next });
          break;
        case 'queue.send:release-retire/before':
          expect(leftBehind.map((c) => c.state)).toEqual(['running']);
          break;
        case 'runtime.stop/after':
          expect(leftBehind.map((c) => c.state)).toEqual(['exited']);
          break;
      }
      expect(await viaCaddy(service.host)).toMatchObject({ status: 200 });

      const worker = await startWorkerProcess(settings);
      const done = await settle(id);
      expect(done.status, `${done.error}\n${worker.output()}`).toBe('completed');
      expect(
        done.steps.every((s) => s.status === 'succeeded'),
        JSON.stringify(done.steps),
      ).toBe(true);
      expect(await viaCaddy(service.host)).toEqual({ status: 200, body: next });
      expect((await viaCaddy(service.host, '/env/SECRET_TOKEN')).body).toBe('kept-across-crashes');
      // The replaced release retires after its warm second; then the new one is all there is.
      expect(await waitUntilGone(previous.id)).toEqual([]);
      await worker.stop();
      const left = await serviceContainers();
      expect(
        left.map((c) => ({
          release: releaseOf(c),
          role: c.labels['selfdevop.role'],
          state: c.state,
        })),
      ).toEqual([{ release: id, role: 'web', state: 'running' }]);
      expect(containers.webPerRelease.get(id) ?? 1).toBe(1);
      expect(containers.maxRunningWeb).toBeLessThanOrEqual(2);
      expect(existsSync(marker)).toBe(true);

      expect(traffic.failures.slice(before.failures)).toEqual([]);
      expect(traffic.ok).toBeGreaterThan(before.ok);
      serving = { id, version: next };
    }, 90_000);
  }

  it('served every request through Caddy with 200, from v1 or v2 only', () => {
    expect(traffic.failures).toEqual([]);
    expect([...traffic.versions.keys()].sort()).toEqual(['v1', 'v2']);
    expect(containers.errors).toEqual([]);
    expect([...containers.webPerRelease.values()].every((n) => n === 1)).toBe(true);
  });
});
