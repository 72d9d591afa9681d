/**
 * A tenant's remote Docker host over mutual TLS, end to end: the node is registered through
 * the API with its PEM material, the worker opens it from the vault and deploys through a
 * TLS endpoint that demands a client certificate (a stand-in for `dockerd --tlsverify` on
 * port 2376), and traffic is checked through a real Caddy.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { makeTestPki, startDockerTlsProxy, type DockerTlsProxy, type TestPki } from '../support/docker-tls.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('deploying to a node reached over TCP with TLS client certificates', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let pki: TestPki;
  let proxy: DockerTlsProxy;
  let token: string;
  let orgId: string;
  let nodeId: string;
  let service: { id: string; host: string };

  const goodTls = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });

  async function deploy(image: string) {
    const res = await req('POST', '/api/releases', { token, body: { serviceId: service.id, image } });
    expect(res.status, res.text).toBe(202);
    const end = Date.now() + 40_000;
    for (;;) {
      const r = await req('GET', `/api/releases/${res.body.id}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end) throw new Error(`release ${res.body.id} still ${r.body.status} after 40 s`);
      await new Promise((x) => setTimeout(x, 100));
    }
  }

  async function rotate(tls: { ca: string; cert: string; key: string }) {
    const res = await req('PATCH', `/api/nodes/${nodeId}`, { token, body: { tls } });
    expect(res.status, res.text).toBe(200);
  }

  const viaCaddy = (host: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get({ host: '127.0.0.1', port: caddy.httpPort, path: '/version', headers: { host }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      });
      r.on('error', reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    pki = await makeTestPki();
    proxy = await startDockerTlsProxy(pki);
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', { body: { email: 'tls-node@example.com', password: 'correct horse battery' } });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'remote' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'tls-node', dockerHost: proxy.dockerHost, address: '127.0.0.1', tls: goodTls() },
    });
    expect(node.status, node.text).toBe(201);
    nodeId = node.body.id;
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
    service = { id: svc.body.id, host: svc.body.hosts[0].host };
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    await proxy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('deploys through the TLS endpoint and serves the release', async () => {
    const before = proxy.accepted;
    const v1 = await deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error).toBe('completed');
    expect(proxy.accepted).toBeGreaterThan(before);
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it('fails a release naming TLS when the client certificate is not one the engine trusts; v1 keeps serving', async () => {
    await rotate({ ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey });
    const refusedBefore = proxy.refused.length;
    const bad = await deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/^docker unreachable: tcp:\/\/127\.0\.0\.1:\d+: .*over TLS: an engine that refuses the client certificate/);
    expect(proxy.refused.length).toBeGreaterThan(refusedBefore);
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it("fails at once naming TLS when the engine's certificate does not verify against the node's CA; v1 keeps serving", async () => {
    await rotate({ ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey });
    const bad = await deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/TLS handshake failed: the engine's certificate does not verify against the node's CA/);
    expect(bad.steps.find((s: { name: string }) => s.name === 'build')).toMatchObject({ status: 'failed', attempt: 1 });
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it('deploys again once the credentials are rotated back, and never logs the key material', async () => {
    await rotate(goodTls());
    const v2 = await deploy('selfdevop-test/app:v2');
    expect(v2.status, v2.error).toBe('completed');
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v2' });
    const audit = await req('GET', `/api/audit-events?targetId=${nodeId}`, { token });
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
      'node.created',
      'node.credentials_rotated',
      'node.credentials_rotated',
      'node.credentials_rotated',
    ]);
    const logs = api.logLines().join('\n');
    for (const pem of [pki.clientKey, pki.otherClientKey]) expect(logs).not.toContain(pem.split('\n')[1]);
  }, 60_000);
});
