/**
 * Hole 5: decrypted secrets travelled in the Docker API URL (`POST /containers/create?…&Env=…`),
 * where engine debug logs and socket proxies keep them. A release with secrets runs through a
 * recording proxy in front of the real engine: no call's URL or headers may carry a secret
 * value, and the values still reach the container (served back by the test app).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { startEngineRecorder } from '../support/engine-recorder.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('hole 5: secrets never travel in an engine URL', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let recorder: Awaited<ReturnType<typeof startEngineRecorder>>;
  let req: Requester;
  let token: string;
  let orgId: string;

  beforeAll(async () => {
    await ensureTestImages();
    recorder = await startEngineRecorder();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 1 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'secrets@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'recorded', dockerHost: recorder.dockerHost, address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await recorder?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('creates the candidate and the migration with the secrets in the body only', async () => {
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'p' } })).body.id;
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:migrate-ok',
        containerPort: 8080,
        healthcheckPath: '/health',
        migrateCommand: '/bin/migrate',
        health: { intervalMs: 100, successes: 1, deadlineMs: 8_000, timeoutMs: 1_000 },
        warmSeconds: 0,
        drainSeconds: 0,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const secrets = { DB_PASSWORD: 'pw-Zq81&x=y hunter2', API_TOKEN: 'tok_9f8e7d6c5b4a' };
    for (const [name, value] of Object.entries(secrets)) {
      const r = await req('POST', `/api/services/${svc.body.id}/secrets`, {
        token,
        body: { name, value },
      });
      expect(r.status, r.text).toBeLessThan(300);
    }
    const created = await req('POST', '/api/releases', {
      token,
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:migrate-ok' },
    });
    expect(created.status, created.text).toBe(202);
    let release: { status: string; error: string | null; upstream: string | null } | undefined;
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      release = (await req('GET', `/api/releases/${created.body.id}`, { token })).body;
      if (['completed', 'failed'].includes(release!.status)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(release?.status, release?.error ?? '').toBe('completed');

    const creates = recorder.calls.filter((c) => /\/containers\/create\b/.test(c.url));
    expect(creates.length).toBe(2); // the candidate and the migration
    const forms = (v: string) => [
      v,
      encodeURIComponent(v),
      encodeURIComponent(v).replace(/%20/g, '+'),
    ];
    const leaks = recorder.calls.flatMap((c) =>
      Object.values(secrets)
        .flatMap(forms)
        .filter((v) => c.url.includes(v) || JSON.stringify(c.headers).includes(v))
        .map((v) => `${c.method} ${c.url.slice(0, 120)} carries ${v}`),
    );
    expect(leaks).toEqual([]);
    expect(creates.every((c) => !/[?&](Env|HostConfig|Labels|Image)=/.test(c.url))).toBe(true);

    // The values still reach the container: the app serves its environment back.
    for (const [name, value] of Object.entries(secrets)) {
      const r = await fetch(`http://${release!.upstream}/env/${name}`);
      expect(await r.text()).toBe(value);
    }
  }, 90_000);
});
