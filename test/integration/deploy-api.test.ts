/**
 * Deploys for real through the public API: the self-hosted control plane with its
 * workers, a real Docker Engine running the offline test images, and a real Caddy in
 * front. Traffic is checked through Caddy with each service's default host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('deploying through the API onto Docker behind Caddy', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;

  async function createService(name: string, extra: Record<string, unknown> = {}) {
    const res = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name,
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        warmSeconds: 600,
        drainSeconds: 5,
        ...extra,
      },
    });
    expect(res.status, res.text).toBe(201);
    return { id: res.body.id as string, host: res.body.hosts[0].host as string };
  }

  async function deploy(serviceId: string, image: string, extra: Record<string, unknown> = {}) {
    const res = await req('POST', '/api/releases', { token, body: { serviceId, image, ...extra } });
    expect(res.status, res.text).toBe(202);
    expect(res.body.status).toBe('queued');
    return res.body.id as string;
  }

  async function settle(releaseId: string, deadlineMs = 40_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await req('GET', `/api/releases/${releaseId}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end)
        throw new Error(`release ${releaseId} still ${r.body.status} after ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const viaCaddy = (host: string, path = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      import('node:http').then(({ default: http }) => {
        const r = http.get(
          { host: '127.0.0.1', port: caddy.httpPort, path, headers: { host }, agent: false },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
          },
        );
        r.on('error', reject);
      }, reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
      // A second org registers an engine on loopback below, which only operators may.
      operatorEmails: ['nodocker@example.com'],
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'deployer@example.com', password: 'correct horse battery' },
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

  it('deploys v1, then v2 with no gap, and records every step', async () => {
    const web = await createService('web');
    await req('POST', `/api/services/${web.id}/secrets`, {
      token,
      body: { name: 'SECRET_TOKEN', value: 's3cr3t-value' },
    });
    const v1 = await settle(await deploy(web.id, 'selfdevop-test/app:v1', { gitSha: 'abc1234' }));
    expect(v1.status, v1.error).toBe('completed');
    expect(v1.imageDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(v1.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual([
      'build:succeeded',
      'start_candidate:succeeded',
      'health_check:succeeded',
      'switch_traffic:succeeded',
      'complete:succeeded',
    ]);
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'v1' });
    expect((await viaCaddy(web.host, '/env/SECRET_TOKEN')).body).toBe('s3cr3t-value');

    // Traffic keeps flowing through the switch: poll Caddy while v2 deploys.
    const seen: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) seen.push((await viaCaddy(web.host)).status);
    })();
    const v2 = await settle(await deploy(web.id, 'selfdevop-test/app:v2'));
    polling = false;
    await poller;
    expect(v2.status, v2.error).toBe('completed');
    expect(v2.previousReleaseId).toBe(v1.id);
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'v2' });
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.filter((s) => s !== 200)).toEqual([]);

    const logs = await req('GET', `/api/releases/${v2.id}/logs`, { token });
    expect(logs.body.items.length).toBeGreaterThan(0);
    expect(logs.text).not.toContain('s3cr3t-value');
    const audit = await req('GET', '/api/audit-events?action=release.completed&limit=200', {
      token,
    });
    expect(audit.body.items.map((e: { targetId: string }) => e.targetId)).toEqual(
      expect.arrayContaining([v1.id, v2.id]),
    );

    // Manual rollback to the warm v1 container.
    const rb = await req('POST', `/api/releases/${v2.id}/rollback`, { token });
    expect(rb.status, rb.text).toBe(202);
    expect(rb.body.path).toBe('warm');
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'v1' });
    expect((await req('GET', `/api/releases/${v2.id}`, { token })).body.status).toBe('rolled_back');
    expect((await req('POST', `/api/releases/${v2.id}/rollback`, { token })).status).toBe(409);
  }, 120_000);

  it('refuses a second release of a service environment while one is in flight', async () => {
    const svc = await createService('busy', { image: 'selfdevop-test/app:slow' });
    const first = await deploy(svc.id, 'selfdevop-test/app:slow');
    const second = await req('POST', '/api/releases', {
      token,
      body: { serviceId: svc.id, image: 'selfdevop-test/app:v1' },
    });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('release_in_flight');
    expect((await settle(first)).status).toBe('completed');
  }, 60_000);

  it('rolls back a release whose health check fails, and v1 keeps serving', async () => {
    const svc = await createService('fragile');
    expect((await settle(await deploy(svc.id, 'selfdevop-test/app:v1'))).status).toBe('completed');
    const bad = await settle(await deploy(svc.id, 'selfdevop-test/app:unhealthy'));
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/health/);
    expect(bad.steps.find((s: { name: string }) => s.name === 'health_check')).toMatchObject({
      status: 'failed',
    });
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'v1' });
    const leftovers = await import('../../adapters/runtime/docker.ts').then(({ DockerRuntime }) =>
      new DockerRuntime().list(
        { dockerHost: 'unix:///var/run/docker.sock' },
        { 'selfdevop.release': bad.id },
      ),
    );
    expect(leftovers).toEqual([]);
  }, 60_000);

  it('blocks a release whose migration fails, with its output in the release log', async () => {
    const svc = await createService('migrating', { migrateCommand: '/bin/migrate' });
    expect((await settle(await deploy(svc.id, 'selfdevop-test/app:migrate-ok'))).status).toBe(
      'completed',
    );
    const before = (await viaCaddy(svc.host)).body;
    const bad = await settle(await deploy(svc.id, 'selfdevop-test/app:migrate-fail'));
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/code 3/);
    const logs = await req('GET', `/api/releases/${bad.id}/logs`, { token });
    expect(logs.body.items.map((l: { line: string }) => l.line).join('\n')).toMatch(/migrat/i);
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: before });
  }, 60_000);

  it('replaces in place with the replace strategy', async () => {
    const svc = await createService('inplace', { strategy: 'replace' });
    expect((await settle(await deploy(svc.id, 'selfdevop-test/app:v1'))).status).toBe('completed');
    expect((await settle(await deploy(svc.id, 'selfdevop-test/app:v2'))).status).toBe('completed');
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'v2' });
  }, 60_000);

  it('streams the release log live over server-sent events until the release ends', async () => {
    const svc = await createService('streamed');
    const id = await deploy(svc.id, 'selfdevop-test/app:v1');
    const res = await fetch(`${api.url}/api/releases/${id}/logs`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const text = await res.text();
    expect(text).toContain('event: log');
    expect(text).toContain('event: status');
    expect(text).toMatch(/event: end\ndata: \{"status":"completed"\}/);
  }, 60_000);

  it("fails a release with the reason when the node's Docker Engine is unreachable", async () => {
    const other = await req('POST', '/api/auth/local/signup', {
      body: { email: 'nodocker@example.com', password: 'correct horse battery' },
    });
    const t = other.body.token;
    const p = (await req('POST', '/api/projects', { token: t, body: { name: 'p' } })).body.id;
    await req('POST', '/api/nodes', {
      token: t,
      body: { name: 'gone', dockerHost: 'tcp://127.0.0.1:1', address: '127.0.0.1' },
    });
    const svc = await req('POST', '/api/services', {
      token: t,
      body: {
        projectId: p,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    const rel = await req('POST', '/api/releases', {
      token: t,
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:v1' },
    });
    const end = Date.now() + 40_000;
    let r = await req('GET', `/api/releases/${rel.body.id}`, { token: t });
    while (r.body.status !== 'failed' && Date.now() < end) {
      await new Promise((x) => setTimeout(x, 200));
      r = await req('GET', `/api/releases/${rel.body.id}`, { token: t });
    }
    expect(r.body.status).toBe('failed');
    expect(r.body.error).toMatch(/docker unreachable.*127\.0\.0\.1:1/);
  }, 60_000);
});
