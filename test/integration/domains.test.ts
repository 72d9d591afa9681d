/**
 * Custom domains for real: the self-hosted control plane with its workers, a real Docker
 * Engine running the test app, a real DNS server (pebble-challtestsrv), a real ACME CA
 * (pebble) and a real Caddy with on-demand TLS asking the control API. A domain goes from
 * pending_dns to active and its HTTPS answers with pebble's certificate and the app's body.
 */
import https from 'node:https';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { routeId } from '../../core/releases/plan.ts';
import { startSelfhostApi } from '../support/api.ts';
import { freePort } from '../support/ports.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import {
  pebbleAvailable,
  startChallTestSrv,
  startPebble,
  startTlsCaddy,
  type ChallTestSrv,
  type TestPebble,
  type TlsCaddy,
} from '../support/pebble.ts';
import { available } from '../support/services.ts';

const ready =
  (await available('docker')) && (await available('caddy')) && (await pebbleAvailable());

interface HttpsAnswer {
  status: number;
  body: string;
  cert: PeerCertificate;
}

describe.skipIf(!ready)('custom domains through the API, DNS, pebble and Caddy', () => {
  let dns: ChallTestSrv;
  let pebble: TestPebble;
  let caddy: TlsCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let token: string;
  let orgId: string;
  let serviceId: string;
  let environmentId: string;
  let root: string;

  /** GET https://<host>/version on Caddy's HTTPS port, verifying the chain against pebble's root. */
  const viaHttps = (host: string, path = '/version') =>
    new Promise<HttpsAnswer>((resolve, reject) => {
      const r = https.get(
        {
          host: '127.0.0.1',
          port: caddy.httpsPort,
          path,
          servername: host,
          headers: { host },
          ca: root,
          agent: false,
          timeout: 10_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: body.trim(),
              cert: (res.socket as TLSSocket).getPeerCertificate(),
            }),
          );
        },
      );
      r.on('timeout', () => r.destroy(new Error(`https ${host} timed out`)));
      r.on('error', reject);
    });

  async function waitForDomain(
    id: string,
    until: (d: Record<string, unknown>) => boolean,
    deadlineMs = 30_000,
  ) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await req('GET', `/api/domains/${id}`, { token });
      expect(r.status, r.text).toBe(200);
      if (until(r.body)) return r.body;
      if (Date.now() > end)
        throw new Error(`domain ${id} did not get there within ${deadlineMs} ms: ${r.text}`);
      await new Promise((x) => setTimeout(x, 100));
    }
  }

  async function addDomain(hostname: string) {
    const r = await req('POST', '/api/domains', { token, body: { serviceId, hostname } });
    expect(r.status, r.text).toBe(201);
    return r.body as {
      id: string;
      status: string;
      records: { type: string; name: string; value: string }[];
    };
  }

  beforeAll(async () => {
    await ensureTestImages();
    dns = await startChallTestSrv();
    const httpPort = await freePort();
    pebble = await startPebble({ dnsAddress: dns.dnsAddress, httpPort });
    root = await pebble.rootPem();
    const adminPort = await freePort();
    const httpsPort = await freePort();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: `http://127.0.0.1:${adminPort}`,
      caddyServer: 'selfdevop',
      edgeTlsAddress: `127.0.0.1:${httpsPort}`,
      // 127.0.0.2 counts as the edge for DNS, but Caddy does not listen there: a host
      // pointed at it verifies and then fails HTTP-01, for the CA rate-limit test.
      edgeIpv4: ['127.0.0.1', '127.0.0.2'],
      dnsServers: [dns.dnsAddress],
      // A loaded machine can keep Caddy's admin API restarting for a while; retry longer.
      release: { maxStepAttempts: 4 },
      domains: {
        dnsBaseDelaySeconds: 1,
        dnsMaxDelaySeconds: 2,
        certBaseDelaySeconds: 1,
        certMaxDelaySeconds: 2,
        negativeCacheSeconds: 1,
        askBaseBackoffSeconds: 5,
      },
    });
    caddy = await startTlsCaddy({
      httpPort,
      adminPort,
      httpsPort,
      askUrl: `${api.url}/api/domains/ask`,
      acmeCa: pebble.directoryUrl,
      trustedRootsPemFiles: [pebble.certFile],
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'domains@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body
      .id;
    await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        drainSeconds: 5,
      },
    });
    serviceId = svc.body.id;
    const rel = await req('POST', '/api/releases', {
      token,
      body: { serviceId, image: 'selfdevop-test/app:v1' },
    });
    const end = Date.now() + 40_000;
    let r = await req('GET', `/api/releases/${rel.body.id}`, { token });
    while (!['completed', 'failed'].includes(r.body.status) && Date.now() < end) {
      await new Promise((x) => setTimeout(x, 100));
      r = await req('GET', `/api/releases/${rel.body.id}`, { token });
    }
    expect(r.body.status, `${r.text}\ncaddy: ${caddy.log().slice(-3000)}`).toBe('completed');
    environmentId = r.body.environmentId;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    await pebble?.stop();
    await dns?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('takes a domain from pending_dns to active: HTTPS answers with a Pebble certificate and the app', async () => {
    const d = await addDomain('shop.example.test');
    expect(d.status).toBe('pending_dns');
    const txt = d.records.find((x) => x.type === 'TXT')!;
    expect(txt.name).toBe('_selfdevop-challenge.shop.example.test');
    expect(d.records[1]).toMatchObject({
      type: 'CNAME',
      name: 'shop.example.test',
      value: expect.stringMatching(/\.localhost$/),
    });
    const pending = await waitForDomain(d.id, (x) => typeof x.lastError === 'string');
    expect(pending).toMatchObject({
      status: 'pending_dns',
      dnsStatus: 'pending',
      tlsStatus: 'none',
    });
    expect(pending.lastError).toMatch(
      /TXT record _selfdevop-challenge\.shop\.example\.test must hold/,
    );

    await dns.setTxt(txt.name, txt.value);
    const active = await waitForDomain(d.id, (x) => x.status === 'active');
    expect(active).toMatchObject({
      status: 'active',
      dnsStatus: 'verified',
      tlsStatus: 'active',
      lastError: null,
    });

    const answer = await viaHttps('shop.example.test');
    expect(answer).toMatchObject({ status: 200, body: 'v1' });
    expect(answer.cert.issuer.CN).toMatch(/^Pebble Intermediate CA/);
    expect(answer.cert.subjectaltname).toBe('DNS:shop.example.test');

    const audit = await req('GET', `/api/audit-events?targetId=${d.id}&limit=50`, { token });
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(
      expect.arrayContaining([
        'domain.created',
        'domain.dns_verified',
        'domain.routed',
        'domain.cert_active',
      ]),
    );
    const list = await req('GET', '/api/domains', { token });
    expect(list.body.items.map((x: { hostname: string }) => x.hostname)).toContain(
      'shop.example.test',
    );
  }, 60_000);

  it('never gets a certificate for a domain without its TXT record: ask says no, no order reaches pebble', async () => {
    const d = await addDomain('nope.example.test');
    await waitForDomain(d.id, (x) => typeof x.lastError === 'string');
    const ask = await req('GET', '/api/domains/ask?domain=nope.example.test');
    expect(ask.status).toBe(403);
    expect(ask.body.error.code).toBe('domain_not_allowed');
    await expect(viaHttps('nope.example.test')).rejects.toThrow(/alert|socket|reset|EPROTO/i);
    expect((await req('GET', `/api/domains/${d.id}`, { token })).body.status).toBe('pending_dns');
    expect(pebble.log()).not.toContain('nope.example.test');
    expect((await req('GET', '/api/domains/ask')).status).toBe(403);
    expect((await req('GET', '/api/domains/ask?domain=unknown.example.test')).status).toBe(403);
  }, 30_000);

  it('does not hammer the CA for a host whose validation keeps failing', async () => {
    const d = await addDomain('failing.example.test');
    await dns.addA('failing.example.test', ['127.0.0.2']);
    await dns.setTxt(d.records[0]!.name, d.records[0]!.value);
    const pending = await waitForDomain(
      d.id,
      (x) => x.status === 'cert_pending' && typeof x.lastError === 'string',
    );
    expect(pending.lastError).toMatch(/certificate not issued yet/);
    // The worker keeps probing (a TLS handshake every 1-2 s, each one a chance to order).
    await new Promise((r) => setTimeout(r, 8_000));
    const got = (await req('GET', `/api/domains/${d.id}`, { token })).body;
    expect(got).toMatchObject({ status: 'cert_pending', tlsStatus: 'pending' });
    const validations = pebble
      .log()
      .split('\n')
      .filter((l) => l.includes('Pulled a task') && l.includes('"failing.example.test"'));
    // The first attempt, then the ask gate's 5 s backoff allows at most one more in 8 s.
    expect(validations.length).toBeGreaterThanOrEqual(1);
    expect(validations.length).toBeLessThanOrEqual(2);
  }, 40_000);

  it('removing a domain removes its host from the route', async () => {
    const d = await addDomain('gone.example.test');
    await dns.setTxt(d.records[0]!.name, d.records[0]!.value);
    await waitForDomain(d.id, (x) => x.status === 'active');
    const edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
    expect((await edge.get(routeId(serviceId, environmentId)))!.hosts).toContain(
      'gone.example.test',
    );
    expect((await viaHttps('gone.example.test')).body).toBe('v1');

    const del = await req('DELETE', `/api/domains/${d.id}`, { token });
    expect(del.status, del.text).toBe(204);
    const route = (await edge.get(routeId(serviceId, environmentId)))!;
    expect(route.hosts).not.toContain('gone.example.test');
    expect(route.hosts).toContain('shop.example.test');
    expect((await req('GET', `/api/domains/${d.id}`, { token })).status).toBe(404);
    expect((await req('GET', '/api/domains/ask?domain=gone.example.test')).status).toBe(403);
    // Caddy still holds the certificate in memory, but the host no longer reaches the app.
    const after = await viaHttps('gone.example.test').catch((e: Error) => e);
    if (!(after instanceof Error)) expect(after.body).not.toBe('v1');
    expect((await viaHttps('shop.example.test')).body).toBe('v1');
  }, 60_000);

  it('keeps a domain pending with a clear lastError while DNS is down, and recovers when it is back', async () => {
    await dns.stop();
    try {
      const d = await addDomain('later.example.test');
      const down = await waitForDomain(d.id, (x) => /DNS lookup failed/.test(String(x.lastError)));
      expect(down).toMatchObject({ status: 'pending_dns', dnsStatus: 'pending' });
      expect(down.lastError).toMatch(
        /^DNS lookup failed, retrying: dns is unavailable: .*127\.0\.0\.1/,
      );
      await dns.start();
      await dns.setTxt(d.records[0]!.name, d.records[0]!.value);
      expect((await req('POST', `/api/domains/${d.id}/verify`, { token })).status).toBe(202);
      await waitForDomain(d.id, (x) => x.status === 'active');
    } finally {
      await dns.start().catch(() => undefined);
    }
  }, 60_000);

  it('refuses invalid hostnames with 400 naming hostname, a taken one with 409, and needs a deployer', async () => {
    for (const hostname of [
      '*.example.test',
      'Shop.example.test',
      '127.0.0.1',
      'x.localhost',
      'web.localhost',
      'nodot',
      'a'.repeat(64) + '.example.test',
      'a.b/c',
    ]) {
      const r = await req('POST', '/api/domains', { token, body: { serviceId, hostname } });
      expect(r.status, `${hostname}: ${r.text}`).toBe(400);
      expect(r.body.error.message).toMatch(/^hostname: /);
    }
    const missing = await req('POST', '/api/domains', { token, body: { serviceId } });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toMatch(/hostname/);
    const other = await req('POST', '/api/auth/local/signup', {
      body: { email: 'other-org@example.com', password: 'correct horse battery' },
    });
    const p = (await req('POST', '/api/projects', { token: other.body.token, body: { name: 'p' } }))
      .body.id;
    const s = await req('POST', '/api/services', {
      token: other.body.token,
      body: {
        projectId: p,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    const taken = await req('POST', '/api/domains', {
      token: other.body.token,
      body: { serviceId: s.body.id, hostname: 'shop.example.test' },
    });
    expect(taken.status, taken.text).toBe(409);
    // Another org's domain id is simply not found.
    const mine = (await req('GET', '/api/domains', { token })).body.items[0].id;
    expect((await req('GET', `/api/domains/${mine}`, { token: other.body.token })).status).toBe(
      404,
    );
    expect((await req('DELETE', `/api/domains/${mine}`, { token: other.body.token })).status).toBe(
      404,
    );
    const key = await req('POST', `/api/orgs/${orgId}/api-keys`, {
      token,
      body: { name: 'ro', role: 'viewer' },
    });
    const ro = await req('POST', '/api/domains', {
      token: key.body.key,
      body: { serviceId, hostname: 'ro.example.test' },
    });
    expect(ro.status).toBe(403);
  }, 30_000);
});
