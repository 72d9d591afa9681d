/**
 * Where the CPU goes while bench:scale's load runs, in cores (1 = one core busy the whole
 * time): Caddy, the load child, this process (the control plane: release engine, edge DNS,
 * Caddy's log reader), the node engines' cgroups (each engine with its containers: the app
 * replicas), and the whole machine, whose rest is what else ran on it (the machine is
 * shared). Read from /proc and the cgroup v1 `cpuacct` (v2 `cpu.stat`) files; a part that
 * cannot be read is left out, never 0.
 */
import { readFileSync } from 'node:fs';

const ticksPerSecond = 100; // USER_HZ on Linux

function procSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces): state is the first; utime and
    // stime are the 12th and 13th.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / ticksPerSecond;
  } catch {
    return null;
  }
}

function cgroupSeconds(name: string): number | null {
  try {
    return Number(readFileSync(`/sys/fs/cgroup/cpuacct/${name}/cpuacct.usage`, 'utf8')) / 1e9;
  } catch {
    try {
      const stat = readFileSync(`/sys/fs/cgroup/${name}/cpu.stat`, 'utf8');
      const usec = /^usage_usec (\d+)$/m.exec(stat)?.[1];
      return usec === undefined ? null : Number(usec) / 1e6;
    } catch {
      return null;
    }
  }
}

/** Busy seconds of all CPUs together (everything but idle and iowait), from /proc/stat. */
function machineSeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1);
    const n = line.map(Number);
    const busy = n.reduce((a, b) => a + b, 0) - (n[3] ?? 0) - (n[4] ?? 0);
    return busy / ticksPerSecond;
  } catch {
    return null;
  }
}

export interface CpuShares {
  seconds: number;
  /** Cores used by each part over `seconds`. */
  caddy?: number;
  loadClient?: number;
  controlPlane: number;
  /** The node engines' cgroups: each engine and its containers (the app replicas). */
  nodes?: number;
  machine?: number;
  /** The machine minus the parts above: other work on the shared machine. */
  other?: number;
}

interface Reading {
  at: number;
  caddy: number | null;
  load: number | null;
  self: number;
  nodes: number | null;
  machine: number | null;
}

/** Starts measuring; `read()` answers the shares since the start (or the last read). */
export function cpuMeter(o: {
  caddyPid: number | undefined;
  loadPid: number | undefined;
  nodeCgroups: string[];
}): { read(): CpuShares } {
  const sample = (): Reading => {
    const nodes = o.nodeCgroups.map(cgroupSeconds);
    const u = process.cpuUsage();
    return {
      at: performance.now(),
      caddy: procSeconds(o.caddyPid),
      load: procSeconds(o.loadPid),
      self: (u.user + u.system) / 1e6,
      nodes: nodes.every((x) => x !== null) ? (nodes as number[]).reduce((a, b) => a + b, 0) : null,
      machine: machineSeconds(),
    };
  };
  let last = sample();
  return {
    read() {
      const now = sample();
      const seconds = (now.at - last.at) / 1000;
      const cores = (a: number | null, b: number | null) =>
        a === null || b === null ? undefined : Math.round(((b - a) / seconds) * 100) / 100;
      const out: CpuShares = {
        seconds: Math.round(seconds * 10) / 10,
        caddy: cores(last.caddy, now.caddy),
        loadClient: cores(last.load, now.load),
        controlPlane: cores(last.self, now.self)!,
        nodes: cores(last.nodes, now.nodes),
        machine: cores(last.machine, now.machine),
      };
      if (out.machine !== undefined)
        out.other =
          Math.round(
            (out.machine -
              (out.caddy ?? 0) -
              (out.loadClient ?? 0) -
              out.controlPlane -
              (out.nodes ?? 0)) *
              100,
          ) / 100;
      last = now;
      return out;
    },
  };
}
