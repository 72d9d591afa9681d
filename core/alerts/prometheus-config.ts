/**
 * selfdevop's Prometheus configuration as data, rendered once for the Compose stack
 * (`npm run prometheus:config` → selfhost/images/prometheus/prometheus.yml) and for the tests
 * with their loopback addresses, so what the tests scrape is what the stack scrapes.
 */

/** Where each scraped process answers, and the files Prometheus reads. */
export interface PrometheusTargets {
  /** Caddy's admin API (its `/metrics`: per-host request counts and latency). */
  caddy: string;
  /** The control API: its own `/metrics` and the alert targets (host → service, thresholds). */
  api: string;
  /** The worker's STATS_LISTEN: replica, node, backup and certificate figures, queue depth, node checks, job durations. */
  worker: string;
  /** Alertmanager; without it the rules are evaluated and alert nobody. */
  alertmanager?: string;
  /** The bearer token (ALERT_RECEIVER_TOKEN) the API and the worker ask of Prometheus, as a file. */
  tokenFile: string;
  /** The rules file (`prometheusRuleGroups()`). */
  ruleFile: string;
  /** Scrape interval of the API and the worker (their figures feed charts and slow rules). */
  intervalSeconds: number;
  /**
   * Scrape interval of Caddy and the rules' evaluation interval (`intervalSeconds` unless
   * given): the 5xx and latency rules read Caddy's series, and a rate needs two scrapes.
   */
  alertIntervalSeconds?: number;
}

/** The Compose stack's: service names on its network, files where the image and entrypoint put them. */
export const composePrometheusTargets: PrometheusTargets = {
  caddy: 'caddy:2019',
  api: 'api:3000',
  worker: 'worker:9464',
  alertmanager: 'alertmanager:9093',
  tokenFile: '/prometheus/.alert-receiver-token',
  ruleFile: '/etc/prometheus/selfdevop.rules.json',
  intervalSeconds: 15,
  // Alert to message within 45 s (ARCHITECTURE.md, "Alert to message"): two scrapes and an
  // evaluation ≤ 15 s, `for` 15 s, Alertmanager's group_wait 5 s, the channel's first wait 5 s.
  alertIntervalSeconds: 5,
};

export interface PrometheusConfig {
  global: { scrape_interval: string; evaluation_interval: string };
  rule_files: string[];
  alerting?: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: {
    job_name: string;
    scrape_interval?: string;
    metrics_path?: string;
    authorization?: { credentials_file: string };
    static_configs: { targets: string[] }[];
  }[];
}

/**
 * The scrape jobs: Caddy, the API, the alert targets (bearer: they name every org's hosts)
 * and the worker (bearer: its figures name every org's services and nodes).
 */
export function prometheusConfig(t: PrometheusTargets): PrometheusConfig {
  const every = `${t.intervalSeconds}s`;
  const alerting = `${t.alertIntervalSeconds ?? t.intervalSeconds}s`;
  const bearer = { authorization: { credentials_file: t.tokenFile } };
  return {
    global: { scrape_interval: every, evaluation_interval: alerting },
    rule_files: [t.ruleFile],
    ...(t.alertmanager
      ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [t.alertmanager] }] }] } }
      : {}),
    scrape_configs: [
      {
        job_name: 'caddy',
        ...(alerting === every ? {} : { scrape_interval: alerting }),
        static_configs: [{ targets: [t.caddy] }],
      },
      { job_name: 'selfdevop-api', static_configs: [{ targets: [t.api] }] },
      {
        job_name: 'selfdevop-alert-targets',
        metrics_path: '/metrics/alert-targets',
        ...bearer,
        static_configs: [{ targets: [t.api] }],
      },
      { job_name: 'selfdevop-worker', ...bearer, static_configs: [{ targets: [t.worker] }] },
    ],
  };
}
