/**
 * The `edge-rebuild` job under the self-hosted composition (fromSelfhost, real PostgreSQL
 * and pg-boss, a real Caddy): the workers schedule it on pg-boss's cron, run it once at
 * start, and a message on its queue puts back a live route the edge lost (issue 11: the
 * job was missing from the self-hosted table because the route catalog was not passed).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl } from '../../adapters/db/postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { edgeRebuildJob } from '../../core/queues.ts';
import { defaultHosts } from '../../core/releases/plan.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import { available } from '../support/services.ts';

const at = '2026-01-01T00:00:00.000Z';

describe.skipIf(!(await available('caddy')))('the edge-rebuild job in self-hosted mode', () => {
  let caddy: TestCaddy;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let upstream: http.Server;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
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

  beforeAll(async () => {
    caddy = await startCaddy();
    db = await createTestDatabase('edge_job');
    await migrate(db.url);
    upstream = http.createServer((_req, res) => res.end('app v1'));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    // A service whose release completed: a live route the edge must serve.
    const pool = fromDatabaseUrl(db.url);
    const store = new PostgresStore(pool);
    const service = {
      id: 'svc_0000000edgejob',
      orgId: 'org_j',
      projectId: 'prj_j',
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
    await store.withOrg('org_j', async (r) => {
      await r.orgs.insert({ id: 'org_j', name: 'j', createdAt: at });
      await r.projects.insert({ id: 'prj_j', orgId: 'org_j', name: 'shop', createdAt: at });
      await r.environments.insert({
        id: 'env_j',
        orgId: 'org_j',
        projectId: 'prj_j',
        name: 'production',
        createdAt: at,
      });
      await r.services.insert(service);
      await r.releases.insert({
        id: 'rel_j1',
        orgId: 'org_j',
        serviceId: service.id,
        environmentId: 'env_j',
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
    // Static upstreams, as worker-edge-rebuild runs the worker: the route itself carries them.
    api = await startSelfhostApi({
      databaseUrl: db.url,
      workers: true,
      edgeDomain: 'apps.test',
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      edgeDns: undefined,
    });
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    upstream?.close();
    await caddy?.stop();
    await db?.drop();
  });

  it('is scheduled on pg-boss every minute', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query<{ name: string; key: string; cron: string }>(
        'select name, key, cron from pgboss.schedule where name = $1',
        [edgeRebuildJob],
      );
      expect(rows).toEqual([{ name: edgeRebuildJob, key: edgeRebuildJob, cron: '* * * * *' }]);
    } finally {
      await c.end();
    }
  });

  it('ran once when the workers started: the live route is served', async () => {
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'app v1' });
  });

  it('puts a lost route back when its message arrives through pg-boss', async () => {
    // The autosave is gone: the base config, no route at all.
    await caddy.reset();
    expect(await viaCaddy(host)).toEqual({ status: 200, body: '' });

    // What pg-boss's cron sends each minute, sent now instead of waiting for the minute.
    const id = await api.system.release.queue.send(edgeRebuildJob, {});
    expect(id).toEqual(expect.any(String));
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      let state = '';
      for (let i = 0; i < 300 && state !== 'completed' && state !== 'failed'; i += 1) {
        const { rows } = await c.query<{ state: string }>(
          'select state from pgboss.job where name = $1 and id = $2',
          [edgeRebuildJob, id],
        );
        state = rows[0]?.state ?? '';
        if (state !== 'completed') await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(state).toBe('completed');
    } finally {
      await c.end();
    }
    expect(await viaCaddy(host)).toEqual({ status: 200, body: 'app v1' });
    expect(api.logLines().join('\n')).toMatch(/restored from the database/);
    // For the edge status page: the run was recorded.
    expect(await api.system.release.store.edgeRebuilds?.last()).toMatchObject({
      at: expect.any(String),
    });
  }, 60_000);
});
