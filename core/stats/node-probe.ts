import type { ContainerSpec } from '../ports.ts';

/** Where the probe sees the engine's data-root (read-only). */
const dataRootMount = '/sdo-data-root';

/**
 * The one-off that measures a node, planned as data. The Engine API reports neither the
 * host's CPU use, nor its memory in use, nor any disk figure, so a tiny container reads
 * them: `/proc/stat` and `/proc/meminfo` are not namespaced (a container sees the host's),
 * and `df` of the engine's data-root, bind-mounted read-only, is the disk that images,
 * containers, volumes and logs fill. `system df` was the other candidate and was not
 * taken: it sums what Docker stored but knows no capacity, so no "disk 85 % full" follows
 * from it. No network, a short-lived name, removed by the runtime when it ends.
 */
export function planNodeProbe(input: {
  image: string;
  dataRoot: string;
  name: string;
}): ContainerSpec {
  return {
    name: input.name,
    image: input.image,
    env: {},
    labels: { 'selfdevop.role': 'node-probe' },
    entrypoint: ['/bin/sh', '-c'],
    cmd: [
      `head -n 1 /proc/stat; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; df -P -k ${dataRootMount} | tail -n 1`,
    ],
    binds: [`${input.dataRoot}:${dataRootMount}:ro`],
    noNetwork: true,
    restartPolicy: 'no',
    memoryMb: 32,
    logRotation: { maxSizeMb: 1, maxFiles: 1 },
  };
}

/** The host CPU counters of `/proc/stat`'s first line: busy and total jiffies. */
export interface CpuCounters {
  busy: number;
  total: number;
}

export interface NodeProbeReading {
  cpu: CpuCounters | null;
  memoryUsedRatio: number | null;
  diskUsedRatio: number | null;
}

/** Reads the probe's output; a figure it cannot find is null, never a guess. */
export function parseNodeProbe(output: string): NodeProbeReading {
  let cpu: CpuCounters | null = null;
  let memTotal: number | null = null;
  let memAvailable: number | null = null;
  let diskUsedRatio: number | null = null;
  for (const line of output.split('\n')) {
    const t = line.trim();
    const cpuLine = /^cpu\s+((?:\d+\s*){4,})$/.exec(t);
    if (cpuLine) {
      // user nice system idle iowait irq softirq steal (guest time is inside user already).
      const f = cpuLine[1]!.trim().split(/\s+/).slice(0, 8).map(Number);
      const total = f.reduce((a, b) => a + b, 0);
      const idle = (f[3] ?? 0) + (f[4] ?? 0);
      cpu = { busy: total - idle, total };
      continue;
    }
    const mem = /^(MemTotal|MemAvailable):\s+(\d+)\s*kB$/.exec(t);
    if (mem) {
      if (mem[1] === 'MemTotal') memTotal = Number(mem[2]);
      else memAvailable = Number(mem[2]);
      continue;
    }
    // Filesystem 1024-blocks Used Available Capacity Mounted-on (POSIX `df -P`).
    const df = /^\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s+\S+$/.exec(t);
    if (df) {
      const used = Number(df[2]);
      const available = Number(df[3]);
      // df's own Use%: used over what is usable (root's reserved blocks left out).
      if (used + available > 0) diskUsedRatio = used / (used + available);
    }
  }
  const memoryUsedRatio =
    memTotal && memAvailable !== null && memTotal > 0
      ? Math.min(1, Math.max(0, (memTotal - memAvailable) / memTotal))
      : null;
  return { cpu, memoryUsedRatio, diskUsedRatio };
}

/** The host's busy share between two readings of its counters; null when they do not compare. */
export function cpuRatioBetween(before: CpuCounters, after: CpuCounters): number | null {
  const total = after.total - before.total;
  const busy = after.busy - before.busy;
  if (total <= 0 || busy < 0) return null;
  return Math.min(1, busy / total);
}
