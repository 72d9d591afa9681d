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
 * sums, the mean of their averages, or the largest of any other statistic; pages of
 * `pageSize` points per query with a NextToken.
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
    let more = false;
    const results: MetricDataResult[] = (input.MetricDataQueries ?? []).map((q) => {
      const stat = q.MetricStat!;
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
      const all = [...periods.entries()].sort(([a], [b]) => a - b);
      const page = all.slice(offset, offset + pageSize);
      if (all.length > offset + pageSize) more = true;
      return {
        Id: q.Id,
        StatusCode: 'Complete',
        Timestamps: page.map(([t]) => new Date(t * 1000)),
        Values: page.map(([, vs]) =>
          stat.Stat === 'Sum'
            ? vs.reduce((a, b) => a + b, 0)
            : stat.Stat === 'Average'
              ? vs.reduce((a, b) => a + b, 0) / vs.length
              : Math.max(...vs),
        ),
      };
    });
    return {
      MetricDataResults: results,
      ...(more ? { NextToken: String(offset + pageSize) } : {}),
    };
  });
  return { client, mock };
}
