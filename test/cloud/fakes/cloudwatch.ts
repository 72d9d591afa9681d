import {
  CloudWatchClient,
  GetMetricDataCommand,
  type GetMetricDataCommandInput,
  type MetricDataResult,
} from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';

/** One stored minute of one metric: its statistics as CloudWatch would have computed them. */
export interface Datapoint {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  /** Start of the minute, unix seconds. */
  t: number;
  stats: Record<string, number>;
}

const dimsKey = (d: Record<string, string>) =>
  Object.entries(d)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/**
 * CloudWatch's GetMetricData over stored minutes, as the service answers it: a metric
 * matches only with exactly its dimensions; each period's value is the Sum of its minutes'
 * sums, the mean of their averages, or the largest of any other statistic; the metric math
 * the charts use, `SUM([ids])` and `MAX([ids])` over other queries (per timestamp, over the
 * series that have a value there, as CloudWatch's array functions do); queries with
 * `ReturnData: false` feed expressions without being answered; pages of `pageSize` points
 * per query with a NextToken.
 */
export function fakeCloudWatch(points: Datapoint[], options: { pageSize?: number } = {}) {
  const client = new CloudWatchClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  const mock = mockClient(client);
  const pageSize = options.pageSize ?? 100_800;
  mock.on(GetMetricDataCommand).callsFake((input: GetMetricDataCommandInput) => {
    const offset = Number(input.NextToken ?? 0);
    const from = input.StartTime!.getTime() / 1000;
    const to = input.EndTime!.getTime() / 1000;
    const queries = input.MetricDataQueries ?? [];
    if (queries.length > 500)
      throw new Error('ValidationError: MetricDataQueries must have at most 500 members');
    const ids = new Set<string>();
    for (const q of queries) {
      if (!/^[a-z][a-zA-Z0-9_]*$/.test(q.Id ?? '') || ids.has(q.Id!))
        throw new Error(`ValidationError: bad or repeated Id ${q.Id}`);
      ids.add(q.Id!);
    }
    const full = new Map<string, [number, number][]>();
    for (const q of queries) {
      if (!q.MetricStat) continue;
      const stat = q.MetricStat;
      const period = stat.Period!;
      if (period % 60 !== 0)
        throw new Error('InvalidParameterValue: Period must be a multiple of 60');
      const dims = dimsKey(
        Object.fromEntries((stat.Metric!.Dimensions ?? []).map((d) => [d.Name!, d.Value!])),
      );
      const mine = points.filter(
        (p) =>
          p.namespace === stat.Metric!.Namespace &&
          p.name === stat.Metric!.MetricName &&
          dimsKey(p.dimensions) === dims &&
          p.t >= from &&
          p.t < to,
      );
      const periods = new Map<number, number[]>();
      for (const p of mine) {
        const start = from + Math.floor((p.t - from) / period) * period;
        const v = p.stats[stat.Stat!];
        if (v === undefined) continue;
        periods.set(start, [...(periods.get(start) ?? []), v]);
      }
      full.set(
        q.Id!,
        [...periods.entries()]
          .sort(([a], [b]) => a - b)
          .map(([t, vs]) => [
            t,
            stat.Stat === 'Sum'
              ? vs.reduce((a, b) => a + b, 0)
              : stat.Stat === 'Average'
                ? vs.reduce((a, b) => a + b, 0) / vs.length
                : Math.max(...vs),
          ]),
      );
    }
    for (const q of queries) {
      if (!q.Expression) continue;
      const m = /^(SUM|MAX)\(\[([a-z][a-zA-Z0-9_]*(?:, *[a-z][a-zA-Z0-9_]*)*)\]\)$/.exec(
        q.Expression,
      );
      if (!m) throw new Error(`ValidationError: the fake knows no expression ${q.Expression}`);
      const byTime = new Map<number, number[]>();
      for (const id of m[2]!.split(',').map((x) => x.trim())) {
        const series = full.get(id);
        if (!series) throw new Error(`ValidationError: ${q.Expression} names unknown ${id}`);
        for (const [t, v] of series) byTime.set(t, [...(byTime.get(t) ?? []), v]);
      }
      full.set(
        q.Id!,
        [...byTime.entries()]
          .sort(([a], [b]) => a - b)
          .map(([t, vs]) => [t, m[1] === 'SUM' ? vs.reduce((a, b) => a + b, 0) : Math.max(...vs)]),
      );
    }
    let more = false;
    const results: MetricDataResult[] = queries
      .filter((q) => q.ReturnData !== false)
      .map((q) => {
        const all = full.get(q.Id!) ?? [];
        const page = all.slice(offset, offset + pageSize);
        if (all.length > offset + pageSize) more = true;
        return {
          Id: q.Id,
          StatusCode: 'Complete',
          Timestamps: page.map(([t]) => new Date(t * 1000)),
          Values: page.map(([, v]) => v),
        };
      });
    return {
      MetricDataResults: results,
      ...(more ? { NextToken: String(offset + pageSize) } : {}),
    };
  });
  return { client, mock };
}
