import {
  CloudWatchClient,
  GetMetricDataCommand,
  type MetricDataQuery,
} from '@aws-sdk/client-cloudwatch';
import { Unavailable } from '../../core/errors.ts';
import type {
  MetricsQuery,
  NodeSeriesKey,
  Series,
  SeriesRequest,
  SeriesScope,
  ServiceSeriesKey,
} from '../../core/ports.ts';

/**
 * How each series is kept in CloudWatch: a metric of the namespace, the statistic read, and
 * whether the sum over a period is divided by the period (a count per second); the usage
 * collector writes them (adapters/metrics/usage-emf.ts). Edge traffic
 * and replica usage are published per org, service and environment; node usage per org and
 * node, so the dimensions alone keep one org from reading another's.
 */
const serviceMetrics: Record<ServiceSeriesKey, { name: string; stat: string; perSecond?: true }> = {
  requests: { name: 'Requests', stat: 'Sum', perSecond: true },
  errors_4xx: { name: 'Responses4xx', stat: 'Sum', perSecond: true },
  errors_5xx: { name: 'Responses5xx', stat: 'Sum', perSecond: true },
  // The collector writes each minute's quantiles from Caddy's buckets (CloudWatch never
  // sees the histogram): a step of a minute shows them as they were, a longer step their mean.
  latency_p50: { name: 'LatencyP50Seconds', stat: 'Average' },
  latency_p95: { name: 'LatencyP95Seconds', stat: 'Average' },
  cpu: { name: 'CpuCores', stat: 'Average' },
  memory: { name: 'MemoryBytes', stat: 'Average' },
};
const nodeMetrics: Record<NodeSeriesKey, { name: string; stat: string }> = {
  cpu: { name: 'NodeCpuRatio', stat: 'Average' },
  memory: { name: 'NodeMemoryUsedRatio', stat: 'Average' },
  disk: { name: 'NodeDiskUsedRatio', stat: 'Maximum' },
};

function dimensionsOf(scope: SeriesScope) {
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

/** Reads the same series from CloudWatch (GetMetricData, one call for all of them). */
export class CloudWatchMetricsQuery implements MetricsQuery {
  readonly source = 'CloudWatch';
  readonly #client: CloudWatchClient;
  readonly #namespace: string;

  constructor(options: { client?: CloudWatchClient; region?: string; namespace?: string } = {}) {
    this.#client =
      options.client ?? new CloudWatchClient(options.region ? { region: options.region } : {});
    this.#namespace = options.namespace ?? 'selfdevop/apps';
  }

  async series(request: SeriesRequest): Promise<Series[]> {
    const { scope, stepSeconds } = request;
    const queries: MetricDataQuery[] = [];
    const perSecond = new Set<string>();
    request.keys.forEach((key, i) => {
      const m =
        scope.kind === 'service'
          ? serviceMetrics[key as ServiceSeriesKey]
          : nodeMetrics[key as NodeSeriesKey];
      if (!m) return;
      const id = `q${i}`;
      if ('perSecond' in m && m.perSecond) perSecond.add(id);
      queries.push({
        Id: id,
        ReturnData: true,
        MetricStat: {
          Metric: {
            Namespace: this.#namespace,
            MetricName: m.name,
            Dimensions: dimensionsOf(scope),
          },
          Period: stepSeconds,
          Stat: m.stat,
        },
      });
    });
    const points = new Map<string, [number, number][]>();
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
    return request.keys.map((key, i) => ({
      key,
      points: (points.get(`q${i}`) ?? []).sort((a, b) => a[0] - b[0]),
    }));
  }
}
