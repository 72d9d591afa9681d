/**
 * The alert rules, defined once: Prometheus evaluates them self-hosted (rendered to a rules
 * file by `prometheusRuleGroups`), CloudWatch alarms in the cloud are made from the same
 * list. Every rule reads bounded series only: per org, service, environment, node, replica
 * or domain, never per request or path.
 */

export const alertRuleIds = [
  'http_5xx_spike',
  'latency_p95',
  'crash_loop',
  'node_unreachable',
  'disk_full',
  'cert_expiring',
  'backup_failed',
] as const;
export type AlertRuleId = (typeof alertRuleIds)[number];

export interface AlertRule {
  id: AlertRuleId;
  title: string;
  /** What the threshold measures, for the API, the CLI and the page. */
  thresholdMeaning: string;
  unit: 'ratio' | 'seconds' | 'restarts' | 'days' | 'count';
  defaultThreshold: number;
  /** Accepted thresholds, inclusive; anything else is a 400. */
  min: number;
  max: number;
  /** Whether a service may override the threshold (a node's disk is not a service's). */
  perService: boolean;
  /** How long the condition must hold before the alert fires. */
  forSeconds: number;
  /**
   * The least evidence a rule needs, whatever its threshold: a share of a handful of
   * responses says nothing, so a ratio rule also wants this many events in its window.
   */
  floor?: { events: number };
  /**
   * The span the rule reads its series over (PromQL's range; the cloud collector sums its
   * rounds over the same span), for the rules that read a rate, an increase or a quantile.
   */
  windowSeconds?: number;
  severity: 'critical' | 'warning';
  /** docs/runbooks/<runbook>.md */
  runbook: string;
}

export const alertRules: readonly AlertRule[] = [
  {
    id: 'http_5xx_spike',
    title: '5xx responses spiking',
    thresholdMeaning: 'share of responses that are 5xx over 1 minute (and at least 5 of them)',
    unit: 'ratio',
    defaultThreshold: 0.05,
    min: 0.001,
    max: 1,
    perService: true,
    // With the 1-minute window, three evaluations in a row (Caddy scraped every 5 s): a
    // failing app pages within ~45 s, a blip that clears within 15 s does not.
    forSeconds: 15,
    // One 500 in a quiet minute is a 100 % share: without a floor it pages someone at 3 a.m.
    // Five in the minute is still met within one scrape by an app failing under any real
    // traffic, and by an app down outright that is asked more than every 12 s.
    floor: { events: 5 },
    windowSeconds: 60,
    severity: 'critical',
    runbook: 'app-down',
  },
  {
    id: 'latency_p95',
    title: 'p95 latency over threshold',
    thresholdMeaning: 'p95 response time over 5 minutes, in seconds',
    unit: 'seconds',
    defaultThreshold: 1,
    min: 0.01,
    max: 120,
    perService: true,
    forSeconds: 300,
    windowSeconds: 300,
    severity: 'warning',
    runbook: 'app-down',
  },
  {
    id: 'crash_loop',
    title: 'Replica crash-looping',
    thresholdMeaning: 'restarts of one replica within 15 minutes',
    unit: 'restarts',
    defaultThreshold: 3,
    min: 1,
    max: 100,
    perService: true,
    forSeconds: 0,
    windowSeconds: 900,
    severity: 'critical',
    runbook: 'app-down',
  },
  {
    id: 'node_unreachable',
    title: 'Node unreachable',
    thresholdMeaning: 'seconds the node has not answered',
    unit: 'seconds',
    defaultThreshold: 120,
    min: 30,
    max: 3600,
    perService: false,
    forSeconds: 0,
    severity: 'critical',
    runbook: 'node-full',
  },
  {
    id: 'disk_full',
    title: 'Disk almost full',
    thresholdMeaning: 'share of the node disk used',
    unit: 'ratio',
    defaultThreshold: 0.85,
    min: 0.5,
    max: 0.99,
    perService: false,
    forSeconds: 300,
    severity: 'warning',
    runbook: 'node-full',
  },
  {
    id: 'cert_expiring',
    title: 'Certificate expiring',
    thresholdMeaning: 'days left on a custom domain certificate',
    unit: 'days',
    defaultThreshold: 14,
    min: 1,
    max: 60,
    perService: true,
    forSeconds: 0,
    severity: 'warning',
    runbook: 'cert-not-issuing',
  },
  {
    id: 'backup_failed',
    title: 'Backup or restore drill failed',
    thresholdMeaning: 'failed backups or drills in a row',
    unit: 'count',
    defaultThreshold: 1,
    min: 1,
    max: 10,
    perService: false,
    forSeconds: 0,
    severity: 'critical',
    runbook: 'db-degraded',
  },
];

export const alertRuleById = (id: string): AlertRule | undefined =>
  alertRules.find((r) => r.id === id);

/** The series the rules and the charts read, and the labels each carries. */
export const metricNames = {
  /** Caddy's, per host (`metrics.per_host`): labels server, handler, host, code, method, le. */
  httpDuration: 'caddy_http_request_duration_seconds',
  /** Caddy's requests being served, per host and handler (a WebSocket for as long as it is open). */
  inFlight: 'caddy_http_requests_in_flight',
  /** 1 per host a live route serves: org, service, environment, host. */
  serviceHost: 'selfdevop_service_host',
  /** Per replica: org, service, environment, replica. */
  replicaCpu: 'selfdevop_replica_cpu_seconds_total',
  replicaMemory: 'selfdevop_replica_memory_bytes',
  replicaRestarts: 'selfdevop_replica_restarts_total',
  /** Per node: org, node. */
  nodeUp: 'selfdevop_node_up',
  nodeLastSeen: 'selfdevop_node_last_seen_timestamp_seconds',
  nodeCpu: 'selfdevop_node_cpu_ratio',
  nodeMemory: 'selfdevop_node_memory_used_ratio',
  nodeDisk: 'selfdevop_node_disk_used_ratio',
  /** Per active custom domain (the worker's usage endpoint): org, service, environment, domain. */
  certExpiry: 'selfdevop_certificate_expiry_timestamp_seconds',
  /** Per data service: org, data_service. */
  backupFailures: 'selfdevop_backup_failures_in_a_row',
  /** Messages waiting per worker queue (the worker's usage endpoint, self-hosted): queue. */
  queueDepth: 'selfdevop_queue_depth',
  /** How long each queue message's handler took (the worker's Metrics): queue, outcome, le. */
  jobDuration: 'selfdevop_job_duration_seconds',
  /** The effective threshold of each per-service rule: org, service, rule. */
  threshold: 'selfdevop_alert_threshold',
} as const;

/** Caddy's per-host series, given each host's service labels. */
const byService = (expr: string) =>
  `sum by (org, service, environment) (${expr} * on (host) group_left (org, service, environment) ${metricNames.serviceHost})`;

const thresholdOf = (rule: AlertRuleId) =>
  `on (org, service) group_left ${metricNames.threshold}{rule="${rule}"}`;

/** A rule's window as a PromQL range: whole minutes as `Nm`, else seconds. */
const rangeOf = (rule: AlertRule) => {
  const s = rule.windowSeconds ?? 60;
  return s % 60 === 0 ? `${s / 60}m` : `${s}s`;
};

/** The PromQL of each rule, comparing against the exported thresholds or the default. */
export function promqlOf(rule: AlertRule): string {
  const d = `${metricNames.httpDuration}`;
  const w = rangeOf(rule);
  switch (rule.id) {
    case 'http_5xx_spike':
      // One minute, not five: over 5 minutes an app answering only 500s needs 15 s just to
      // reach a 5 % share, and its share stays high for minutes after it recovers.
      // `and` keeps the share as the alert's value; the floor only gates it.
      return `((${byService(`rate(${d}_count{code=~"5.."}[${w}])`)} / ${byService(`rate(${d}_count[${w}])`)}) > ${thresholdOf(rule.id)}) and on (org, service, environment) ${byService(`increase(${d}_count{code=~"5.."}[${w}])`)} >= ${rule.floor?.events ?? 1}`;
    case 'latency_p95':
      return `histogram_quantile(0.95, sum by (org, service, environment, le) (rate(${d}_bucket[${w}]) * on (host) group_left (org, service, environment) ${metricNames.serviceHost})) > ${thresholdOf(rule.id)}`;
    case 'crash_loop':
      return `increase(${metricNames.replicaRestarts}[${w}]) >= ${thresholdOf(rule.id)}`;
    case 'node_unreachable':
      return `time() - ${metricNames.nodeLastSeen} > ${rule.defaultThreshold}`;
    case 'disk_full':
      return `${metricNames.nodeDisk} > ${rule.defaultThreshold}`;
    case 'cert_expiring':
      return `(${metricNames.certExpiry} - time()) / 86400 < ${thresholdOf(rule.id)}`;
    case 'backup_failed':
      return `${metricNames.backupFailures} >= ${rule.defaultThreshold}`;
  }
}

/** A Prometheus rule group as data: the adapter or script writes it out (JSON is valid YAML). */
export interface PrometheusRuleGroups {
  groups: {
    name: string;
    rules: {
      alert: string;
      expr: string;
      for: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }[];
  }[];
}

export function prometheusRuleGroups(): PrometheusRuleGroups {
  return {
    groups: [
      {
        name: 'selfdevop',
        rules: alertRules.map((r) => ({
          alert: r.id,
          expr: promqlOf(r),
          for: `${r.forSeconds}s`,
          labels: { rule: r.id, severity: r.severity },
          annotations: { summary: r.title, runbook: `docs/runbooks/${r.runbook}.md` },
        })),
      },
    ],
  };
}
