/**
 * Certificate expiry for real: a real ACME CA (pebble, issuing certificates valid for 10
 * days), a real DNS server, a real Caddy with on-demand TLS, and the self-hosted control
 * plane with its workers and its usage endpoint. A custom domain becomes active; the worker
 * reads the served certificate's expiry into the store; the API, the CLI and the domain page
 * show it; the worker's endpoint exports it (with its queue depths, node checks and job
 * durations); and a real Prometheus, configured by the same `prometheusConfig` the Compose
 * stack ships and evaluating the shipped rules, fires `cert_expiring` for that domain until
 * the service's threshold says 5 days is enough warning.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEdgeCertificate } from '../../adapters/edge/caddy-certificate.ts';
import { prometheusConfig } from '../../core/alerts/prometheus-config.ts';
import { prometheusRuleGroups } from '../../core/alerts/rules.ts';
import { routeId } from '../../core/releases/plan.ts';
import { aRelease } from '../contracts/store/builders.ts';
import { startSelfhostApi } from '../support/api.ts';
import { freePort } from '../support/ports.ts';
import { runCli } from '../support/cli.ts';
import { dockerTarget } from '../support/docker.ts';
import {
  pebbleAvailable,
  startChallTestSrv,
  startPebble,
  startTlsCaddy,
  type ChallTestSrv,
  type TestPebble,
  type TlsCaddy,
} from '../support/pebble.ts';
import { startPrometheus, type TestPrometheus } from '../support/prometheus.ts';
import { available } from '../support/services.ts';

const ready =
  (await available('docker')) &&
  (await available('caddy')) &&
  (await available('prometheus')) &&
  (await pebbleAvailable());

const tenDays = 10 * 86_400;

async function until<T>(what: string, fn: () => Promise<T | null>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what} not within ${ms} ms (${String(last)})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe.skipIf(!ready)('certificate expiry: stored, shown, exported, alerted', () => {
  const token = randomBytes(24).toString('hex');
  let dns: ChallTestSrv;
  let pebble: TestPebble;
  let caddy: TlsCaddy;
  let app: http.Server;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let prometheus: TestPrometheus;
  let statsAddress: string;
  let session: string;
  let orgId: string;
  let serviceId: string;
  let domainId: string;
  let served: { notAfter: string; issuer: string };
  let cliDir: string;

  beforeAll(async () => {
    dns = await startChallTestSrv();
    const httpPort = await freePort();
    pebble = await startPebble({
      dnsAddress: dns.dnsAddress,
      httpPort,
      certificateValiditySeconds: tenDays,
    });
    const adminPort = await freePort();
    const httpsPort = await freePort();
    statsAddress = `127.0.0.1:${await freePort()}`;
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: `http://127.0.0.1:${adminPort}`,
      caddyServer: 'selfdevop',
      edgeTlsAddress: `127.0.0.1:${httpsPort}`,
      edgeIpv4: ['127.0.0.1'],
      dnsServers: [dns.dnsAddress],
      alertReceiverToken: token,
      statsIntervalSeconds: 5,
      statsListen: statsAddress,
      nodeProbeImage: 'selfdevop-test/busybox:base',
      logLevel: 'warn',
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
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'certs@example.com', password: 'correct horse battery' },
    });
    session = s.body.token;
    orgId = s.body.org.id;
    const project = await api.request('POST', '/api/projects', {
      token: session,
      body: { name: 'shop' },
    });
    // A node, so the worker's node checks have something to say.
    const node = await api.request('POST', '/api/nodes', {
      token: session,
      body: { name: 'local', dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const svc = await api.request('POST', '/api/services', {
      token: session,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
    const environment = project.body.environments[0] as { id: string; name: string };
    // The service serves (as a completed deploy leaves it): a loopback app behind its route.
    app = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const upstream = `127.0.0.1:${(app.address() as AddressInfo).port}`;
    await api.system.api.store.withOrg(orgId, (r) =>
      r.releases.insert(
        aRelease(orgId, serviceId, environment.id, { status: 'completed', upstream }),
      ),
    );
    await api.system.edge.put({
      id: routeId(serviceId, environment.id),
      hosts: [
        svc.body.hosts.find((h: { environment: string }) => h.environment === environment.name)
          .host,
      ],
      upstreams: [upstream],
      sticky: false,
      drainSeconds: 1,
    });

    const d = await api.request('POST', '/api/domains', {
      token: session,
      body: { serviceId, hostname: 'shop.example.test' },
    });
    expect(d.status, d.text).toBe(201);
    domainId = d.body.id;
    await dns.setTxt(d.body.records[0].name, d.body.records[0].value);
    await until('the domain to be active', async () => {
      const r = await api.request('GET', `/api/domains/${domainId}`, { token: session });
      return r.body.status === 'active' ? r.body : null;
    });
    const cert = await readEdgeCertificate(caddy.tlsAddress, 'shop.example.test', 5_000);
    served = { notAfter: cert.notAfter!, issuer: cert.issuer! };
    cliDir = await mkdtemp(join(tmpdir(), 'sdo-cert-cli-'));
  }, 180_000);

  afterAll(async () => {
    await prometheus?.stop();
    await api?.close();
    await caddy?.stop();
    await pebble?.stop();
    await dns?.stop();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    if (cliDir) await rm(cliDir, { recursive: true, force: true });
  });

  it('stores the served certificate’s expiry when the domain becomes active, and the API shows its days left', async () => {
    const r = await api.request('GET', `/api/domains/${domainId}`, { token: session });
    expect(served.issuer).toMatch(/^Pebble Intermediate CA/);
    // Pebble was told 10 days: what the edge serves is what the store keeps.
    const validFor = (Date.parse(served.notAfter) - Date.now()) / 1000;
    expect(validFor).toBeGreaterThan(tenDays - 600);
    expect(validFor).toBeLessThanOrEqual(tenDays);
    expect(r.body).toMatchObject({
      status: 'active',
      certNotAfter: served.notAfter,
      certIssuer: served.issuer,
      certDaysLeft: 9,
    });
  });

  it('reads it again on the periodic check: a stale expiry is corrected, as a renewal would move it', async () => {
    const stale = new Date(Date.now() + 86_400_000).toISOString();
    await api.system.api.store.withOrg(orgId, (r) =>
      r.domains.update(domainId, { certNotAfter: stale }),
    );
    const verify = await api.request('POST', `/api/domains/${domainId}/verify`, {
      token: session,
    });
    expect(verify.status, verify.text).toBe(202);
    await until('the expiry read again', async () => {
      const r = await api.request('GET', `/api/domains/${domainId}`, { token: session });
      return r.body.certNotAfter === served.notAfter ? r.body : null;
    });
    const audit = await api.request(
      'GET',
      `/api/audit-events?targetId=${domainId}&action=domain.cert_renewed`,
      { token: session },
    );
    expect(audit.body.items[0]?.data).toMatchObject({
      notAfter: served.notAfter,
      previousNotAfter: stale,
    });
  });

  it('shows the expiry on the domain page (as a warning, within 14 days) and in the CLI', async () => {
    const page = await fetch(`${api.url}/dashboard/domains/${domainId}`, {
      headers: { cookie: `sdo_session=${session}` },
    });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<div class="alert error" role="alert" data-cert-days-left="9">/);
    expect(html.replace(/\s+/g, ' ')).toContain(
      `Certificate expires <time datetime="${served.notAfter}">`,
    );
    expect(html).toContain('docs/runbooks/cert-not-issuing.md');

    const env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: session };
    const status = await runCli(['domains', 'status', 'shop.example.test'], { cwd: cliDir, env });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain(
      `certificate: expires ${served.notAfter} (9 days left, expiring), issued by ${served.issuer}`,
    );
    const list = await runCli(['domains', 'list'], { cwd: cliDir, env });
    expect(list.stdout).toMatch(/CERT DAYS LEFT/);
    expect(list.stdout).toMatch(/shop\.example\.test\s+active\s+verified\s+active\s+9\s/);
  });

  it('exports it from the worker’s endpoint with the queue depths, node checks and job durations', async () => {
    // The collector reads certificates from the store at most once a minute per org.
    const text = await until(
      'the certificate in the worker’s exposition',
      async () => {
        const r = await fetch(`http://${statsAddress}/metrics`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const t = await r.text();
        return t.includes('selfdevop_certificate_expiry_timestamp_seconds{') ? t : null;
      },
      90_000,
    );
    expect(text).toContain(
      `selfdevop_certificate_expiry_timestamp_seconds{org="${orgId}",service="${serviceId}",`,
    );
    expect(text).toContain(`domain="shop.example.test"} ${Date.parse(served.notAfter) / 1000}\n`);
    expect(text).toMatch(/^selfdevop_queue_depth\{queue="domain-checks"\} \d+$/m);
    expect(text).toMatch(/^selfdevop_node_up\{org="[^"]+",node="[^"]+"\} 1$/m);
    expect(text).toMatch(
      /^selfdevop_job_duration_seconds_count\{queue="domain-checks",outcome="ok"\} [1-9]\d*$/m,
    );
    expect((await fetch(`http://${statsAddress}/metrics`)).status).toBe(401);
  }, 120_000);

  it('fires cert_expiring in a real Prometheus configured as the Compose stack is, and a lower threshold resolves it', async () => {
    prometheus = await startPrometheus({
      files: {
        token,
        'selfdevop.rules.json': JSON.stringify(prometheusRuleGroups()),
      },
      config: JSON.stringify(
        prometheusConfig({
          caddy: new URL(caddy.adminUrl).host,
          api: new URL(api.url).host,
          worker: statsAddress,
          tokenFile: 'token',
          ruleFile: 'selfdevop.rules.json',
          intervalSeconds: 1,
        }),
      ),
    });
    const query = async (q: string) => {
      const r = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(q)}`);
      const body = (await r.json()) as {
        data: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      return body.data.result;
    };
    // Every job the Compose stack scrapes answers, the worker's included.
    const up = await until('all four jobs up', async () => {
      const r = await query('up == 1');
      return r.length === 4 ? r : null;
    });
    expect(up.map((x) => x.metric.job).sort()).toEqual([
      'caddy',
      'selfdevop-alert-targets',
      'selfdevop-api',
      'selfdevop-worker',
    ]);
    const firing = await until('cert_expiring firing', async () => {
      const r = await query('ALERTS{alertname="cert_expiring",alertstate="firing"}');
      return r.length > 0 ? r : null;
    });
    expect(firing[0]!.metric).toMatchObject({
      org: orgId,
      service: serviceId,
      domain: 'shop.example.test',
      severity: 'warning',
    });
    // The service's own threshold: warn only 5 days ahead, so 9 days left is no alert.
    const put = await api.request('PUT', '/api/alerts/thresholds', {
      token: session,
      body: { serviceId, rule: 'cert_expiring', value: 5 },
    });
    expect(put.status, put.text).toBe(200);
    await until('cert_expiring resolved', async () => {
      const r = await query('ALERTS{alertname="cert_expiring"}');
      return r.length === 0 ? true : null;
    });
  }, 120_000);
});
