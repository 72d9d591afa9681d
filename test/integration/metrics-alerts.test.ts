/**
 * Metrics and alerts for real: a real Caddy (per-host metrics) in front of an app that
 * answers 500, a real Prometheus 2.42 scraping Caddy's metrics and selfdevop's alert
 * targets and evaluating the rules rendered from core/alerts/rules.ts, a real Alertmanager
 * 0.25 posting to selfdevop's receiver, and the API with its workers delivering the
 * `alert.firing` event to an e-mail channel on a real SMTP server. Then the service's
 * metrics endpoint reads the same traffic back from Prometheus, and Chromium draws it on
 * the service page; the project's endpoint sums it with two WebSockets held open through
 * Caddy, and Chromium draws that on the project page, switching range (screenshots land in
 * test-results/screenshots).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SelfhostSystem } from '../../adapters/modes/selfhost.ts';
import { prometheusRuleGroups } from '../../core/alerts/rules.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { aRelease } from '../contracts/store/builders.ts';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from '../dashboard/browser.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  startAlertmanager,
  startPrometheus,
  type TestAlertmanager,
  type TestPrometheus,
} from '../support/prometheus.ts';
import { available } from '../support/services.ts';
import { startSmtpServer } from '../support/smtp.ts';

const waitFor = async <T>(what: string, probe: () => Promise<T | null> | T | null, ms = 90_000) => {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await probe();
    if (got !== null) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};

const ready = (await available('prometheus')) && (await available('caddy')) && chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('metrics and alerts (Caddy, Prometheus, Alertmanager, SMTP)', () => {
  const receiverToken = randomBytes(24).toString('base64url');
  let app: http.Server;
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string; system: SelfhostSystem };
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let prometheus: TestPrometheus;
  let alertmanager: TestAlertmanager;
  let token: string;
  let serviceId: string;
  let projectId: string;
  let host: string;
  const sockets: Socket[] = [];
  let stopTraffic = false;
  let traffic: Promise<number> = Promise.resolve(0);

  beforeAll(async () => {
    app = http.createServer((_req, res) => res.writeHead(500).end('boom'));
    // A WebSocket handshake answered and the socket held open (no frames are needed for
    // Caddy to count the connection in flight while it lasts).
    app.on('upgrade', (_req, socket: Socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
      );
      sockets.push(socket);
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    caddy = await startCaddy();
    smtp = await startSmtpServer();
    // Prometheus first (the API reads it); its scrape targets are filled in once the API is up.
    prometheus = await startPrometheus({ config: 'global: {scrape_interval: 1s}\n' });
    api = await startSelfhostApi({
      workers: true,
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl: 'https://sdo.example.test',
      prometheusUrl: prometheus.url,
      alertReceiverToken: receiverToken,
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'oncall@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    const orgId = s.body.org.id as string;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    projectId = project.body.id;
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'busybox:1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
    host = svc.body.hosts.find((h: { environment: string }) => h.environment === 'production').host;
    const environmentId = project.body.environments[0].id as string;
    // The service is live (as a completed deploy leaves it) and its route is in Caddy.
    await api.system.api.store.withOrg(orgId, (r) =>
      r.releases.insert(
        aRelease(orgId, serviceId, environmentId, {
          status: 'completed',
          upstream: `127.0.0.1:${appPort}`,
        }),
      ),
    );
    await caddy.admin.request('POST', '/config/apps/http/servers/selfdevop/routes', {
      match: [{ host: [host] }],
      handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: `127.0.0.1:${appPort}` }] }],
    });
    const channel = await api.request('POST', '/api/notification-channels', {
      token,
      body: {
        kind: 'email',
        name: 'on-call',
        address: 'oncall@example.com',
        events: ['alert.firing', 'alert.resolved'],
        groupWindowSeconds: 0,
      },
    });
    expect(channel.status, channel.text).toBe(201);

    // The rules as shipped, except that they fire at once instead of after their `for`.
    const rules = prometheusRuleGroups();
    for (const r of rules.groups[0]!.rules) r.for = '0s';
    alertmanager = await startAlertmanager(
      JSON.stringify({
        route: {
          receiver: 'selfdevop',
          group_by: ['alertname', 'org', 'service'],
          group_wait: '1s',
          group_interval: '1s',
          repeat_interval: '1h',
        },
        receivers: [
          {
            name: 'selfdevop',
            webhook_configs: [
              {
                url: `${api.url}/api/alerts/alertmanager`,
                send_resolved: true,
                http_config: { authorization: { credentials: receiverToken } },
              },
            ],
          },
        ],
      }),
    );
    const adminHostPort = new URL(caddy.adminUrl).host;
    const apiHostPort = new URL(api.url).host;
    await writeFile(join(prometheus.dir, 'selfdevop.rules.yml'), JSON.stringify(rules));
    await writeFile(
      join(prometheus.dir, 'prometheus.yml'),
      JSON.stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: ['selfdevop.rules.yml'],
        alerting: {
          alertmanagers: [{ static_configs: [{ targets: [new URL(alertmanager.url).host] }] }],
        },
        scrape_configs: [
          { job_name: 'caddy', static_configs: [{ targets: [adminHostPort] }] },
          {
            job_name: 'selfdevop-alert-targets',
            metrics_path: '/metrics/alert-targets',
            authorization: { credentials: receiverToken },
            static_configs: [{ targets: [apiHostPort] }],
          },
        ],
      }),
    );
    // The API was given this Prometheus's URL; it now learns where the API and Caddy are.
    await prometheus.reload();

    // Traffic through the edge: bounded in count and time.
    traffic = (async () => {
      let sent = 0;
      const until = Date.now() + 90_000;
      while (!stopTraffic && sent < 20_000 && Date.now() < until) {
        // node:http, not fetch: fetch does not send a Host header of our choosing.
        await new Promise<void>((resolve) =>
          http
            .get({ host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host } }, (res) =>
              res.resume().on('end', resolve),
            )
            .on('error', () => resolve()),
        );
        sent++;
        await new Promise((r) => setTimeout(r, 20));
      }
      return sent;
    })();
  }, 120_000);

  afterAll(async () => {
    stopTraffic = true;
    await traffic;
    for (const s of sockets) s.destroy();
    await prometheus?.stop();
    await alertmanager?.stop();
    await api?.close();
    await caddy?.stop();
    await smtp?.close();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
  });

  it('exports the host → service join and the thresholds only with the token', async () => {
    const denied = await fetch(`${api.url}/metrics/alert-targets`);
    expect(denied.status).toBe(401);
    const r = await fetch(`${api.url}/metrics/alert-targets`, {
      headers: { authorization: `Bearer ${receiverToken}` },
    });
    const text = await r.text();
    expect(text).toContain(`selfdevop_service_host{org=`);
    expect(text).toContain(`service="${serviceId}"`);
    expect(text).toContain(`host="${host}"`);
    expect(text).toContain(`rule="http_5xx_spike"} 0.05`);
  });

  it('turns a service answering 500s into one alert.firing mail, with its page and runbook', async () => {
    const mail = await waitFor(
      'the alert mail',
      () => smtp.received.find((m) => m.text.includes('5xx responses spiking')) ?? null,
    );
    expect(mail.to).toBe('oncall@example.com');
    expect(mail.text).toContain(`https://sdo.example.test/dashboard/services/${serviceId}`);
    expect(mail.text).toContain('docs/runbooks/app-down.md');
    const audit = await api.request('GET', '/api/audit-events?action=alert.firing', { token });
    expect(
      audit.body.items.some((e: { data: { rule: string } }) => e.data.rule === 'http_5xx_spike'),
      audit.text,
    ).toBe(true);
  }, 120_000);

  it('charts the same traffic from Prometheus: requests and 5xx per second', async () => {
    const m = await waitFor('the request series', async () => {
      const r = await api.request('GET', `/api/services/${serviceId}/metrics?range=1h`, { token });
      const requests = r.body.series?.find((s: { key: string }) => s.key === 'requests');
      return r.body.available && requests?.points.length > 0 ? r.body : null;
    });
    const byKey = new Map(
      m.series.map((s: { key: string; points: [number, number][] }) => [s.key, s.points]),
    );
    const last = (k: string) => (byKey.get(k) as [number, number][]).at(-1)![1];
    expect(last('requests')).toBeGreaterThan(0);
    // Every request is a 500: the 5xx rate is the request rate, 4xx none.
    expect(last('errors_5xx')).toBeCloseTo(last('requests'), 5);
    expect(byKey.get('errors_4xx')).toEqual([]);
  }, 120_000);

  it('draws those series on the service page in Chromium, never a broken chart', async () => {
    const browser = await launchChromium();
    try {
      await browser.context.addCookies([{ name: 'sdo_session', value: token, url: api.url }]);
      const page = await browser.context.newPage();
      page.setDefaultTimeout(20_000);
      const answer = await page.goto(`${api.url}/dashboard/services/${serviceId}?range=1h`);
      expect(answer?.status()).toBe(200);
      await page.getByRole('heading', { name: 'Metrics' }).waitFor();
      expect(await page.locator('#metrics-unavailable').count()).toBe(0);
      // Requests and 5xx have points: a line with a dot on the latest, visible even while
      // the window holds one point; 4xx has none and says so instead of drawing a flat zero.
      const marks = async (chart: string) => {
        const figure = page.locator(`figure[data-chart="${chart}"]`);
        const lines = await figure.locator('polyline').count();
        const dots = await figure.locator('circle').count();
        const text = ((await figure.textContent()) ?? '').replace(/\s+/g, ' ');
        return { lines, dots, text };
      };
      const requests = await marks('requests');
      expect(requests).toMatchObject({ lines: 1, dots: 1 });
      expect(requests.text).toMatch(/Requests[^:]*: [0-9.]+ /);
      const errors = await marks('errors_4xx,errors_5xx');
      expect(errors).toMatchObject({ lines: 1, dots: 1 });
      expect(errors.text).toContain('no data');
      expect(errors.text).toMatch(/5xx[^:]*: [0-9.]+ /);
      await mkdir(shots, { recursive: true });
      await page.screenshot({ path: join(shots, 'service-charts.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 120_000);

  it('sums the project: its requests and 5xx, and the WebSockets open through Caddy', async () => {
    // Two WebSockets through the edge, held open until the suite ends.
    for (let i = 0; i < 2; i++)
      await new Promise<void>((resolve, reject) => {
        http
          .request({
            host: '127.0.0.1',
            port: caddy.httpPort,
            path: '/socket',
            headers: { host, connection: 'Upgrade', upgrade: 'websocket' },
          })
          .on('upgrade', (_res, socket) => {
            sockets.push(socket);
            resolve();
          })
          .on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)))
          .on('error', reject)
          .end();
      });
    // A burst of its own (the background loop may have ended by now): 100 requests, 500s.
    for (let i = 0; i < 100; i++)
      await new Promise<void>((resolve) =>
        http
          .get({ host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host } }, (res) =>
            res.resume().on('end', resolve),
          )
          .on('error', () => resolve()),
      );
    const m = await waitFor('two open connections in the project series', async () => {
      const r = await api.request('GET', `/api/projects/${projectId}/metrics?range=1h`, { token });
      const latest = (k: string) =>
        r.body.series?.find((s: { key: string }) => s.key === k)?.points.at(-1)?.[1] ?? 0;
      return r.body.available && latest('connections') >= 2 && latest('requests') > 0
        ? r.body
        : null;
    });
    expect(m).toMatchObject({ projectId, services: 1, environments: 1, stepSeconds: 60 });
    const last = (k: string) =>
      (m.series.find((s: { key: string }) => s.key === k).points as [number, number][]).at(-1)![1];
    expect(last('requests')).toBeGreaterThan(0);
    expect(last('errors_5xx')).toBeCloseTo(last('requests'), 5);
    // The two sockets, and at most the one request of the traffic loop in flight.
    expect(last('connections')).toBeGreaterThanOrEqual(2);
    expect(last('connections')).toBeLessThanOrEqual(3);
  }, 120_000);

  it('draws the project charts in Chromium and switches range, never a broken chart', async () => {
    const browser = await launchChromium();
    try {
      await browser.context.addCookies([{ name: 'sdo_session', value: token, url: api.url }]);
      const page = await browser.context.newPage();
      page.setDefaultTimeout(20_000);
      const answer = await page.goto(`${api.url}/dashboard/projects/${projectId}`);
      expect(answer?.status()).toBe(200);
      await page.getByRole('heading', { name: 'Metrics' }).waitFor();
      expect(await page.locator('#metrics-unavailable').count()).toBe(0);
      const figures = page.locator('figure.chart');
      expect(
        await figures.evaluateAll((fs) => fs.map((f) => f.getAttribute('data-chart'))),
      ).toEqual(['requests', 'errors_5xx', 'latency_p95', 'connections', 'cpu', 'memory']);
      for (const chart of ['requests', 'errors_5xx', 'connections']) {
        const figure = page.locator(`figure[data-chart="${chart}"]`);
        expect(await figure.locator('polyline').count(), chart).toBe(1);
        expect(await figure.locator('circle').count(), chart).toBe(1);
      }
      const open = (
        (await page.locator('figure[data-chart="connections"]').textContent()) ?? ''
      ).replace(/\s+/g, ' ');
      expect(open).toMatch(/Open connections: [23]\b/);
      // No replica runs (the collector has nothing to report): said, not drawn as zero.
      expect(await page.locator('figure[data-chart="cpu"]').textContent()).toContain('no data');
      expect(await page.getByRole('link', { name: 'Last hour' }).getAttribute('aria-current')).toBe(
        'page',
      );
      await mkdir(shots, { recursive: true });
      await page.screenshot({ path: join(shots, 'project-charts.png'), fullPage: true });
      await page.getByRole('link', { name: 'Last day' }).click();
      await page.waitForURL(/range=1d/);
      expect(await page.getByRole('link', { name: 'Last day' }).getAttribute('aria-current')).toBe(
        'page',
      );
      // A day's points fall every 10 minutes on the clock: the traffic of the last minutes
      // may not have reached one yet, so each chart draws a line or says so, never breaks.
      expect(await page.locator('#metrics-unavailable').count()).toBe(0);
      expect(await page.locator('figure.chart').count()).toBe(6);
      const day = page.locator('figure[data-chart="requests"]');
      expect(
        (await day.locator('polyline').count()) +
          (await day.getByText('no data in this window').count()),
      ).toBe(1);
      expect(await page.locator('.hint', { hasText: 'one point every 10 min' }).count()).toBe(1);
      await page.screenshot({ path: join(shots, 'project-charts-day.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 120_000);

  it('refuses a threshold out of range with a 400 naming the bounds, and keeps one in range', async () => {
    const bad = await api.request('PUT', '/api/alerts/thresholds', {
      token,
      body: { serviceId, rule: 'latency_p95', value: 1000 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('between 0.01 and 120');
    const ok = await api.request('PUT', '/api/alerts/thresholds', {
      token,
      body: { serviceId, rule: 'http_5xx_spike', value: 0.5 },
    });
    expect(ok.status, ok.text).toBe(200);
    const rules = await api.request('GET', `/api/alerts/rules?serviceId=${serviceId}`, { token });
    expect(rules.body.items.find((r: { id: string }) => r.id === 'http_5xx_spike')).toMatchObject({
      override: 0.5,
      threshold: 0.5,
    });
  });
});
