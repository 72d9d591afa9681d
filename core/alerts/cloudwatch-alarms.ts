import { alertRules, type AlertRule, type AlertRuleId } from './rules.ts';

/**
 * The cloud edition's CloudWatch alarms, made from the same rule list Prometheus evaluates
 * self-hosted (core/alerts/rules.ts): the CDK stack creates one alarm per entry, so a rule
 * added, removed or re-thresholded there changes both modes. Each alarm is a Metrics
 * Insights query with GROUP BY, so every org's node, domain or data service is a contributor
 * of its own, and one alarm covers tenants that sign up after the stack was deployed.
 *
 * CloudWatch compares each series with one constant. The node, certificate, backup and
 * crash-loop alarms use the rule's default threshold (a service's own is applied
 * self-hosted, where Prometheus joins it, and by the collector's crash-loop event). The
 * edge rules' alarms read a figure the collector already divided by the service's own
 * threshold (`edgeRuleMetrics`), so one alarm at 1 honours every service's override.
 */
export interface CloudWatchAlarmPlan {
  rule: AlertRuleId;
  /** The Metrics Insights query (one series per contributor). */
  query: string;
  comparison: 'GreaterThanOrEqualToThreshold' | 'GreaterThanThreshold' | 'LessThanThreshold';
  threshold: number;
  periodSeconds: number;
  /** Periods the condition must hold: the rule's `for`, at least one. */
  evaluationPeriods: number;
  description: string;
}

/** The namespaces the cloud writes: the usage collector's EMF, and the functions' own metrics. */
export interface CloudWatchNamespaces {
  /** `METRICS_NAMESPACE` (EmfUsageSink): node, certificate and backup figures. */
  usage: string;
  /** EmfMetrics' namespace: the node checks' `node_up`, published without dimensions as its total. */
  control: string;
}

/**
 * The edge rules' figures the usage collector writes per service environment (EMF,
 * Org/Service/Environment), each over its rule's window and divided by the service's
 * threshold. The division and the 5xx floor happen there, not in the alarm: an alarm takes
 * one Metrics Insights query, and metric math cannot pair two queries' results contributor
 * by contributor (5xx by requests, share beside count), nor take a percentile of a
 * histogram CloudWatch never saw. So the collector computes the share over the rule's
 * minute, writes 0 while the errors in it are below `floor.events`, and the p95 over the
 * rule's 5 minutes from Caddy's bucket deltas.
 */
export const edgeRuleMetrics = {
  http_5xx_spike: 'Http5xxShareOfThreshold',
  latency_p95: 'LatencyP95OfThreshold',
} as const satisfies Partial<Record<AlertRuleId, string>>;

/** Why a rule has no CloudWatch alarm yet; a test holds every rule to an alarm or a reason. */
export const cloudAlarmGaps: Partial<Record<AlertRuleId, string>> = {};

const q = (s: string) => `"${s}"`;

function queryOf(
  rule: AlertRule,
  ns: CloudWatchNamespaces,
): Omit<CloudWatchAlarmPlan, 'rule' | 'description' | 'evaluationPeriods'> | null {
  switch (rule.id) {
    case 'disk_full':
      return {
        query: `SELECT MAX(NodeDiskUsedRatio) FROM SCHEMA(${q(ns.usage)}, Org, Node) GROUP BY Org, Node ORDER BY MAX() DESC`,
        comparison: 'GreaterThanThreshold',
        threshold: rule.defaultThreshold,
        periodSeconds: 60,
      };
    case 'cert_expiring':
      return {
        query: `SELECT MIN(CertificateDaysLeft) FROM SCHEMA(${q(ns.usage)}, Org, Service, Domain) GROUP BY Org, Service, Domain ORDER BY MIN() ASC`,
        comparison: 'LessThanThreshold',
        threshold: rule.defaultThreshold,
        // Written each minute; five tolerate a few missed collections without flapping.
        periodSeconds: 300,
      };
    case 'backup_failed':
      return {
        query: `SELECT MAX(BackupFailuresInARow) FROM SCHEMA(${q(ns.usage)}, Org, DataService) GROUP BY Org, DataService ORDER BY MAX() DESC`,
        comparison: 'GreaterThanOrEqualToThreshold',
        threshold: rule.defaultThreshold,
        periodSeconds: 300,
      };
    case 'node_unreachable':
      // The node checks write node_up per check; its total (no dimensions) dips below 1
      // when any node stops answering. The node.lost event names the node to the tenant.
      return {
        query: `SELECT MIN(node_up) FROM SCHEMA(${q(ns.control)})`,
        comparison: 'LessThanThreshold',
        threshold: 1,
        periodSeconds: 60,
      };
    case 'crash_loop':
      // The collector's own count within the 15-minute window (a running total's increase
      // is beyond Metrics Insights), the most any replica of the environment restarted.
      // Each collection writes it, so one period of a minute holds the newest figure.
      return {
        query: `SELECT MAX(RestartsInWindow) FROM SCHEMA(${q(ns.usage)}, Org, Service, Environment) GROUP BY Org, Service, Environment ORDER BY MAX() DESC`,
        comparison: 'GreaterThanOrEqualToThreshold',
        threshold: rule.defaultThreshold,
        periodSeconds: 60,
      };
    case 'http_5xx_spike':
    case 'latency_p95':
      // Above 1 is past the service's own threshold (and, for 5xx, the floor is met).
      return {
        query: `SELECT MAX(${edgeRuleMetrics[rule.id]}) FROM SCHEMA(${q(ns.usage)}, Org, Service, Environment) GROUP BY Org, Service, Environment ORDER BY MAX() DESC`,
        comparison: 'GreaterThanThreshold',
        threshold: 1,
        // Written each minute; the window is the collector's, so one period is one figure.
        periodSeconds: 60,
      };
  }
}

/** Every rule's alarm, in rule order; rules listed in `cloudAlarmGaps` have none. */
export function cloudWatchAlarms(ns: CloudWatchNamespaces): CloudWatchAlarmPlan[] {
  const out: CloudWatchAlarmPlan[] = [];
  for (const rule of alertRules) {
    const plan = queryOf(rule, ns);
    if (!plan) continue;
    // node_unreachable's threshold is a duration: it becomes the periods the dip must last.
    const holdSeconds = rule.id === 'node_unreachable' ? rule.defaultThreshold : rule.forSeconds;
    out.push({
      rule: rule.id,
      ...plan,
      evaluationPeriods: Math.max(1, Math.ceil(holdSeconds / plan.periodSeconds)),
      description: `${rule.title} (${rule.thresholdMeaning}; ${
        rule.id in edgeRuleMetrics
          ? `as a share of the service's own threshold, default ${rule.defaultThreshold}; 1 is the threshold`
          : `default threshold ${rule.defaultThreshold}`
      }). Runbook: docs/runbooks/${rule.runbook}.md`,
    });
  }
  return out;
}
