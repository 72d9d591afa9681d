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
      add('OpenConnections', { Average: s.connections });
      add('RestartsInWindow', { Maximum: s.restartsIn15m });
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

  it("reads a project as SUM (MAX for latency) over its members' metrics, returning only those", async () => {
    const { client, mock } = fakeCloudWatch(datapointsOf(metricsFixture));
    const members = [
      { serviceId: 'svc_a', environmentId: 'env_a' },
      { serviceId: 'svc_c', environmentId: 'env_c' },
    ];
    const series = await new CloudWatchMetricsQuery({ client }).series({
      scope: { kind: 'project', orgId: 'org_a', projectId: 'prj_a', members, hosts: [] },
      keys: ['requests', 'latency_p95'],
      ...window,
    });
    const calls = mock.commandCalls(GetMetricDataCommand);
    expect(calls).toHaveLength(1);
    const queries = calls[0]!.args[0].input.MetricDataQueries!;
    expect(queries.filter((q) => q.ReturnData).map((q) => [q.Id, q.Expression])).toEqual([
      ['q0', 'SUM([m0_0, m0_1])'],
      ['q1', 'MAX([m1_0, m1_1])'],
    ]);
    expect(
      queries.filter((q) => q.Id!.startsWith('m0_')).map((q) => q.MetricStat!.Metric!.Dimensions),
    ).toEqual(
      members.map((m) => [
        { Name: 'Org', Value: 'org_a' },
        { Name: 'Service', Value: m.serviceId },
        { Name: 'Environment', Value: m.environmentId },
      ]),
    );
    expect(series.map((s) => s.key)).toEqual(['requests', 'latency_p95']);
  });

  it('splits a large project over several calls of at most 500 queries, each key whole', async () => {
    const { client, mock } = fakeCloudWatch(datapointsOf(metricsFixture));
    // 300 members: each key is 301 queries, so two keys cannot share a call.
    const members = Array.from({ length: 300 }, (_, i) => ({
      serviceId: i === 0 ? 'svc_a' : `svc_${i}`,
      environmentId: i === 0 ? 'env_a' : `env_${i}`,
    }));
    const [cpu, memory] = await new CloudWatchMetricsQuery({ client }).series({
      scope: { kind: 'project', orgId: 'org_a', projectId: 'prj_a', members, hosts: [] },
      keys: ['cpu', 'memory'],
      ...window,
    });
    const calls = mock.commandCalls(GetMetricDataCommand);
    expect(calls.map((c) => c.args[0].input.MetricDataQueries!.length)).toEqual([301, 301]);
    expect(cpu!.points.length).toBeGreaterThan(10);
    expect(memory!.points[0]![1]).toBe(64 * 1024 * 1024);
    const tooMany = Array.from({ length: 500 }, (_, i) => ({
      serviceId: `svc_${i}`,
      environmentId: `env_${i}`,
    }));
    await expect(
      new CloudWatchMetricsQuery({ client }).series({
        scope: { kind: 'project', orgId: 'org_a', projectId: 'p', members: tooMany, hosts: [] },
        keys: ['cpu'],
        ...window,
      }),
    ).rejects.toThrow(/at most 499 service environments/);
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
