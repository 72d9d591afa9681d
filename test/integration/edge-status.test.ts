/**
 * The edge status for real: the self-hosted control plane with its workers, a real Docker
 * Engine and a real Caddy. An org sees its own routes (expected, present, missing), the last
 * rebuild from the database, its domains' certificates, and whether the edge answers —
 * never another org's routes, nor the edge's internal address.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { edgeRebuildJob } from '../../core/queues.ts';
import type { SelfhostSystem } from '../../adapters/modes/selfhost.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('edge status', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string; databaseUrl: string; system: SelfhostSystem };
  let token: string;
  let otherToken: string;
  let orgId: string;
  let routeId: string;

  const status = async (t = token) => {
    const r = await api.request('GET', '/api/edge', { token: t });
    expect(r.status, r.text).toBe(200);
    return r;
  };

  /** The edge-rebuild job as the worker runs it every minute. */
  // The workers' own `edge-rebuild` job, run when the test says (its schedule is dropped below).
  const runRebuild = () => api.system.rebuildEdge();

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, '..', '..', 'cli', 'main.ts'), ...args],
        {
          env: {
            ...process.env,
            SELFDEVOP_URL: api.url,
            SELFDEVOP_TOKEN: token,
            XDG_CONFIG_HOME: '/nonexistent',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout });
      });
    });

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2 },
    });
    // The test counts what one rebuild restored; the job firing on the minute between the
    // reset and that run would restore first.
    const boss = new pg.Client({ connectionString: api.databaseUrl });
    await boss.connect();
    try {
      await boss.query('delete from pgboss.schedule where name = $1', [edgeRebuildJob]);
    } finally {
      await boss.end();
    }
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'edge@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    otherToken = (
      await api.request('POST', '/api/auth/local/signup', {
        body: { email: 'edge-other@example.com', password: 'correct horse battery' },
      })
    ).body.token;
    const projectId = (
      await api.request('POST', '/api/projects', { token, body: { name: 'edgy' } })
    ).body.id;
    await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const rel = await api.request('POST', '/api/releases', {
      token,
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:v1' },
    });
    const end = Date.now() + 40_000;
    for (;;) {
      const r = await api.request('GET', `/api/releases/${rel.body.id}`, { token });
      if (r.body.status === 'completed') break;
      if (['failed', 'rolled_back'].includes(r.body.status) || Date.now() > end)
        throw new Error(`release ended ${r.body.status}: ${r.body.error}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const envId = (await api.request('GET', `/api/projects/${projectId}`, { token })).body
      .environments[0].id;
    routeId = `sdo-${svc.body.id}-${envId}`;
    // A custom domain the domain worker already took to active (DNS is out of this test's reach).
    const domain = await api.request('POST', '/api/domains', {
      token,
      body: { serviceId: svc.body.id, hostname: 'shop.edge-status.test' },
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
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it("shows the org's route present, the last rebuild and its domain's certificate", async () => {
    const { body } = await status();
    expect(body.reachable).toBe(true);
    expect(body.error).toBeNull();
    expect(body.version).toBeNull();
    expect(body.routes).toEqual({ expected: 1, present: 1, missing: [] });
    // The workers ran the job once at start, before anything was deployed: nothing to restore.
    expect(body.lastRebuild).toMatchObject({ restoredRoutes: 0, restoredHosts: 0 });
    expect(body.certificates).toEqual([
      expect.objectContaining({ hostname: 'shop.edge-status.test', status: expect.any(String) }),
    ]);
    // No certificate was issued here (no ACME CA in this test): the page says so, not "active".
    expect(body.certificates[0].status).not.toBe('active');
    expect(body.certificates[0].detail).toEqual(expect.any(String));
  });

  it('names a route the edge lost, and shows it back after the rebuild job', async () => {
    const before = Date.now();
    await caddy.reset();
    const lost = (await status()).body;
    expect(lost.routes).toEqual({ expected: 1, present: 0, missing: [routeId] });
    const said = await cli(['edge']);
    expect(said.code).toBe(1);
    expect(said.stdout).toContain(`routes: 0 of 1 present; missing ${routeId}`);

    await runRebuild();
    const back = (await status()).body;
    expect(back.routes).toEqual({ expected: 1, present: 1, missing: [] });
    expect(back.lastRebuild.restoredRoutes).toBe(1);
    expect(Date.parse(back.lastRebuild.at)).toBeGreaterThanOrEqual(before - 1000);
    const page = await fetch(`${api.url}/dashboard/edge`, {
      headers: { cookie: `sdo_session=${token}` },
    });
    const html = (await page.text()).replace(/\s+/g, ' ');
    expect(html).toContain('1 of 1 present');
    expect(html).toContain('shop.edge-status.test');
    expect(html).toContain('restored 1 routes');
  }, 60_000);

  it("never shows another org's routes or domains", async () => {
    const { body } = await status(otherToken);
    expect(body.routes).toEqual({ expected: 0, present: 0, missing: [] });
    expect(body.certificates).toEqual([]);
    expect(JSON.stringify(body)).not.toContain(routeId);
  });

  it('says the edge is not reachable, without its internal address', async () => {
    await caddy.stop();
    const { body } = await status();
    expect(body.reachable).toBe(false);
    expect(body.error).toBe("the edge's admin API could not be reached");
    expect(JSON.stringify(body)).not.toContain(new URL(caddy.adminUrl).port);
    expect(body.routes).toEqual({ expected: 1, present: 0, missing: [] });
  });
});
