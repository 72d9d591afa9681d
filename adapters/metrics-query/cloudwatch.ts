import {
  CloudWatchClient,
  GetMetricDataCommand,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import { Unavailable } from '../../core/errors.ts';
import type {
  MetricsQuery,
  NodeSeriesKey,
  ProjectSeriesKey,
  Series,
  SeriesRequest,
  SeriesScope,
  ServiceSeriesKey,
} from '../../core/ports.ts';

interface MetricSpec {
  name: string;
  stat: string;
  perSecond?: true;
}

/**
 * How each series is kept in CloudWatch: a metric of the namespace, the statistic read, and
 * whether the sum over a period is divided by the period (a count per second); the usage
 * collector writes them (adapters/metrics/usage-emf.ts). Edge traffic
 * and replica usage are published per org, service and environment; node usage per org and
 * node, so the dimensions alone keep one org from reading another's.
 */
const serviceMetrics: Record<ServiceSeriesKey, MetricSpec> = {
  requests: { name: 'Requests', stat: 'Sum', perSecond: true },
  errors_4xx: { name: 'Responses4xx', stat: 'Sum', perSecond: true },
  errors_5xx: { name: 'Responses5xx', stat: 'Sum', perSecond: true },
  // The collector writes each minute's quantiles from Caddy's buckets (CloudWatch never
  // sees the histogram): a step of a minute shows them as they were, a longer step their mean.
  latency_p50: { name: 'LatencyP50Seconds', stat: 'Average' },
  latency_p95: { name: 'LatencyP95Seconds', stat: 'Average' },
  connections: { name: 'OpenConnections', stat: 'Average' },
  cpu: { name: 'CpuCores', stat: 'Average' },
  memory: { name: 'MemoryBytes', stat: 'Average' },
  // Published by the usage collector as the busiest replica's restarts in the window.
  restarts: { name: 'RestartsInWindow', stat: 'Maximum' },
};
const nodeMetrics: Record<NodeSeriesKey, MetricSpec> = {
  cpu: { name: 'NodeCpuRatio', stat: 'Average' },
  memory: { name: 'NodeMemoryUsedRatio', stat: 'Average' },
  disk: { name: 'NodeDiskUsedRatio', stat: 'Maximum' },
};
/**
 * A project is read as metric math over its service environments' own metrics: no Project
 * dimension exists (the publishers know a replica's service and environment, not its
 * project, and a project's services move in and out of it), and SEARCH finds only metrics
 * with data in the last two weeks and caps what it matches, where core already knows every
 * member. So each member is one MetricStat and the chart one `SUM` of them, except latency:
 * percentiles do not add and CloudWatch cannot merge them, so it is the slowest member's
 * (`MAX`), an upper bound of the project's own p95.
 */
const projectMetrics: Record<ProjectSeriesKey, MetricSpec & { combine: 'SUM' | 'MAX' }> = {
  requests: { ...serviceMetrics.requests, combine: 'SUM' },
  errors_5xx: { ...serviceMetrics.errors_5xx, combine: 'SUM' },
  latency_p95: { ...serviceMetrics.latency_p95, combine: 'MAX' },
  connections: { ...serviceMetrics.connections, combine: 'SUM' },
  cpu: { ...serviceMetrics.cpu, combine: 'SUM' },
  memory: { ...serviceMetrics.memory, combine: 'SUM' },
};

/** GetMetricData takes at most 500 queries in one call. */
const maxQueriesPerCall = 500;

type Dimensions = { Name: string; Value: string }[];

function dimensionsOf(scope: Exclude<SeriesScope, { kind: 'project' }>): Dimensions {
  return scope.kind === 'service'
    ? [
        { Name: 'Org', Value: scope.orgId },
        { Name: 'Service', Value: scope.serviceId },
        { Name: 'Environment', Value: scope.environmentId },
      ]
    : [
        { Name: 'Org', Value: scope.orgId },
        { Name: 'Node', Value: scope.nodeId },
      ];
}

/** Reads the same series from CloudWatch (GetMetricData: one call unless a project needs more). */
export class CloudWatchMetricsQuery implements MetricsQuery {
  readonly source = 'CloudWatch';
  readonly #client: CloudWatchClient;
  readonly #namespace: string;

  constructor(options: { client?: CloudWatchClient; region?: string; namespace?: string } = {}) {
    this.#client =
      options.client ?? new CloudWatchClient(options.region ? { region: options.region } : {});
    this.#namespace = options.namespace ?? 'selfdevop/apps';
  }

  #stat(m: MetricSpec, dimensions: Dimensions, period: number) {
    return {
      Metric: { Namespace: this.#namespace, MetricName: m.name, Dimensions: dimensions },
      Period: period,
      Stat: m.stat,
    };
  }

  async series(request: SeriesRequest): Promise<Series[]> {
    const { scope, stepSeconds } = request;
    // Each key's queries, kept together in one call: the one the chart reads is `q<i>`.
    const groups: MetricDataQuery[][] = [];
    const perSecond = new Set<string>();
    request.keys.forEach((key, i) => {
      const id = `q${i}`;
      if (scope.kind === 'project') {
        const m = projectMetrics[key as ProjectSeriesKey];
        if (!m || scope.members.length === 0) return;
        if (scope.members.length + 1 > maxQueriesPerCall)
          throw new Unavailable(
            'metrics',
            `CloudWatch reads at most ${maxQueriesPerCall - 1} service environments in one chart; this project has ${scope.members.length}`,
          );
        if (m.perSecond) perSecond.add(id);
        const members: MetricDataQuery[] = scope.members.map((member, j) => ({
          Id: `m${i}_${j}`,
          ReturnData: false,
          MetricStat: this.#stat(
            m,
            dimensionsOf({ kind: 'service', orgId: scope.orgId, hosts: [], ...member }),
            stepSeconds,
          ),
        }));
        groups.push([
          ...members,
          {
            Id: id,
            ReturnData: true,
            Expression: `${m.combine}([${members.map((q) => q.Id).join(', ')}])`,
          },
        ]);
        return;
      }
      const m =
        scope.kind === 'service'
          ? serviceMetrics[key as ServiceSeriesKey]
          : nodeMetrics[key as NodeSeriesKey];
      if (!m) return;
      if (m.perSecond) perSecond.add(id);
      groups.push([
        { Id: id, ReturnData: true, MetricStat: this.#stat(m, dimensionsOf(scope), stepSeconds) },
      ]);
    });
    const calls: MetricDataQuery[][] = [];
    for (const g of groups) {
      const last = calls.at(-1);
      if (last && last.length + g.length <= maxQueriesPerCall) last.push(...g);
      else calls.push([...g]);
    }
    const points = new Map<string, [number, number][]>();
    for (const queries of calls) await this.#read(queries, request, perSecond, points);
    return request.keys.map((key, i) => ({
      key,
      points: (points.get(`q${i}`) ?? []).sort((a, b) => a[0] - b[0]),
    }));
  }

  async #read(
    queries: MetricDataQuery[],
    request: SeriesRequest,
    perSecond: Set<string>,
    points: Map<string, [number, number][]>,
  ): Promise<void> {
    const { stepSeconds } = request;
    let token: string | undefined;
    // One page holds 100,800 points; a week at an hour's step is 168 per series, so a loop
    // of more than a few pages would be a bug: bounded at 10.
    for (let page = 0; page < 10; page++) {
      let out;
      try {
        out = await this.#client.send(
          new GetMetricDataCommand({
            MetricDataQueries: queries,
            StartTime: request.start,
            EndTime: request.end,
            ScanBy: 'TimestampAscending',
            ...(token ? { NextToken: token } : {}),
          }),
        );
      } catch (e) {
        throw new Unavailable('metrics', `CloudWatch did not answer (${(e as Error).message})`);
      }
      for (const r of out.MetricDataResults ?? []) {
        const list = points.get(r.Id!) ?? [];
        const ts = r.Timestamps ?? [];
        const vs = r.Values ?? [];
        for (let i = 0; i < ts.length && i < vs.length; i++) {
          const v = perSecond.has(r.Id!) ? vs[i]! / stepSeconds : vs[i]!;
          if (Number.isFinite(v)) list.push([Math.floor(ts[i]!.getTime() / 1000), v]);
        }
        points.set(r.Id!, list);
      }
      token = out.NextToken;
      if (!token) break;
    }
  }
}
