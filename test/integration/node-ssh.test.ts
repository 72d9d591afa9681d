/**
 * A tenant's remote Docker host over SSH, end to end: the node is registered through the
 * API with its private key and pinned host key, the worker opens them from the vault and
 * deploys through a real sshd on a loopback port (`docker system dial-stdio` on the far
 * side), and traffic is checked through a real Caddy.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

const ready = (await available('docker')) && (await available('caddy')) && (await available('sshd'));

describe.skipIf(!ready)('deploying to a node reached over SSH', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let sshd: TestSshd;
  let token: string;
  let orgId: string;
  let nodeId: string;
  let service: { id: string; host: string };

  const goodSsh = () => ({ privateKey: sshd.clientKey, hostKey: sshd.hostKey });

  async function deploy(image: string) {
    const res = await req('POST', '/api/releases', { token, body: { serviceId: service.id, image } });
    expect(res.status, res.text).toBe(202);
    const end = Date.now() + 60_000;
    for (;;) {
      const r = await req('GET', `/api/releases/${res.body.id}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end) throw new Error(`release ${res.body.id} still ${r.body.status} after 60 s`);
      await new Promise((x) => setTimeout(x, 100));
    }
  }

  async function rotate(ssh: { privateKey: string; hostKey: string }) {
    const res = await req('PATCH', `/api/nodes/${nodeId}`, { token, body: { ssh } });
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
    sshd = await startSshd();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', { body: { email: 'ssh-node@example.com', password: 'correct horse battery' } });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'remote' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'ssh-node', dockerHost: sshd.dockerHost, address: '127.0.0.1', ssh: goodSsh() },
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
    await sshd?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('deploys through sshd and serves the release', async () => {
    const v1 = await deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error).toBe('completed');
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('fails a release at once naming SSH when the server presents another host key; v1 keeps serving', async () => {
    await rotate({ privateKey: sshd.clientKey, hostKey: sshd.otherHostKey });
    const bad = await deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/SSH host key verification failed: the server's host key is not the one pinned for this node/);
    expect(bad.steps.find((s: { name: string }) => s.name === 'build')).toMatchObject({ status: 'failed', attempt: 1 });
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('deploys again once the credentials are rotated back, and never logs the private key', async () => {
    await rotate(goodSsh());
    const v2 = await deploy('selfdevop-test/app:v2');
    expect(v2.status, v2.error).toBe('completed');
    expect(await viaCaddy(service.host)).toEqual({ status: 200, body: 'v2' });
    const logs = api.logLines().join('\n');
    expect(logs).not.toContain(sshd.clientKey.split('\n')[1]);
  }, 90_000);
});
