/**
 * Health shown honestly, for real: the self-hosted control plane with its workers, a real
 * Docker Engine and a real Caddy. After a failed deploy the app still serves its previous
 * release, so its health is `healthy` and, apart from it, its last deploy `failed`; once its
 * container is stopped it is `down`. The API, the service page and the CLI's words agree.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const local = { dockerHost: 'unix:///var/run/docker.sock' };

describe.skipIf(!ready)('service health, apart from the last deploy', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let token: string;
  let orgId: string;
  let serviceId: string;
  let servingId: string;

  async function settle(releaseId: string, deadlineMs = 40_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await api.request('GET', `/api/releases/${releaseId}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end)
        throw new Error(`release ${releaseId} still ${r.body.status} after ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const deploy = async (image: string) => {
    const res = await api.request('POST', '/api/releases', {
      token,
      body: { serviceId, image },
    });
    expect(res.status, res.text).toBe(202);
    return settle(res.body.id);
  };

  const servicePage = async () => {
    const res = await fetch(`${api.url}/dashboard/services/${serviceId}`, {
      headers: { cookie: `sdo_session=${token}` },
    });
    expect(res.status).toBe(200);
    return (await res.text()).replace(/\s+/g, ' ');
  };

  /** The real CLI process, as CI runs it, with the session token as its credential. */
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
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'health@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (
      await api.request('POST', '/api/projects', { token, body: { name: 'honest' } })
    ).body.id;
    await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: local.dockerHost, address: '127.0.0.1' },
    });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 6_000, timeoutMs: 1_000 },
        drainSeconds: 1,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('says not deployed before the first release', async () => {
    const h = await api.request('GET', `/api/services/${serviceId}/health`, { token });
    expect(h.status, h.text).toBe(200);
    expect(h.body).toEqual({
      serviceId,
      environment: 'production',
      app: {
        status: 'not_deployed',
        releaseId: null,
        image: null,
        container: null,
        reason: 'no release has completed yet',
      },
      crashLoops: [],
      lastDeploy: null,
    });
  });

  it('shows a healthy app whose last deploy failed as healthy, with the failure apart', async () => {
    const v1 = await deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error).toBe('completed');
    servingId = v1.id;
    const bad = await deploy('selfdevop-test/app:unhealthy');
    expect(bad.status).toBe('failed');

    const h = await api.request('GET', `/api/services/${serviceId}/health`, { token });
    expect(h.status, h.text).toBe(200);
    expect(h.body.app).toEqual({
      status: 'healthy',
      releaseId: v1.id,
      image: 'selfdevop-test/app:v1',
      container: {
        id: v1.containerId,
        state: 'running',
        restarts: 0,
        check: 'passing',
        checkError: null,
      },
      reason: null,
    });
    expect(h.body.lastDeploy).toEqual({
      releaseId: bad.id,
      status: 'failed',
      error: bad.error,
      finishedAt: expect.any(String),
    });

    const page = await servicePage();
    expect(page).toMatch(/App health: <span class="badge ok">healthy<\/span>/);
    expect(page).toMatch(
      new RegExp(
        `Last deploy: <span class="badge bad">failed</span> <a href="/dashboard/releases/${bad.id}">`,
      ),
    );
    expect(page).not.toMatch(/Health: <span class="badge bad">/);

    const said = await cli(['services', 'health', serviceId]);
    expect(said.code).toBe(0);
    expect(said.stdout).toBe(
      `app: healthy (serving ${v1.id}), container running, restarts 0, health check passing\n` +
        `last deploy: failed (${bad.id}) — ${bad.error}\n`,
    );
  }, 90_000);

  it('shows the app down when its serving container stops, and the last deploy unchanged', async () => {
    const v1 = (await api.request('GET', `/api/releases/${servingId}`, { token })).body;
    await new DockerRuntime().stop(local, v1.containerId, 0);
    const h = await api.request('GET', `/api/services/${serviceId}/health`, { token });
    expect(h.body.app).toMatchObject({
      status: 'down',
      releaseId: servingId,
      container: { state: 'exited', check: 'not_checked' },
      reason: 'the serving container is exited',
    });
    expect(h.body.lastDeploy.status).toBe('failed');
    expect(await servicePage()).toMatch(/App health: <span class="badge bad">down<\/span>/);
    expect((await cli(['services', 'health', serviceId])).code).toBe(1);
  }, 30_000);

  it("answers an unknown environment, and another org's service, with 404", async () => {
    const env = await api.request('GET', `/api/services/${serviceId}/health?environment=nope`, {
      token,
    });
    expect(env.status).toBe(404);
    expect(env.body.error.message).toContain('nope');
    const other = (
      await api.request('POST', '/api/auth/local/signup', {
        body: { email: 'stranger@example.com', password: 'correct horse battery' },
      })
    ).body.token;
    const foreign = await api.request('GET', `/api/services/${serviceId}/health`, {
      token: other,
    });
    expect(foreign.status).toBe(404);
  });
});
