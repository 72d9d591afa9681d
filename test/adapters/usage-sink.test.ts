/**
 * The usage sinks of both modes under one contract: the self-hosted Prometheus text (read
 * as Prometheus would: the newest scrape) and the cloud's EMF lines (read as CloudWatch
 * would: metrics from the `_aws` directives, by their dimensions, the newest timestamp).
 */
import { describe, expect, it } from 'vitest';
import { EmfUsageSink } from '../../adapters/metrics/usage-emf.ts';
import { PrometheusUsageSink } from '../../adapters/metrics/usage-prometheus.ts';
import { CloudWatchMetricsQuery } from '../../adapters/metrics-query/cloudwatch.ts';
import { cloudWatchAlarms, edgeRuleMetrics } from '../../core/alerts/cloudwatch-alarms.ts';
import type { ServiceTraffic } from '../../core/ports.ts';
import {
  runUsageSinkContract,
  usageSnapshot,
  type UsageRead,
} from '../contracts/usage-sink.case.ts';
import { fakeCloudWatch, type Datapoint } from '../cloud/fakes/cloudwatch.ts';

function readPrometheus(text: string): UsageRead {
  const out: UsageRead = {
    serviceMemory: {},
    serviceRestarts: {},
    nodes: {},
    backups: {},
    certificateDaysLeft: {},
  };
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries(
      [...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    const v = Number(m[3]);
    const svc = `${labels.org}/${labels.service}/${labels.environment}`;
    const node = `${labels.org}/${labels.node}`;
    const add = (o: Record<string, number>) => (o[svc] = (o[svc] ?? 0) + v);
    if (m[1] === 'selfdevop_replica_memory_bytes') add(out.serviceMemory);
    if (m[1] === 'selfdevop_replica_restarts_total') add(out.serviceRestarts);
    if (m[1] === 'selfdevop_backup_failures_in_a_row')
      out.backups[`${labels.org}/${labels.data_service}`] = v;
    // As the cert_expiring rule reads it: (expiry − now) / 86400, now being the scrape's time.
    if (m[1] === 'selfdevop_certificate_expiry_timestamp_seconds')
      out.certificateDaysLeft[`${labels.org}/${labels.service}/${labels.domain}`] =
        (v - Date.parse(usageSnapshot.at) / 1000) / 86400;
    const ratio = {
      selfdevop_node_cpu_ratio: 'cpu',
      selfdevop_node_memory_used_ratio: 'memory',
      selfdevop_node_disk_used_ratio: 'disk',
    }[m[1]!] as 'cpu' | 'memory' | 'disk' | undefined;
    if (ratio) (out.nodes[node] ??= {})[ratio] = v;
  }
  return out;
}

function readEmf(lines: string[]): UsageRead {
  const out: UsageRead = {
    serviceMemory: {},
    serviceRestarts: {},
    nodes: {},
    backups: {},
    certificateDaysLeft: {},
  };
  const docs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const newest = Math.max(...docs.map((d) => (d._aws as { Timestamp: number }).Timestamp));
  for (const d of docs) {
    const aws = d._aws as {
      Timestamp: number;
      CloudWatchMetrics: {
        Namespace: string;
        Dimensions: string[][];
        Metrics: { Name: string }[];
      }[];
    };
    if (aws.Timestamp !== newest) continue;
    for (const directive of aws.CloudWatchMetrics) {
      expect(directive.Namespace).toBe('selfdevop/apps');
      const dims = directive.Dimensions[0]!;
      const key = dims.map((k) => d[k]).join('/');
      for (const { Name } of directive.Metrics) {
        const v = d[Name] as number;
        if (Name === 'MemoryBytes') out.serviceMemory[key] = v;
        if (Name === 'Restarts') out.serviceRestarts[key] = v;
        if (Name === 'BackupFailuresInARow') out.backups[key] = v;
        if (Name === 'CertificateDaysLeft') out.certificateDaysLeft[key] = v;
        const ratio = {
          NodeCpuRatio: 'cpu',
          NodeMemoryUsedRatio: 'memory',
          NodeDiskUsedRatio: 'disk',
        }[Name] as 'cpu' | 'memory' | 'disk' | undefined;
        if (ratio) (out.nodes[key] ??= {})[ratio] = v;
      }
    }
  }
  return out;
}

describe('PrometheusUsageSink', () => {
  runUsageSinkContract(() => {
    const sink = new PrometheusUsageSink({ maxAgeMs: 60_000 });
    return { sink, read: () => readPrometheus(sink.render()) };
  });

  it('serves each queue’s waiting messages', () => {
    const sink = new PrometheusUsageSink({ maxAgeMs: 60_000 });
    sink.publish({ ...usageSnapshot, queues: [{ queue: 'domain-checks', depth: 3 }] });
    expect(sink.render()).toContain(
      '# TYPE selfdevop_queue_depth gauge\nselfdevop_queue_depth{queue="domain-checks"} 3\n',
    );
  });

  it('serves nothing once the newest snapshot is older than its limit', () => {
    let now = 0;
    const sink = new PrometheusUsageSink({ maxAgeMs: 45_000, now: () => now });
    sink.publish(usageSnapshot);
    expect(sink.render()).toContain('selfdevop_replica_memory_bytes');
    now = 45_001;
    expect(sink.render()).toBe('');
  });
});

describe('EmfUsageSink', () => {
  runUsageSinkContract(() => {
    const lines: string[] = [];
    const sink = new EmfUsageSink({ destination: { write: (l) => void lines.push(l.trim()) } });
    return { sink, read: () => readEmf(lines) };
  });

  it('writes per service environment the CPU cores the CloudWatch charts read, dimensions Org/Service/Environment', () => {
    const lines: string[] = [];
    new EmfUsageSink({
      namespace: 'ns',
      destination: { write: (l) => void lines.push(l.trim()) },
    }).publish(usageSnapshot);
    const web = JSON.parse(lines[0]!);
    expect(web).toEqual({
      Org: 'org_a',
      Service: 'svc_web',
      Environment: 'env_prod',
      replicas: [
        { replica: '0', node: 'node_1', cpuCores: 0.25, memoryBytes: 1000, restarts: 0 },
        { replica: '1', node: 'node_2', cpuCores: null, memoryBytes: null, restarts: 4 },
      ],
      CpuCores: 0.25,
      MemoryBytes: 1000,
      Restarts: 4,
      _aws: {
        Timestamp: Date.parse(usageSnapshot.at),
        CloudWatchMetrics: [
          {
            Namespace: 'ns',
            Dimensions: [['Org', 'Service', 'Environment']],
            Metrics: [
              { Name: 'CpuCores', Unit: 'None' },
              { Name: 'MemoryBytes', Unit: 'Bytes' },
              { Name: 'Restarts', Unit: 'Count' },
            ],
          },
        ],
      },
    });
  });

  it('writes the most any replica restarted within the crash-loop window, the figure the crash_loop alarm reads, only when the collector counted it', () => {
    const lines: string[] = [];
    new EmfUsageSink({
      namespace: 'ns',
      destination: { write: (l) => void lines.push(l.trim()) },
    }).publish({
      ...usageSnapshot,
      replicas: usageSnapshot.replicas.map((r, i) => ({
        ...r,
        restartsInWindow: [1, 3, 0][i] ?? 0,
      })),
    });
    const docs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const web = docs.find((d) => d.Service === 'svc_web')!;
    expect(web.RestartsInWindow).toBe(3); // the most, not the sum (1 + 3)
    expect(JSON.stringify(web._aws)).toContain('{"Name":"RestartsInWindow","Unit":"Count"}');
    // Unchanged without the figure (the other test's snapshot has none): no metric of 0.
    const plain: string[] = [];
    new EmfUsageSink({ destination: { write: (l) => void plain.push(l) } }).publish(usageSnapshot);
    expect(plain.join('')).not.toContain('RestartsInWindow');
  });

  /** Each metric CloudWatch would take from the lines: `Name` → dimensions key → value, and its dimension names. */
  function metricsOf(lines: string[]) {
    const out = new Map<string, { dims: string[]; values: Map<string, number>; unit: string }>();
    for (const l of lines) {
      const d = JSON.parse(l) as Record<string, unknown>;
      const aws = d._aws as {
        CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
      };
      for (const directive of aws.CloudWatchMetrics) {
        const dims = directive.Dimensions[0]!;
        for (const m of directive.Metrics) {
          // EMF takes a declared metric only when the line holds a number under its name.
          expect(typeof d[m.Name], m.Name).toBe('number');
          let entry = out.get(m.Name);
          if (!entry) out.set(m.Name, (entry = { dims, values: new Map(), unit: m.Unit }));
          expect(entry.dims).toEqual(dims);
          entry.values.set(dims.map((k) => d[k]).join('/'), d[m.Name] as number);
        }
      }
    }
    return out;
  }

  const traffic: ServiceTraffic[] = [
    {
      orgId: 'org_a',
      serviceId: 'svc_web',
      environmentId: 'env_prod',
      seconds: 60,
      requests: 58,
      responses4xx: 3,
      responses5xx: 10,
      latencyP50Seconds: 0.004,
      latencyP95Seconds: 0.41,
      openConnections: 4,
      ofThreshold: { http_5xx_spike: 3.45, latency_p95: 0.41 },
      http5xxShare: 0.1724,
      latencyP95WindowSeconds: 0.41,
    },
    {
      // No requests in the round (nor in the windows): counts of 0, no share, no quantile.
      orgId: 'org_b',
      serviceId: 'svc_api',
      environmentId: 'env_prod',
      seconds: 60,
      requests: 0,
      responses4xx: 0,
      responses5xx: 0,
      latencyP50Seconds: null,
      latencyP95Seconds: null,
      openConnections: 2,
      ofThreshold: {},
      http5xxShare: null,
      latencyP95WindowSeconds: null,
    },
  ];

  it('writes the edge’s figures per service environment under the names and dimensions the 5xx and p95 alarms query, and the charts read', () => {
    const lines: string[] = [];
    new EmfUsageSink({ destination: { write: (l) => void lines.push(l.trim()) } }).publish({
      ...usageSnapshot,
      replicas: [],
      nodes: [],
      backups: [],
      certificates: [],
      traffic,
    });
    const metrics = metricsOf(lines);
    // The alarms' own query, read back: SELECT MAX(<metric>) FROM SCHEMA("ns", <dims>).
    for (const plan of cloudWatchAlarms({ usage: 'selfdevop/apps', control: 'selfdevop' }).filter(
      (p) => p.rule in edgeRuleMetrics,
    )) {
      const [, name, dims] = /^SELECT MAX\((\w+)\) FROM SCHEMA\("selfdevop\/apps", ([^)]*)\)/.exec(
        plan.query,
      )!;
      expect(name).toBe(edgeRuleMetrics[plan.rule as keyof typeof edgeRuleMetrics]);
      const m = metrics.get(name!)!;
      expect(m.dims, plan.rule).toEqual(dims!.split(', '));
      // Only the service with requests has the figure; the quiet one is a gap, not a 0.
      expect([...m.values.keys()], plan.rule).toEqual(['org_a/svc_web/env_prod']);
    }
    expect(metrics.get('Http5xxShareOfThreshold')!.values.get('org_a/svc_web/env_prod')).toBe(3.45);
    expect(metrics.get('LatencyP95OfThreshold')!.values.get('org_a/svc_web/env_prod')).toBe(0.41);
    // The charts' series (adapters/metrics-query/cloudwatch.ts): counts of the round, summed
    // per step by CloudWatch, and the round's quantiles.
    expect(metrics.get('Requests')!).toMatchObject({ unit: 'Count' });
    expect(Object.fromEntries(metrics.get('Requests')!.values)).toEqual({
      'org_a/svc_web/env_prod': 58,
      'org_b/svc_api/env_prod': 0,
    });
    expect(metrics.get('Responses5xx')!.values.get('org_a/svc_web/env_prod')).toBe(10);
    expect(metrics.get('Responses4xx')!.values.get('org_a/svc_web/env_prod')).toBe(3);
    expect(metrics.get('LatencyP95Seconds')!).toMatchObject({ unit: 'Seconds' });
    expect([...metrics.get('LatencyP95Seconds')!.values.entries()]).toEqual([
      ['org_a/svc_web/env_prod', 0.41],
    ]);
    expect(metrics.get('LatencyP50Seconds')!.values.get('org_a/svc_web/env_prod')).toBe(0.004);
    // The open-connections chart: a gauge per environment, even one without requests (a
    // WebSocket open through a quiet round), Unit Count.
    expect(metrics.get('OpenConnections')!).toMatchObject({ unit: 'Count' });
    expect(Object.fromEntries(metrics.get('OpenConnections')!.values)).toEqual({
      'org_a/svc_web/env_prod': 4,
      'org_b/svc_api/env_prod': 2,
    });
    // Bounded: no dimension but Org/Service/Environment, whatever the hosts or paths.
    for (const [name, m] of metrics)
      expect(m.dims, name).toEqual(['Org', 'Service', 'Environment']);
  });

  it('publishes OpenConnections where the service page’s open-connections chart reads it', async () => {
    const lines: string[] = [];
    const snapshot = { ...usageSnapshot, replicas: [], nodes: [], traffic };
    new EmfUsageSink({ destination: { write: (l) => void lines.push(l.trim()) } }).publish(
      snapshot,
    );
    // What CloudWatch stores from the lines: each metric's minute, under its dimensions.
    const points: Datapoint[] = [];
    for (const l of lines) {
      const d = JSON.parse(l) as Record<string, unknown>;
      const aws = d._aws as {
        Timestamp: number;
        CloudWatchMetrics: {
          Namespace: string;
          Dimensions: string[][];
          Metrics: { Name: string }[];
        }[];
      };
      for (const c of aws.CloudWatchMetrics)
        for (const m of c.Metrics) {
          const v = d[m.Name] as number;
          points.push({
            namespace: c.Namespace,
            name: m.Name,
            dimensions: Object.fromEntries(c.Dimensions[0]!.map((k) => [k, String(d[k])])),
            t: Math.floor(aws.Timestamp / 60_000) * 60,
            stats: { Sum: v, Average: v, Maximum: v, SampleCount: 1 },
          });
        }
    }
    const at = Date.parse(snapshot.at);
    const minute = Math.floor(at / 60_000) * 60;
    const query = new CloudWatchMetricsQuery({ client: fakeCloudWatch(points).client });
    const read = async (serviceId: string) =>
      query.series({
        scope: {
          kind: 'service',
          orgId: serviceId === 'svc_web' ? 'org_a' : 'org_b',
          serviceId,
          environmentId: 'env_prod',
          hosts: [],
        },
        keys: ['connections'],
        start: new Date((minute - 300) * 1000),
        end: new Date((minute + 60) * 1000),
        stepSeconds: 60,
      });
    expect(await read('svc_web')).toEqual([{ key: 'connections', points: [[minute, 4]] }]);
    expect(await read('svc_api')).toEqual([{ key: 'connections', points: [[minute, 2]] }]);
  });

  it('writes no edge line where the collection did not read the edge', () => {
    const lines: string[] = [];
    new EmfUsageSink({ destination: { write: (l) => void lines.push(l) } }).publish(usageSnapshot);
    expect(lines.join('')).not.toMatch(/Requests|OfThreshold/);
  });
});
