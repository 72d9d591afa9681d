import { edgeRuleMetrics } from '../../core/alerts/cloudwatch-alarms.ts';
import type { UsageSink, UsageSnapshot } from '../../core/ports.ts';

/**
 * Usage as CloudWatch Embedded Metric Format lines on the worker function's output, under
 * the namespace the charts read (adapters/metrics-query/cloudwatch.ts): per service
 * environment `CpuCores` and `MemoryBytes` summed over its replicas (what the chart draws,
 * as Prometheus's `sum` does), `Restarts`, and `RestartsInWindow` (the most any one of its
 * replicas restarted within the crash-loop window: the crash_loop alarm's figure),
 * dimensions Org/Service/Environment; per node
 * `NodeCpuRatio`, `NodeMemoryUsedRatio`, `NodeDiskUsedRatio`, dimensions Org/Node; per
 * data service `BackupFailuresInARow`, dimensions Org/DataService; per active custom domain
 * `CertificateDaysLeft`, dimensions Org/Service/Domain; per service environment the edge's
 * `Requests`, `Responses4xx`, `Responses5xx` of the round, `LatencyP50Seconds` and
 * `LatencyP95Seconds` of the round, `OpenConnections` at its reading (a gauge: a quiet
 * service has 0, not a gap), and the 5xx and p95 alarms' figures
 * (`Http5xxShareOfThreshold`, `LatencyP95OfThreshold`: each rule's figure over its window
 * divided by the service's threshold), dimensions Org/Service/Environment. Each
 * replica's own figures ride along as a plain property (searchable in Logs Insights, not a
 * metric billed of its own), so the dimensions stay bounded by services and nodes.
 */
export class EmfUsageSink implements UsageSink {
  readonly #namespace: string;
  readonly #write: (line: string) => void;

  constructor(options: { namespace?: string; destination?: { write(line: string): void } } = {}) {
    this.#namespace = options.namespace ?? 'selfdevop/apps';
    const destination = options.destination ?? process.stdout;
    this.#write = (line) => destination.write(line);
  }

  publish(snapshot: UsageSnapshot): void {
    const timestamp = Date.parse(snapshot.at);
    const services = new Map<
      string,
      {
        org: string;
        service: string;
        environment: string;
        cpu: number | null;
        memory: number | null;
        restarts: number;
        restartsInWindow: number | null;
        replicas: Record<string, unknown>[];
      }
    >();
    for (const r of snapshot.replicas) {
      const key = JSON.stringify([r.orgId, r.serviceId, r.environmentId]);
      let s = services.get(key);
      if (!s) {
        s = {
          org: r.orgId,
          service: r.serviceId,
          environment: r.environmentId,
          cpu: null,
          memory: null,
          restarts: 0,
          restartsInWindow: null,
          replicas: [],
        };
        services.set(key, s);
      }
      if (r.cpuCores !== null) s.cpu = (s.cpu ?? 0) + r.cpuCores;
      if (r.memoryBytes !== null) s.memory = (s.memory ?? 0) + r.memoryBytes;
      s.restarts += r.restarts;
      // The most, not the sum: crash_loop's threshold is one replica's restarts.
      if (r.restartsInWindow !== undefined)
        s.restartsInWindow = Math.max(s.restartsInWindow ?? 0, r.restartsInWindow);
      s.replicas.push({
        replica: r.replica,
        node: r.nodeId,
        cpuCores: r.cpuCores,
        memoryBytes: r.memoryBytes,
        restarts: r.restarts,
      });
    }
    for (const s of services.values()) {
      const metrics: { Name: string; Unit: string }[] = [];
      const line: Record<string, unknown> = {
        Org: s.org,
        Service: s.service,
        Environment: s.environment,
        replicas: s.replicas,
      };
      if (s.cpu !== null) {
        line.CpuCores = s.cpu;
        metrics.push({ Name: 'CpuCores', Unit: 'None' });
      }
      if (s.memory !== null) {
        line.MemoryBytes = s.memory;
        metrics.push({ Name: 'MemoryBytes', Unit: 'Bytes' });
      }
      line.Restarts = s.restarts;
      metrics.push({ Name: 'Restarts', Unit: 'Count' });
      if (s.restartsInWindow !== null) {
        line.RestartsInWindow = s.restartsInWindow;
        metrics.push({ Name: 'RestartsInWindow', Unit: 'Count' });
      }
      this.#emit(line, ['Org', 'Service', 'Environment'], metrics, timestamp);
    }
    for (const n of snapshot.nodes) {
      const metrics: { Name: string; Unit: string }[] = [];
      const line: Record<string, unknown> = { Org: n.orgId, Node: n.nodeId };
      const add = (name: string, v: number | null) => {
        if (v === null) return;
        line[name] = v;
        metrics.push({ Name: name, Unit: 'None' });
      };
      add('NodeCpuRatio', n.cpuRatio);
      add('NodeMemoryUsedRatio', n.memoryUsedRatio);
      add('NodeDiskUsedRatio', n.diskUsedRatio);
      if (metrics.length) this.#emit(line, ['Org', 'Node'], metrics, timestamp);
    }
    for (const b of snapshot.backups ?? [])
      this.#emit(
        { Org: b.orgId, DataService: b.dataServiceId, BackupFailuresInARow: b.failuresInARow },
        ['Org', 'DataService'],
        [{ Name: 'BackupFailuresInARow', Unit: 'Count' }],
        timestamp,
      );
    this.#traffic(snapshot, timestamp);
    // Days, not a timestamp: an alarm compares a metric with a constant and cannot subtract now.
    for (const c of snapshot.certificates ?? [])
      this.#emit(
        {
          Org: c.orgId,
          Service: c.serviceId,
          Domain: c.hostname,
          environment: c.environmentId,
          notAfter: c.notAfter,
          CertificateDaysLeft: (Date.parse(c.notAfter) - timestamp) / 86_400_000,
        },
        ['Org', 'Service', 'Domain'],
        [{ Name: 'CertificateDaysLeft', Unit: 'None' }],
        timestamp,
      );
  }

  #traffic(snapshot: UsageSnapshot, timestamp: number): void {
    for (const t of snapshot.traffic ?? []) {
      const line: Record<string, unknown> = {
        Org: t.orgId,
        Service: t.serviceId,
        Environment: t.environmentId,
        roundSeconds: t.seconds,
        Requests: t.requests,
        Responses4xx: t.responses4xx,
        Responses5xx: t.responses5xx,
        OpenConnections: t.openConnections,
      };
      const metrics = [
        { Name: 'Requests', Unit: 'Count' },
        { Name: 'Responses4xx', Unit: 'Count' },
        { Name: 'Responses5xx', Unit: 'Count' },
        { Name: 'OpenConnections', Unit: 'Count' },
      ];
      const add = (name: string, unit: string, v: number | null | undefined) => {
        // Without requests there is no share and no quantile: a gap, never 0.
        if (v === null || v === undefined) return;
        line[name] = v;
        metrics.push({ Name: name, Unit: unit });
      };
      add('LatencyP50Seconds', 'Seconds', t.latencyP50Seconds);
      add('LatencyP95Seconds', 'Seconds', t.latencyP95Seconds);
      for (const [rule, name] of Object.entries(edgeRuleMetrics))
        add(name, 'None', t.ofThreshold[rule as keyof typeof edgeRuleMetrics]);
      // Beside the alarms' figures, what they were made of (searchable, not billed).
      line.http5xxShare = t.http5xxShare;
      line.latencyP95WindowSeconds = t.latencyP95WindowSeconds;
      this.#emit(line, ['Org', 'Service', 'Environment'], metrics, timestamp);
    }
  }

  #emit(
    line: Record<string, unknown>,
    dimensions: string[],
    metrics: { Name: string; Unit: string }[],
    timestamp: number,
  ): void {
    line._aws = {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        { Namespace: this.#namespace, Dimensions: [dimensions], Metrics: metrics },
      ],
    };
    this.#write(JSON.stringify(line) + '\n');
  }
}
