/**
 * Webhooks for real: a release deployed through the API on Docker behind Caddy notifies a
 * loopback receiver, signed, and a delivery the receiver refuses is retried. Loopback is
 * never an install's webhook target: this test's system accepts it through the composition
 * root's test-only override (the default is proved in test/security/webhooks-to-the-edge).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../core/webhooks/signature.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

interface Received {
  body: string;
  headers: http.IncomingHttpHeaders;
  answered: number;
}

describe.skipIf(!ready)('webhooks', () => {
  let caddy: TestCaddy;
  let api: ApiHarness;
  let token: string;
  let orgId: string;
  let receiver: http.Server;
  let receiverUrl: string;
  const received: Received[] = [];
  // The first delivery is refused: the queue must retry it.
  let refuseNext = 1;

  beforeAll(async () => {
    await ensureTestImages();
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        const answered = refuseNext-- > 0 ? 503 : 204;
        received.push({ body, headers: req.headers, answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      webhooksToLoopback: true,
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'hooks@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('validates webhooks and shows the secret once', async () => {
    const bad = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: 'ftp://example.com' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('url');
    const creds = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: 'https://user:pw@example.com/' },
    });
    expect(creds.status).toBe(400);
    const badEvent = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: 'https://example.com/', events: ['release.exploded'] },
    });
    expect(badEvent.status).toBe(400);
    expect(badEvent.body.error.message).toContain('events');
  });

  it('delivers signed release events, retrying a refused delivery', async () => {
    const created = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: receiverUrl, events: ['release.started', 'release.completed'] },
    });
    expect(created.status, created.text).toBe(201);
    const secret: string = created.body.secret;
    expect(secret).toMatch(/^whsec_/);
    const list = await api.request('GET', '/api/webhooks', { token });
    expect(list.body.items).toEqual([
      expect.objectContaining({ id: created.body.id, url: receiverUrl }),
    ]);
    expect(list.text).not.toContain(secret);

    const project = (
      await api.request('POST', '/api/projects', { token, body: { name: 'hooked' } })
    ).body.id;
    await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const service = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2 },
      },
    });
    const release = await api.request('POST', '/api/releases', {
      token,
      body: { serviceId: service.body.id, image: 'selfdevop-test/app:v1' },
    });
    expect(release.status).toBe(202);

    const deadline = Date.now() + 60_000;
    const delivered = () =>
      received.filter((r) => r.answered === 204).map((r) => JSON.parse(r.body).type as string);
    while (
      Date.now() < deadline &&
      !(delivered().includes('release.started') && delivered().includes('release.completed'))
    ) {
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(delivered().sort()).toEqual(['release.completed', 'release.started']);

    const refused = received.find((r) => r.answered === 503)!;
    const retried = received.filter(
      (r) => r.headers['x-selfdevop-delivery'] === refused.headers['x-selfdevop-delivery'],
    );
    expect(retried.map((r) => r.answered)).toEqual([503, 204]);
    expect(retried[1]!.headers['x-selfdevop-attempt']).toBe('2');

    for (const r of received) {
      const event = JSON.parse(r.body);
      expect(event).toEqual({
        id: expect.any(String),
        type: expect.any(String),
        createdAt: expect.any(String),
        data: expect.any(Object),
      });
      expect(event.data.serviceId).toBe(service.body.id);
      const now = Math.floor(Date.now() / 1000);
      expect(verifySignature(secret, String(r.headers['x-selfdevop-signature']), r.body, now)).toBe(
        true,
      );
    }
    expect(
      (await api.request('DELETE', `/api/webhooks/${created.body.id}`, { token })).status,
    ).toBe(204);
    expect(
      (await api.request('DELETE', `/api/webhooks/${created.body.id}`, { token })).status,
    ).toBe(404);
  }, 90_000);
});
