import { metricNames } from '../alerts/rules.ts';
import type { UsageSnapshot } from '../ports.ts';

/** A label value in the text exposition format. */
const q = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/**
 * A usage snapshot as Prometheus text: per replica (org, service, environment, replica,
 * node) its CPU seconds, memory and restarts; per node (org, node) its CPU, memory and
 * disk ratios; per data service (org, data_service) its failed backups or drills in a row;
 * per active custom domain (org, service, environment, domain) its certificate's expiry in
 * Unix seconds; per worker queue (queue) the messages waiting.
 * A figure that was not measured is left out, never written as 0. The CPU
 * counter is the container's own, so it resets with a new container, which `rate()` reads
 * as a counter reset.
 */
export function renderUsage(snapshot: UsageSnapshot): string {
  const families: [string, 'counter' | 'gauge', string[]][] = [
    [metricNames.replicaCpu, 'counter', []],
    [metricNames.replicaMemory, 'gauge', []],
    [metricNames.replicaRestarts, 'counter', []],
    [metricNames.nodeCpu, 'gauge', []],
    [metricNames.nodeMemory, 'gauge', []],
    [metricNames.nodeDisk, 'gauge', []],
    [metricNames.backupFailures, 'gauge', []],
    [metricNames.certExpiry, 'gauge', []],
    [metricNames.queueDepth, 'gauge', []],
  ];
  const [cpu, memory, restarts, nodeCpu, nodeMemory, nodeDisk, backups, certificates, queues] =
    families.map((f) => f[2]) as [
      string[],
      string[],
      string[],
      string[],
      string[],
      string[],
      string[],
      string[],
      string[],
    ];
  for (const r of snapshot.replicas) {
    const l = `{org=${q(r.orgId)},service=${q(r.serviceId)},environment=${q(r.environmentId)},replica=${q(r.replica)},node=${q(r.nodeId)}}`;
    if (r.cpuSeconds !== null) cpu.push(`${metricNames.replicaCpu}${l} ${r.cpuSeconds}`);
    if (r.memoryBytes !== null) memory.push(`${metricNames.replicaMemory}${l} ${r.memoryBytes}`);
    restarts.push(`${metricNames.replicaRestarts}${l} ${r.restarts}`);
  }
  for (const n of snapshot.nodes) {
    const l = `{org=${q(n.orgId)},node=${q(n.nodeId)}}`;
    if (n.cpuRatio !== null) nodeCpu.push(`${metricNames.nodeCpu}${l} ${n.cpuRatio}`);
    if (n.memoryUsedRatio !== null)
      nodeMemory.push(`${metricNames.nodeMemory}${l} ${n.memoryUsedRatio}`);
    if (n.diskUsedRatio !== null) nodeDisk.push(`${metricNames.nodeDisk}${l} ${n.diskUsedRatio}`);
  }
  for (const b of snapshot.backups ?? [])
    backups.push(
      `${metricNames.backupFailures}{org=${q(b.orgId)},data_service=${q(b.dataServiceId)}} ${b.failuresInARow}`,
    );
  for (const c of snapshot.certificates ?? [])
    certificates.push(
      `${metricNames.certExpiry}{org=${q(c.orgId)},service=${q(c.serviceId)},environment=${q(c.environmentId)},domain=${q(c.hostname)}} ${Date.parse(c.notAfter) / 1000}`,
    );
  for (const x of snapshot.queues ?? [])
    queues.push(`${metricNames.queueDepth}{queue=${q(x.queue)}} ${x.depth}`);
  const out: string[] = [];
  for (const [name, type, lines] of families) {
    if (lines.length === 0) continue;
    out.push(`# TYPE ${name} ${type}`, ...lines);
  }
  return out.length ? out.join('\n') + '\n' : '';
}
