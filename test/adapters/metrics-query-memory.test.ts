import { MemoryMetricsQuery } from '../../adapters/metrics-query/memory.ts';
import {
  runMetricsQueryContract,
  sampleTimes,
  type MetricsFixture,
} from '../contracts/metrics-query.case.ts';

/** The twin holds the fixture's values at every sample time (p50/p95 at the requests' latency). */
function twinOf(f: MetricsFixture): MemoryMetricsQuery {
  const q = new MemoryMetricsQuery();
  const at = (v: number) => sampleTimes(f).map((t) => [t, v] as [number, number]);
  for (const s of f.services) {
    const scope = {
      kind: 'service' as const,
      orgId: s.orgId,
      serviceId: s.serviceId,
      environmentId: s.environmentId,
      hosts: [s.host],
    };
    q.record(scope, 'requests', at(s.requestsPerSecond))
      .record(scope, 'errors_4xx', at(s.requestsPerSecond * s.share4xx))
      .record(scope, 'errors_5xx', at(s.requestsPerSecond * s.share5xx))
      .record(scope, 'latency_p50', at(s.latencySeconds))
      .record(scope, 'latency_p95', at(s.latencySeconds))
      .record(scope, 'cpu', at(s.cpuCores))
      .record(scope, 'memory', at(s.memoryBytes))
      .record(scope, 'connections', at(s.connections))
      .record(scope, 'restarts', at(s.restartsIn15m));
  }
  for (const n of f.nodes) {
    const scope = { kind: 'node' as const, orgId: n.orgId, nodeId: n.nodeId };
    q.record(scope, 'cpu', at(n.cpu))
      .record(scope, 'memory', at(n.memory))
      .record(scope, 'disk', at(n.disk));
  }
  return q;
}

runMetricsQueryContract({ make: async (f) => ({ query: twinOf(f) }) });
