/**
 * Caddy's admin API out of reach during a deploy: the release fails with a reason that
 * names Caddy and the admin address, its candidate container goes away, and traffic stays
 * where it was. Real Docker, real Caddy, the self-hosted control plane with its workers.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyAdmin } from '../../adapters/edge/caddy-admin.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

type ControlPlane = Awaited<ReturnType<typeof startSelfhostApi>>;

/** A control plane with in-process workers, one org, one local node and one service. */
async function startControlPlane(caddyAdminUrl: string, caddyServer: string) {
  const api = await startSelfhostApi({
    workers: true,
    caddyAdminUrl,
    caddyServer,
    queue: { pollingIntervalSeconds: 0.5, retryDelaySeconds: 0 },
    release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
  });
  const req: Requester = api.request;
  const s = await req('POST', '/api/auth/local/signup', {
    body: { email: 'edge@example.com', password: 'correct horse battery' },
  });
  const token = s.body.token as string;
  const orgId = s.body.org.id as string;
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
      image: 'selfdevop-test/app:v1',
      containerPort: 8080,
      healthcheckPath: '/health',
      health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
      warmSeconds: 600,
      drainSeconds: 1,
    },
  });
  expect(created.status, created.text).toBe(201);
  const service = { id: created.body.id as string, host: created.body.hosts[0].host as string };

  async function deploy(image: string) {
    const res = await req('POST', '/api/releases', {
      token,
      body: { serviceId: service.id, image },
    });
    expect(res.status, res.text).toBe(202);
    return settle(res.body.id as string);
  }

  async function settle(id: string, deadlineMs = 40_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await req('GET', `/api/releases/${id}`, { token });
      const body = r.body as {
        id: string;
        status: string;
        error: string | null;
        steps: { name: string; status: string; error: string | null }[];
      };
      if (['completed', 'failed', 'rolled_back'].includes(body.status)) return body;
      if (Date.now() > end)
        throw new Error(`release ${id} still ${body.status} after ${deadlineMs} ms`);
      await sleep(100);
    }
  }

  const logs = async (id: string) =>
    ((await req('GET', `/api/releases/${id}/logs`, { token })).body.items as { line: string }[])
      .map((l) => l.line)
      .join('\n');

  return { api, token, orgId, service, deploy, logs };
}

describe.skipIf(!ready)('a deploy while the Caddy admin API is unreachable', () => {
  const runtime = new DockerRuntime();
  const planes: ControlPlane[] = [];
  const orgs: string[] = [];
  let caddy: TestCaddy;

  const viaCaddy = (host: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get(
        {
          host: '127.0.0.1',
          port: caddy.httpPort,
          path: '/version',
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
      r.on('timeout', () => r.destroy(new Error('GET /version via Caddy timed out')));
      r.on('error', reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
  }, 120_000);

  afterAll(async () => {
    for (const p of planes) await p.close();
    await caddy?.stop();
    for (const orgId of orgs) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('fails a first release with the admin address when nothing listens there, and removes its candidate', async () => {
    // Port 1: outside the ephemeral range, so no server of a test running beside this one is
    // given it meanwhile (a port found free and let go was, once: the deploy then read an
    // empty answer, not a refusal).
    const adminUrl = 'http://127.0.0.1:1';
    const cp = await startControlPlane(adminUrl, 'selfdevop');
    planes.push(cp.api);
    orgs.push(cp.orgId);

    const release = await cp.deploy('selfdevop-test/app:v1');
    expect(release.status).toBe('failed');
    expect(release.error).toMatch(
      new RegExp(`^caddy admin unreachable: ${escape(adminUrl)}: .*ECONNREFUSED`),
    );
    expect(release.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'build:succeeded',
      'start_candidate:succeeded',
      'health_check:succeeded',
      'switch_traffic:failed',
    ]);
    // It was retried once (maxStepAttempts 2) before it gave up.
    expect(await cp.logs(release.id)).toMatch(/attempt 1 of 2, retrying/);
    expect(await runtime.list(dockerTarget, { 'selfdevop.release': release.id })).toEqual([]);
  }, 60_000);

  it('fails v2 with the reason when the admin API moves away, while Caddy keeps serving v1', async () => {
    const cp = await startControlPlane(caddy.adminUrl, caddy.serverName);
    planes.push(cp.api);
    orgs.push(cp.orgId);
    const v1 = await cp.deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error ?? '').toBe('completed');
    expect(await viaCaddy(cp.service.host)).toEqual({ status: 200, body: 'v1' });

    // The same configuration with the admin endpoint on another port: the HTTP server and
    // its routes stay as they are, the address the control plane knows answers no more.
    const current = await caddy.admin.request('GET', '/config/');
    expect(current.status).toBe(200);
    const config = JSON.parse(current.body) as { admin?: { listen?: string } };
    const movedAdmin = `127.0.0.1:${await freePort()}`;
    await caddy.admin
      .request('POST', '/load', {
        ...config,
        admin: { ...config.admin, listen: movedAdmin },
      })
      .catch(
        // The old admin endpoint may close the connection as it shuts itself down.
        () => undefined,
      );
    const moved = await new CaddyAdmin(`http://${movedAdmin}`).request('GET', '/config/');
    expect(moved.status).toBe(200);
    await expect(caddy.admin.request('GET', '/config/')).rejects.toThrow(/ECONNREFUSED/);

    const seen: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await viaCaddy(cp.service.host).catch((e: Error) => ({
          status: 0,
          body: e.message,
        }));
        seen.push(`${r.status} ${r.body}`);
        await sleep(20);
      }
    })();
    const v2 = await cp.deploy('selfdevop-test/app:v2');
    polling = false;
    await poller;

    expect(v2.status).toBe('failed');
    expect(v2.error).toMatch(
      new RegExp(`^caddy admin unreachable: ${escape(caddy.adminUrl)}: .*ECONNREFUSED`),
    );
    expect(v2.steps.find((s) => s.name === 'switch_traffic')).toMatchObject({ status: 'failed' });
    expect(seen.length).toBeGreaterThan(5);
    expect(new Set(seen)).toEqual(new Set(['200 v1']));
    expect(await viaCaddy(cp.service.host)).toEqual({ status: 200, body: 'v1' });
    expect(await runtime.list(dockerTarget, { 'selfdevop.release': v2.id })).toEqual([]);
    expect(
      (await runtime.list(dockerTarget, { 'selfdevop.release': v1.id })).map((c) => c.state),
    ).toEqual(['running']);
  }, 90_000);
});
