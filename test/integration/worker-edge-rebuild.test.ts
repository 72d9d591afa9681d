/**
 * The self-hosted worker process as Compose runs it (functions/selfhost/worker.ts, real
 * PostgreSQL and Caddy): at start it puts the control route and every live route into a
 * Caddy that has none, and when Caddy loses its config again it puts them back within
 * EDGE_REBUILD_SECONDS, with no deploy.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl } from '../../adapters/db/postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { defaultHosts } from '../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import { available } from '../support/services.ts';

const workerScript = fileURLToPath(new URL('../../functions/selfhost/worker.ts', import.meta.url));
const at = '2026-01-01T00:00:00.000Z';

describe.skipIf(!(await available('caddy')))(
  'the worker rebuilds a Caddy that lost its config',
  () => {
    let caddy: TestCaddy;
    let db: Awaited<ReturnType<typeof createTestDatabase>>;
    let dir: string;
    let upstream: http.Server;
    let control: http.Server;
    let worker: ChildProcess | undefined;
    let output = '';
    let host: string;

    const viaCaddy = (hostHeader: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = http.get(
          {
            host: '127.0.0.1',
            port: caddy.httpPort,
            path: '/',
            headers: { host: hostHeader },
            agent: false,
            timeout: 5_000,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        r.on('timeout', () => r.destroy(new Error('timed out')));
        r.on('error', reject);
      });

    async function servedWithin(hostHeader: string, body: string, ms: number): Promise<number> {
      const start = Date.now();
      for (;;) {
        const got = await viaCaddy(hostHeader).catch(() => null);
        if (got?.status === 200 && got.body === body) return Date.now() - start;
        if (Date.now() - start > ms)
          throw new Error(
            `${hostHeader} answered ${JSON.stringify(got)} after ${ms} ms; worker output:\n${output}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }

    const listen = async (body: string) => {
      const server = http.createServer((_req, res) => res.end(body));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return server;
    };

    beforeAll(async () => {
      caddy = await startCaddy();
      db = await createTestDatabase('worker_edge');
      await migrate(db.url);
      dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-worker-edge-'));
      await ensureKeyFile(path.join(dir, 'encryption.key'));
      upstream = await listen('app v1');
      control = await listen('control api');
      // A service whose release completed before Caddy lost everything.
      const pool = fromDatabaseUrl(db.url);
      const store = new PostgresStore(pool);
      const service = {
        id: 'svc_00000000worker',
        orgId: 'org_w',
        projectId: 'prj_w',
        name: 'web',
        image: 'shop/web:1',
        containerPort: 8080,
        kind: 'web' as const,
        workerHealth: null,
        healthcheckPath: '/health',
        migrateCommand: null,
        strategy: 'blue_green' as const,
        replicas: 1,
        env: {},
        memoryMb: null,
        cpus: null,
        health: { intervalMs: 1000, timeoutMs: 2000, successes: 1, deadlineMs: 30_000 },
        warmSeconds: 300,
        drainSeconds: 5,
        sticky: false,
        git: null,
        gitCredentialKind: null,
        gitPublicKey: null,
        sealedGitCredential: null,
        sealedBuildSecrets: {},
        createdAt: at,
      };
      await store.withOrg('org_w', async (r) => {
        await r.orgs.insert({ id: 'org_w', name: 'w', createdAt: at });
        await r.projects.insert({ id: 'prj_w', orgId: 'org_w', name: 'shop', createdAt: at });
        await r.environments.insert({
          id: 'env_w',
          orgId: 'org_w',
          projectId: 'prj_w',
          name: 'production',
          createdAt: at,
        });
        await r.services.insert(service);
        await r.releases.insert({
          id: 'rel_w1',
          orgId: 'org_w',
          serviceId: service.id,
          environmentId: 'env_w',
          image: 'shop/web:1',
          imageDigest: null,
          gitSha: null,
          gitRef: null,
          status: 'completed',
          previousReleaseId: null,
          nodeId: null,
          containerId: null,
          upstream: `127.0.0.1:${(upstream.address() as AddressInfo).port}`,
          error: null,
          createdAt: at,
          updatedAt: at,
          finishedAt: at,
        });
      });
      await pool.close();
      host = defaultHosts({
        service,
        environment: { name: 'production' },
        edgeDomain: 'apps.test',
      })[0]!;
    }, 120_000);

    afterAll(async () => {
      if (worker && worker.exitCode === null) {
        const exited = new Promise((resolve) => worker!.once('exit', resolve));
        worker.kill('SIGTERM');
        const killer = setTimeout(() => worker!.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      upstream?.close();
      control?.close();
      await caddy?.stop();
      await db?.drop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('serves the app and the control API again at start and after a later loss', async () => {
      expect(await viaCaddy(host)).toEqual({ status: 200, body: '' });
      worker = spawn(process.execPath, [workerScript], {
        env: {
          PATH: process.env.PATH,
          DATABASE_URL: db.url,
          JWT_SECRET: 'x'.repeat(40),
          ENCRYPTION_KEY_FILE: path.join(dir, 'encryption.key'),
          WORKER_HEARTBEAT_FILE: path.join(dir, 'heartbeat'),
          CADDY_ADMIN_URL: caddy.adminUrl,
          CADDY_SERVER: caddy.serverName,
          EDGE_HTTP_LISTEN: `127.0.0.1:${caddy.httpPort}`,
          EDGE_DOMAIN: 'apps.test',
          EDGE_UPSTREAMS: 'static',
          EDGE_REBUILD_SECONDS: '5',
          CONTROL_UPSTREAM: `127.0.0.1:${(control.address() as AddressInfo).port}`,
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      worker.stdout!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8000)));
      worker.stderr!.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-8000)));

      await servedWithin(host, 'app v1', 30_000);
      await servedWithin('anything.test', 'control api', 1_000);

      // The autosave is lost again while the worker runs.
      await caddy.reset();
      expect(await viaCaddy(host)).toEqual({ status: 200, body: '' });
      await servedWithin(host, 'app v1', 12_000);
      await servedWithin('anything.test', 'control api', 1_000);
      expect(output).toMatch(/restored from the database/);
    }, 90_000);
  },
);
