/**
 * Changing what runs, for real (issue 14): the self-hosted control plane with its workers,
 * the machine's Docker Engine and a real Caddy. A staging environment serves at its own
 * default host, promotion deploys staging's exact image to production, a redeploy starts
 * fresh containers of the same image, and deleting a service takes its route off Caddy and
 * its containers off the engine (through the `service-removals` queue).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { routeId } from '../../core/releases/plan.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import type { SelfhostSystem } from '../../adapters/modes/selfhost.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('changing, promoting and deleting services on Docker behind Caddy', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string; system: SelfhostSystem };
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;
  const runtime = new DockerRuntime();

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

  const containersOf = (serviceId: string) =>
    runtime.list(dockerTarget, { 'selfdevop.org': orgId, 'selfdevop.service': serviceId });

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
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'changer@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('serves staging at its own host, promotes its image to production, redeploys, then deletes', async () => {
    const staging = await req('POST', '/api/environments', {
      token,
      body: { projectId, name: 'staging' },
    });
    expect(staging.status, staging.text).toBe(201);
    const svc = await req('POST', '/api/services', {
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
    expect(svc.status, svc.text).toBe(201);
    const serviceId = svc.body.id as string;
    const hostOf = (env: string) =>
      (svc.body.hosts as { environment: string; host: string }[]).find(
        (h) => h.environment === env,
      )!.host;
    expect(hostOf('staging')).toMatch(/^web-staging-/);

    const toStaging = await req('POST', '/api/releases', {
      token,
      body: { serviceId, environment: 'staging', image: 'selfdevop-test/app:v2' },
    });
    expect(toStaging.status, toStaging.text).toBe(202);
    const stagingRelease = await settle(toStaging.body.id);
    expect(stagingRelease.status, stagingRelease.error).toBe('completed');
    expect(await viaCaddy(hostOf('staging'))).toEqual({ status: 200, body: 'v2' });
    // Nothing serves production yet.
    expect((await viaCaddy(hostOf('production'))).body).not.toBe('v2');

    const promoted = await req('POST', `/api/environments/${staging.body.id}/promote`, {
      token,
      body: { to: 'production' },
    });
    expect(promoted.status, promoted.text).toBe(202);
    expect(promoted.body.releases).toHaveLength(1);
    // The exact image staging runs: its digest, not the tag (which could have moved).
    expect(promoted.body.releases[0].image).toBe(stagingRelease.imageDigest);
    const production = await settle(promoted.body.releases[0].id);
    expect(production.status, production.error).toBe('completed');
    expect(production.imageDigest).toBe(stagingRelease.imageDigest);
    expect(await viaCaddy(hostOf('production'))).toEqual({ status: 200, body: 'v2' });

    // A change for the next release, then a one-click redeploy picks it up.
    const patched = await req('PATCH', `/api/services/${serviceId}`, {
      token,
      body: { env: { GREETING: 'changed' } },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.applies).toEqual({ env: 'next_release' });
    expect((await viaCaddy(hostOf('production'), '/env/GREETING')).body).not.toBe('changed');
    const redeploy = await req('POST', `/api/services/${serviceId}/redeploy`, {
      token,
      body: { environment: 'production' },
    });
    expect(redeploy.status, redeploy.text).toBe(202);
    const redeployed = await settle(redeploy.body.id);
    expect(redeployed.status, redeployed.error).toBe('completed');
    expect(redeployed.imageDigest).toBe(stagingRelease.imageDigest);
    expect(redeployed.previousReleaseId).toBe(production.id);
    expect(await viaCaddy(hostOf('production'), '/env/GREETING')).toEqual({
      status: 200,
      body: 'changed',
    });

    // Delete: the rows at once, then the worker takes routes and containers away.
    expect((await containersOf(serviceId)).length).toBeGreaterThanOrEqual(3);
    const edge = api.system.api.release.edge;
    const envIds = [staging.body.id as string, production.environmentId as string];
    for (const envId of envIds) expect(await edge.get(routeId(serviceId, envId))).not.toBeNull();
    const del = await req('DELETE', `/api/services/${serviceId}?confirm=web`, { token });
    expect(del.status, del.text).toBe(204);
    // The worker records `service.removed` once routes and containers are gone.
    const removedEvent = async () =>
      (await req('GET', `/api/audit-events?targetId=${serviceId}`, { token })).body.items.find(
        (e: { action: string }) => e.action === 'service.removed',
      );
    const end = Date.now() + 30_000;
    let removed = await removedEvent();
    while (!removed && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      removed = await removedEvent();
    }
    expect(removed?.data.containers.length).toBeGreaterThanOrEqual(3);
    expect((await containersOf(serviceId)).map((c) => c.name)).toEqual([]);
    for (const envId of envIds) expect(await edge.get(routeId(serviceId, envId))).toBeNull();
    expect((await viaCaddy(hostOf('production'))).body).not.toBe('v2');
    expect((await viaCaddy(hostOf('staging'))).body).not.toBe('v2');
  }, 120_000);
});
