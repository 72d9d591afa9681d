/**
 * A Caddy that lost its config (autosave gone, config reset) is rebuilt from the database:
 * services deployed for real through the self-hosted control plane (real Docker, real Caddy,
 * real PostgreSQL, dynamic upstreams as deployed), Caddy's config wiped back to the base
 * config, then the worker's rebuild puts back the control route, every live route and its
 * routed custom hosts, and requests are served again without a deploy.
 */
import http from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rebuildEdgeRoutes } from '../../core/edge/live-routes.ts';
import { edgeRebuildJob } from '../../core/queues.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('rebuilding the edge from the database', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>> & ApiHarness;
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;

  const viaCaddy = (host: string, path = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get(
        {
          host: '127.0.0.1',
          port: caddy.httpPort,
          path,
          headers: { host },
          agent: false,
          timeout: 5_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
        },
      );
      r.on('timeout', () => r.destroy(new Error(`GET ${host}${path} via Caddy timed out`)));
      r.on('error', reject);
    });

  async function deployed(name: string) {
    const s = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name,
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 1, deadlineMs: 8_000, timeoutMs: 1_000 },
        warmSeconds: 600,
        drainSeconds: 5,
      },
    });
    expect(s.status, s.text).toBe(201);
    const r = await req('POST', '/api/releases', {
      token,
      body: { serviceId: s.body.id, image: 'selfdevop-test/app:v1' },
    });
    expect(r.status, r.text).toBe(202);
    const end = Date.now() + 40_000;
    for (;;) {
      const got = await req('GET', `/api/releases/${r.body.id}`, { token });
      if (got.body.status === 'completed') break;
      if (['failed', 'rolled_back'].includes(got.body.status) || Date.now() > end)
        throw new Error(`release ${r.body.id} is ${got.body.status}: ${got.body.error}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { id: s.body.id as string, host: s.body.hosts[0].host as string };
  }

  const rebuild = async () => {
    const control = await api.system.edge.reconcileControl({
      upstream: new URL(api.url).host,
      listen: { http: `127.0.0.1:${caddy.httpPort}`, https: '127.0.0.1:1' },
    });
    const restored = await rebuildEdgeRoutes({
      catalog: api.system.routeCatalog,
      edge: api.system.edge,
      edgeDomain: 'localhost',
    });
    return { control, restored };
  };

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
    });
    req = api.request;
    // This test runs the rebuild itself and counts what it restored; the workers' own
    // `edge-rebuild` job firing on the minute between the reset and that run would restore
    // first. Its schedule is dropped (the job is covered by test/selfhost/edge-rebuild-job.test.ts).
    const boss = new pg.Client({ connectionString: api.databaseUrl });
    await boss.connect();
    try {
      await boss.query('delete from pgboss.schedule where name = $1', [edgeRebuildJob]);
    } finally {
      await boss.end();
    }
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'rebuild@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('serves every service, its custom hosts and the control API again after Caddy lost its config', async () => {
    const web = await deployed('web');
    const shop = await deployed('shop');
    // A custom domain the domain worker already verified (DNS is out of this test's reach).
    const domain = await req('POST', '/api/domains', {
      token,
      body: { serviceId: shop.id, hostname: 'shop.rebuild.test' },
    });
    expect(domain.status, domain.text).toBe(201);
    const owner = new pg.Client({ connectionString: api.databaseUrl });
    await owner.connect();
    try {
      await owner.query(
        `update domains set status = 'active', dns_status = 'verified', tls_status = 'active' where id = $1`,
        [domain.body.id],
      );
    } finally {
      await owner.end();
    }
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'v1' });
    expect(await viaCaddy(shop.host)).toEqual({ status: 200, body: 'v1' });

    // The autosave is gone: Caddy starts from its base config, with no route at all, and
    // answers every request with its empty default response.
    await caddy.reset();
    const nothing = { status: 200, body: '' };
    expect(await viaCaddy(web.host)).toEqual(nothing);
    expect(await viaCaddy(shop.host)).toEqual(nothing);
    expect(await viaCaddy('anything.test', '/health')).toEqual(nothing);

    const first = await rebuild();
    expect(first.control).toEqual([`control route (any host) → ${new URL(api.url).host}`]);
    const webRoute = `sdo-${web.id}`;
    const shopRoute = `sdo-${shop.id}`;
    expect(first.restored.routes.sort()).toEqual(
      [expect.stringContaining(webRoute), expect.stringContaining(shopRoute)].sort(),
    );
    expect(first.restored.routes).toHaveLength(2);
    expect(first.restored.hosts).toEqual([]);

    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'v1' });
    expect(await viaCaddy(shop.host)).toEqual({ status: 200, body: 'v1' });
    expect(await viaCaddy('shop.rebuild.test')).toEqual({ status: 200, body: 'v1' });
    // The control route is the catch-all behind every app route.
    const health = await viaCaddy('anything.test', '/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });

    // Nothing is missing any more: a second run changes nothing.
    expect(await rebuild()).toEqual({ control: [], restored: { routes: [], hosts: [] } });
  }, 120_000);
});
