import { sampleTimes, type MetricsFixture } from '../contracts/metrics-query.case.ts';

/** Caddy's histogram buckets (Prometheus's defaults). */
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The fixture as the series Prometheus would have scraped, in OpenMetrics with timestamps:
 * Caddy's per-host request histogram and in-flight gauge, and the collector's replica and
 * node series.
 */
export function openMetricsOf(f: MetricsFixture): string {
  const times = sampleTimes(f);
  const lines: string[] = [];
  const labels = (l: Record<string, string>) =>
    `{${Object.entries(l)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
  lines.push('# TYPE caddy_http_request_duration_seconds histogram');
  for (const s of f.services) {
    const shares = { '200': 1 - s.share4xx - s.share5xx, '404': s.share4xx, '500': s.share5xx };
    for (const [code, share] of Object.entries(shares)) {
      if (share <= 0) continue;
      const base = {
        server: 'selfdevop',
        handler: 'reverse_proxy',
        host: s.host,
        code,
        method: 'GET',
      };
      for (const t of times) {
        const n = s.requestsPerSecond * share * (t - f.from + f.intervalSeconds);
        for (const le of buckets)
          lines.push(
            `caddy_http_request_duration_seconds_bucket${labels({ ...base, le: String(le) })} ${le >= s.latencySeconds ? n : 0} ${t}`,
          );
        lines.push(
          `caddy_http_request_duration_seconds_bucket${labels({ ...base, le: '+Inf' })} ${n} ${t}`,
        );
        lines.push(`caddy_http_request_duration_seconds_count${labels(base)} ${n} ${t}`);
        lines.push(
          `caddy_http_request_duration_seconds_sum${labels(base)} ${n * s.latencySeconds} ${t}`,
        );
      }
    }
  }
  // Caddy counts a request in flight once, under the route's first handler (the request-id
  // subroute); a proxied WebSocket stays in flight while it is open.
  lines.push('# TYPE caddy_http_requests_in_flight gauge');
  for (const s of f.services)
    for (const t of times)
      lines.push(
        `caddy_http_requests_in_flight${labels({ server: 'selfdevop', handler: 'subroute', host: s.host })} ${s.connections} ${t}`,
      );
  const own = (s: MetricsFixture['services'][number]) => ({
    org: s.orgId,
    service: s.serviceId,
    environment: s.environmentId,
    replica: `${s.serviceId}-r1`,
  });
  lines.push('# TYPE selfdevop_replica_cpu_seconds counter');
  for (const s of f.services)
    for (const t of times)
      lines.push(
        `selfdevop_replica_cpu_seconds_total${labels(own(s))} ${s.cpuCores * (t - f.from)} ${t}`,
      );
  // Restarts at an even pace: `restartsIn15m` in every 15 minutes.
  lines.push('# TYPE selfdevop_replica_restarts counter');
  for (const s of f.services)
    for (const t of times)
      lines.push(
        `selfdevop_replica_restarts_total${labels(own(s))} ${(s.restartsIn15m / 900) * (t - f.from)} ${t}`,
      );
  lines.push('# TYPE selfdevop_replica_memory_bytes gauge');
  for (const s of f.services)
    for (const t of times)
      lines.push(`selfdevop_replica_memory_bytes${labels(own(s))} ${s.memoryBytes} ${t}`);
  for (const [name, field] of [
    ['selfdevop_node_cpu_ratio', 'cpu'],
    ['selfdevop_node_memory_used_ratio', 'memory'],
    ['selfdevop_node_disk_used_ratio', 'disk'],
  ] as const) {
    lines.push(`# TYPE ${name} gauge`);
    for (const n of f.nodes)
      for (const t of times)
        lines.push(`${name}${labels({ org: n.orgId, node: n.nodeId })} ${n[field]} ${t}`);
  }
  lines.push('# EOF');
  return lines.join('\n') + '\n';
}
