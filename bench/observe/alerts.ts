/**
 * `bench:observe` scenario 1 (issue 16): `alertToNotificationSeconds` and
 * `groupedMessagesPerChannel`, for real. Three services of one org sit behind a real Caddy
 * (per-host metrics) on loopback apps answering 200 under a bounded load; at the switch they
 * all answer 500. A real Prometheus (/usr/bin/prometheus) scrapes Caddy and selfdevop's alert
 * targets and evaluates the shipped 5xx rule, a real Alertmanager
 * (/usr/bin/prometheus-alertmanager) posts to selfdevop's receiver, and the API's workers
 * deliver `alert.firing` to a Slack channel (a loopback sink that checks Slack's payload
 * shape, through the composition root's test override) and an e-mail channel (a real SMTP
 * server, `smtp-server`).
 *
 * - alertToNotificationSeconds: from the switch to the moment the last of the two channels
 *   has its message (goal ≤ 45);
 * - groupedMessagesPerChannel: messages each channel got for the storm of three alerts, read
 *   after a quiet period past the grouping window (goal = 1, the larger of the two).
 *
 * The configuration is the shipped one, nothing shortened: the rules file is
 * `prometheusRuleGroups()` (what selfhost/images/prometheus/selfdevop.rules.json holds), the
 * Prometheus configuration is `prometheusConfig()` with the Compose stack's intervals and
 * loopback addresses (Caddy every 5 s, evaluation every 5 s), the Alertmanager configuration
 * is selfhost/images/alertmanager/alertmanager.yml with only the receiver's address and the
 * token file substituted, and the channels are created with their default grouping (first
 * message after `firstMessageWaitSeconds`, follow-ups once per `groupWindowSeconds`).
 *
 * Loopback only; the load is bounded in count and time; everything started is stopped, also on failure.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { composePrometheusTargets, prometheusConfig } from '../../core/alerts/prometheus-config.ts';
import { prometheusRuleGroups } from '../../core/alerts/rules.ts';
import { firstMessageWaitSeconds } from '../../core/notification-channels/notify.ts';
import { defaultGroupWindowSeconds } from '../../core/notification-channels/use-cases.ts';
import { aRelease } from '../../test/contracts/store/builders.ts';
import { startSelfhostApi } from '../../test/support/api.ts';
import { startCaddy } from '../../test/support/caddy.ts';
import { freePort } from '../../test/support/ports.ts';
import { startAlertmanager, startPrometheus } from '../../test/support/prometheus.ts';
import { available, services as components } from '../../test/support/services.ts';
import { startSmtpServer } from '../../test/support/smtp.ts';
import { round } from '../support/stats.ts';

const services = 3;
const fixFor = (name: 'prometheus' | 'caddy'): string => components[name].fix;
const shippedAlertmanagerFile = new URL(
  '../../selfhost/images/alertmanager/alertmanager.yml',
  import.meta.url,
);
/** After the first message, how long no second one may come: past the channel's follow-up window. */
const quietSeconds = defaultGroupWindowSeconds + 15;
/** The whole wait for both messages; past it the figure is "not reached". */
const budgetSeconds = 180;
/** The load through Caddy: at most this many requests, and never past the budget. */
const maxRequests = 60_000;

/** What Slack's incoming webhooks accept: JSON with a `text`, and optional mrkdwn section blocks. */
function isSlackPayload(body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as { text?: unknown; blocks?: unknown };
  if (typeof b.text !== 'string' || b.text.length === 0 || b.text.length > 40_000) return false;
  if (b.blocks === undefined) return true;
  return (
    Array.isArray(b.blocks) &&
    b.blocks.length <= 50 &&
    b.blocks.every(
      (k: { type?: unknown; text?: { type?: unknown; text?: unknown } }) =>
        k.type === 'section' &&
        k.text?.type === 'mrkdwn' &&
        typeof k.text.text === 'string' &&
        k.text.text.length <= 3000,
    )
  );
}

export interface AlertsResult {
  goals: {
    alertToNotificationSeconds: { goal: string; got: number | null; met: boolean };
    groupedMessagesPerChannel: { goal: string; got: number; met: boolean };
  };
  detail: Record<string, unknown>;
}

export async function alertToNotification(log: (line: string) => void): Promise<AlertsResult> {
  for (const need of ['prometheus', 'caddy'] as const)
    if (!(await available(need))) throw new Error(`bench:observe needs ${need}: ${fixFor(need)}`);
  const receiverToken = randomBytes(24).toString('base64url');
  const stops: (() => Promise<void>)[] = [];
  let failing = false;
  let stopLoad = false;
  let load: Promise<{ sent: number; answered: Record<string, number> }> | null = null;
  try {
    const apps: string[] = [];
    for (let k = 0; k < services; k++) {
      const app = http.createServer((_req, res) =>
        res.writeHead(failing ? 500 : 200).end(failing ? 'boom' : 'ok'),
      );
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
      stops.push(() => new Promise<void>((r) => app.close(() => r())));
      apps.push(`127.0.0.1:${(app.address() as AddressInfo).port}`);
    }
    const slackPosts: { at: number; ok: boolean; text: string }[] = [];
    const sink = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(raw);
        } catch {
          /* answered as Slack answers a body it cannot read */
        }
        const ok = isSlackPayload(body) && req.headers['content-type'] === 'application/json';
        slackPosts.push({ at: Date.now(), ok, text: ok ? (body as { text: string }).text : raw });
        res.writeHead(ok ? 200 : 400).end(ok ? 'ok' : 'invalid_payload');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    stops.push(() => new Promise<void>((r) => sink.close(() => r())));
    const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/services/T0/B0/bench`;

    const caddy = await startCaddy();
    stops.push(() => caddy.stop());
    const smtp = await startSmtpServer();
    stops.push(() => smtp.close());
    const mailSeen: number[] = [];
    const prometheus = await startPrometheus({ config: 'global: {scrape_interval: 2s}\n' });
    stops.push(() => prometheus.stop());
    const api = await startSelfhostApi({
      workers: true,
      webhooksToLoopback: true,
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl: 'https://sdo.example.test',
      prometheusUrl: prometheus.url,
      alertReceiverToken: receiverToken,
    });
    stops.push(() => api.close());

    const signup = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'oncall@example.com', password: 'correct horse battery' },
    });
    const token = signup.body.token as string;
    const orgId = signup.body.org.id as string;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    const environmentId = project.body.environments[0].id as string;
    const hosts: string[] = [];
    for (let k = 0; k < services; k++) {
      const svc = await api.request('POST', '/api/services', {
        token,
        body: {
          projectId: project.body.id,
          name: `web${k}`,
          image: 'busybox:1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      if (svc.status !== 201) throw new Error(`service: ${svc.status} ${svc.text}`);
      const host = svc.body.hosts.find(
        (h: { environment: string }) => h.environment === 'production',
      ).host as string;
      hosts.push(host);
      // Live, as a completed deploy leaves it: the release row, and its route in Caddy.
      await api.system.api.store.withOrg(orgId, (r) =>
        r.releases.insert(
          aRelease(orgId, svc.body.id as string, environmentId, {
            status: 'completed',
            upstream: apps[k]!,
          }),
        ),
      );
      await caddy.admin.request('POST', '/config/apps/http/servers/selfdevop/routes', {
        match: [{ host: [host] }],
        handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: apps[k]! }] }],
      });
    }
    for (const body of [
      { kind: 'slack', name: 'on-call slack', url: sinkUrl },
      { kind: 'email', name: 'on-call mail', address: 'oncall@example.com' },
    ]) {
      const channel = await api.request('POST', '/api/notification-channels', {
        token,
        body: { ...body, events: ['alert.firing'] },
      });
      if (channel.status !== 201) throw new Error(`channel: ${channel.status} ${channel.text}`);
    }

    // The shipped Alertmanager file, its Compose addresses swapped for this run's.
    const tokenDir = await mkdtemp(join(tmpdir(), 'sdo-bench-am-'));
    stops.push(() => rm(tokenDir, { recursive: true, force: true }));
    const tokenFile = join(tokenDir, 'token');
    await writeFile(tokenFile, receiverToken, { mode: 0o600 });
    const shippedAm = await readFile(shippedAlertmanagerFile, 'utf8');
    const amConfig = shippedAm
      .replace('http://api:3000/', `${api.url}/`)
      .replace('/alertmanager/.alert-receiver-token', tokenFile);
    if (!amConfig.includes(api.url) || !amConfig.includes(tokenFile))
      throw new Error(
        'the shipped alertmanager.yml no longer names http://api:3000/ and its token file',
      );
    const amRoute = (parse(amConfig) as { route: { group_wait: string } }).route;
    const alertmanager = await startAlertmanager(amConfig);
    stops.push(() => alertmanager.stop());
    const rules = prometheusRuleGroups();
    const rule5xx = rules.groups[0]!.rules.find((r) => r.alert === 'http_5xx_spike')!;
    await writeFile(join(prometheus.dir, 'selfdevop.rules.json'), JSON.stringify(rules));
    await writeFile(join(prometheus.dir, 'token'), receiverToken);
    const promConfig = prometheusConfig({
      ...composePrometheusTargets,
      caddy: new URL(caddy.adminUrl).host,
      api: new URL(api.url).host,
      // No worker runs here: its job scrapes a closed loopback port, as a stack whose worker is down.
      worker: `127.0.0.1:${await freePort()}`,
      alertmanager: new URL(alertmanager.url).host,
      tokenFile: 'token',
      ruleFile: 'selfdevop.rules.json',
    });
    await writeFile(join(prometheus.dir, 'prometheus.yml'), JSON.stringify(promConfig));
    await prometheus.reload();

    // The load: a few requests in flight across the hosts, bounded in count and time.
    const loadDeadline = Date.now() + (budgetSeconds + quietSeconds + 60) * 1000;
    load = (async () => {
      let sent = 0;
      const answered: Record<string, number> = {};
      const worker = async (w: number) => {
        while (!stopLoad && sent < maxRequests && Date.now() < loadDeadline) {
          const host = hosts[(sent + w) % hosts.length]!;
          sent++;
          // node:http, not fetch: fetch does not send a Host header of our choosing.
          const status = await new Promise<number>((resolve) =>
            http
              .get(
                { host: '127.0.0.1', port: caddy.httpPort, path: '/', headers: { host } },
                (res) => res.resume().on('end', () => resolve(res.statusCode ?? 0)),
              )
              .on('error', () => resolve(0)),
          );
          answered[status] = (answered[status] ?? 0) + 1;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await Promise.all([0, 1, 2, 3].map(worker));
      return { sent, answered };
    })();

    // Healthy first, until Prometheus has the traffic and the host → service join, so the
    // 5xx share starts from a known 0 (a rate needs two samples).
    const healthySince = Date.now();
    for (;;) {
      const q = await fetch(
        `${prometheus.url}/api/v1/query?query=${encodeURIComponent(
          'count(sum by (service) (rate(caddy_http_request_duration_seconds_count[1m]) * on (host) group_left (service) selfdevop_service_host) > 0)',
        )}`,
      ).then((r) => r.json() as Promise<{ data?: { result?: { value: [number, string] }[] } }>);
      if (Number(q.data?.result?.[0]?.value[1] ?? 0) >= services) break;
      if (Date.now() - healthySince > 90_000)
        throw new Error('Prometheus did not see the healthy traffic of every service in 90 s');
      await new Promise((r) => setTimeout(r, 500));
    }
    log(`alerts: healthy traffic seen by Prometheus after ${Date.now() - healthySince} ms`);

    const switchedAt = Date.now();
    failing = true;
    const watch = setInterval(() => {
      while (mailSeen.length < smtp.received.length) mailSeen.push(Date.now());
    }, 50);
    stops.push(async () => clearInterval(watch));
    const first = async (what: () => number | undefined): Promise<number | null> => {
      while (Date.now() - switchedAt < budgetSeconds * 1000) {
        const at = what();
        if (at !== undefined) return at;
        await new Promise((r) => setTimeout(r, 50));
      }
      return null;
    };
    const [slackAt, mailAt] = await Promise.all([
      first(() => slackPosts.find((p) => p.ok)?.at),
      first(() => mailSeen[0]),
    ]);
    // Prometheus sends an alert's firing instant as its startsAt: where the rule's part ends.
    const firingAt = await fetch(`${alertmanager.url}/api/v2/alerts`)
      .then((r) => r.json() as Promise<{ startsAt: string; labels: Record<string, string> }[]>)
      .then((alerts) =>
        alerts
          .filter((a) => a.labels.alertname === 'http_5xx_spike')
          .map((a) => Date.parse(a.startsAt)),
      );
    // Quiet period: whatever else arrives for this storm counts against the grouping.
    await new Promise((r) => setTimeout(r, quietSeconds * 1000));
    while (mailSeen.length < smtp.received.length) mailSeen.push(Date.now());
    stopLoad = true;
    const traffic = await load;
    load = null;
    const audit = await api.request('GET', '/api/audit-events?action=alert.firing', { token });
    const firingEvents = (audit.body.items ?? []).length as number;
    const deliveredBoth = slackAt !== null && mailAt !== null;
    const seconds = deliveredBoth
      ? round((Math.max(slackAt, mailAt) - switchedAt) / 1000, 1)
      : null;
    const slackMessages = slackPosts.filter((p) => p.ok).length;
    const mailMessages = smtp.received.filter((m) => m.to === 'oncall@example.com').length;
    const perChannel = Math.max(slackMessages, mailMessages);
    const lastText = slackPosts.find((p) => p.ok)?.text ?? '';
    return {
      goals: {
        alertToNotificationSeconds: {
          goal: '<= 45',
          got: seconds,
          met: seconds !== null && seconds <= 45,
        },
        groupedMessagesPerChannel: {
          goal: '= 1',
          got: perChannel,
          met: slackMessages === 1 && mailMessages === 1,
        },
      },
      detail: {
        services,
        slackSeconds: slackAt === null ? null : round((slackAt - switchedAt) / 1000, 1),
        mailSeconds: mailAt === null ? null : round((mailAt - switchedAt) / 1000, 1),
        // The rule's part (scrapes, the 5xx share crossing its threshold, `for`), then the rest.
        prometheusFiringSeconds: firingAt.length
          ? round((Math.min(...firingAt) - switchedAt) / 1000, 1)
          : null,
        slackMessages,
        mailMessages,
        slackRefused: slackPosts.filter((p) => !p.ok).length,
        alertFiringEvents: firingEvents,
        slackHeadline: lastText.split('\n')[0],
        traffic,
        shipped: {
          http5xxRule: { expr: rule5xx.expr, for: rule5xx.for },
          scrapeSeconds: {
            caddy: composePrometheusTargets.alertIntervalSeconds,
            others: composePrometheusTargets.intervalSeconds,
          },
          evaluationInterval: promConfig.global.evaluation_interval,
          alertmanagerGroupWait: amRoute.group_wait,
          channelFirstMessageWaitSeconds: firstMessageWaitSeconds,
          channelGroupWindowSeconds: defaultGroupWindowSeconds,
        },
      },
    };
  } finally {
    stopLoad = true;
    await load?.catch(() => undefined);
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}
