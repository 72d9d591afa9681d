import { GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { describe, expect, it } from 'vitest';
import { CloudWatchMetricsQuery } from '../../adapters/metrics-query/cloudwatch.ts';
import { Unavailable } from '../../core/errors.ts';
import { fakeCloudWatch, type Datapoint } from '../cloud/fakes/cloudwatch.ts';
import {
  metricsFixture,
  runMetricsQueryContract,
  type MetricsFixture,
} from '../contracts/metrics-query.case.ts';

const namespace = 'selfdevop/apps';

/** The fixture as the minutes CloudWatch would hold from the published metrics. */
function datapointsOf(f: MetricsFixture): Datapoint[] {
  const out: Datapoint[] = [];
  for (let t = Math.ceil(f.from / 60) * 60; t < f.to; t += 60) {
    for (const s of f.services) {
      const dimensions = { Org: s.orgId, Service: s.serviceId, Environment: s.environmentId };
      const n = s.requestsPerSecond * 60;
      const add = (name: string, stats: Record<string, number>) =>
        out.push({ namespace, name, dimensions, t, stats });
      add('Requests', { Sum: n });
      add('Responses4xx', { Sum: n * s.share4xx });
      add('Responses5xx', { Sum: n * s.share5xx });
      add('LatencyP50Seconds', { Average: s.latencySeconds });
      add('LatencyP95Seconds', { Average: s.latencySeconds });
      add('CpuCores', { Average: s.cpuCores });
      add('MemoryBytes', { Average: s.memoryBytes });
    }
    for (const node of f.nodes) {
      const dimensions = { Org: node.orgId, Node: node.nodeId };
      out.push({ namespace, name: 'NodeCpuRatio', dimensions, t, stats: { Average: node.cpu } });
      out.push({
        namespace,
        name: 'NodeMemoryUsedRatio',
        dimensions,
        t,
        stats: { Average: node.memory },
      });
      out.push({
        namespace,
        name: 'NodeDiskUsedRatio',
        dimensions,
        t,
        stats: { Maximum: node.disk },
      });
    }
  }
  return out;
}

runMetricsQueryContract({
  make: async (f) => ({
    query: new CloudWatchMetricsQuery({ client: fakeCloudWatch(datapointsOf(f)).client }),
  }),
});

describe('CloudWatchMetricsQuery', () => {
  const scope = {
    kind: 'service' as const,
    orgId: 'org_a',
    serviceId: 'svc_a',
    environmentId: 'env_a',
    hosts: ['web.example.com'],
  };
  const window = {
    start: new Date((metricsFixture.from + 600) * 1000),
    end: new Date(metricsFixture.to * 1000),
    stepSeconds: 60,
  };

  it('asks for every series in one call, by org, service and environment dimensions', async () => {
    const { client, mock } = fakeCloudWatch(datapointsOf(metricsFixture));
    await new CloudWatchMetricsQuery({ client }).series({
      scope,
      keys: ['requests', 'latency_p95'],
      ...window,
    });
    const calls = mock.commandCalls(GetMetricDataCommand);
    expect(calls).toHaveLength(1);
    const queries = calls[0]!.args[0].input.MetricDataQueries!;
    expect(
      queries.map((q) => [
        q.MetricStat!.Metric!.MetricName,
        q.MetricStat!.Stat,
        q.MetricStat!.Period,
      ]),
    ).toEqual([
      ['Requests', 'Sum', 60],
      ['LatencyP95Seconds', 'Average', 60],
    ]);
    expect(queries[0]!.MetricStat!.Metric!.Dimensions).toEqual([
      { Name: 'Org', Value: 'org_a' },
      { Name: 'Service', Value: 'svc_a' },
      { Name: 'Environment', Value: 'env_a' },
    ]);
  });

  it('follows NextToken until every page is read', async () => {
    const { client, mock } = fakeCloudWatch(datapointsOf(metricsFixture), { pageSize: 5 });
    const [requests] = await new CloudWatchMetricsQuery({ client }).series({
      scope,
      keys: ['requests'],
      ...window,
    });
    expect(mock.commandCalls(GetMetricDataCommand).length).toBeGreaterThan(1);
    expect(requests!.points.length).toBeGreaterThan(5);
  });

  it('turns a failing CloudWatch into Unavailable naming it', async () => {
    const { client, mock } = fakeCloudWatch([]);
    mock.on(GetMetricDataCommand).rejects(new Error('ThrottlingException: Rate exceeded'));
    await expect(
      new CloudWatchMetricsQuery({ client }).series({ scope, keys: ['requests'], ...window }),
    ).rejects.toThrow(Unavailable);
  });
});
