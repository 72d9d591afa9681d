/**
 * `collectionOverhead` of `npm run bench:observe` (issue 16, benchmark item 3): what the
 * usage collector costs the control plane with 100 running containers being measured,
 * against none. The measuring runs in a fresh child process (the control plane's stand-in,
 * so its RSS is its own, not the log-search scenario's), with the collector the worker runs
 * (`core/stats/collect.ts`: list, inspect and one-shot stats per container, a node probe
 * one-off every 60 s) at its default interval (15 s), and the snapshot rendered once per
 * interval as Prometheus's scrape would.
 *
 * - collectionCpuPctOfCore: this process's CPU time over the window with 100 containers,
 *   less the same with none, as a share of one core (goal ≤ 3);
 * - collectionMemoryMb: its peak RSS with 100 less its peak RSS with none (goal ≤ 30);
 * - also: the engine's own CPU (the main dockerd, from /proc) in both windows, and how long
 *   one collection of 100 takes.
 *
 * Loopback only (the local engine's socket); bounded: a fixed number of collections per
 * window; the containers (label `selfdevop.bench=<run>`) are removed at the end, also on failure.
 */
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SystemClock } from '../../adapters/clock/system.ts';
import { RandomIds } from '../../adapters/ids/random.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { PrometheusUsageSink } from '../../adapters/metrics/usage-prometheus.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import { UsageCollector } from '../../core/stats/collect.ts';
import {
  aNode,
  aProject,
  aRelease,
  aService,
  anEnvironment,
  anOrg,
} from '../../test/contracts/store/builders.ts';
import { round } from '../support/stats.ts';

const run = promisify(execFile);
export const collectionGoals = { collectionCpuPctOfCore: 3, collectionMemoryMb: 30 };

export interface CollectionOverhead {
  detail: Record<string, unknown>;
  goals: Record<string, { goal: string; got: number; met: boolean }>;
}

/** Runs the measurement in a child process and reads its one JSON line. */
export async function collectionOverhead(log: (line: string) => void): Promise<CollectionOverhead> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--measure'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  // Bounded: 100 containers started, two windows, cleanup; 15 minutes at the most.
  const killer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  clearTimeout(killer);
  const last = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{'))
    throw new Error(`collection bench exited ${code}: ${out.slice(-500)}`);
  const detail = JSON.parse(last) as {
    cpuPctOfCore: { none: number; measured: number };
    peakRssMb: { none: number; measured: number };
  } & Record<string, unknown>;
  log(`collection: ${last}`);
  const cpu = round(detail.cpuPctOfCore.measured - detail.cpuPctOfCore.none, 2);
  const mem = round(detail.peakRssMb.measured - detail.peakRssMb.none, 1);
  return {
    detail,
    goals: {
      collectionCpuPctOfCore: {
        goal: `<= ${collectionGoals.collectionCpuPctOfCore}`,
        got: cpu,
        met: cpu <= collectionGoals.collectionCpuPctOfCore,
      },
      collectionMemoryMb: {
        goal: `<= ${collectionGoals.collectionMemoryMb}`,
        got: mem,
        met: mem <= collectionGoals.collectionMemoryMb,
      },
    },
  };
}

/** The main engine's CPU seconds so far (utime + stime of dockerd), or null where unreadable. */
async function engineCpuSeconds(): Promise<number | null> {
  try {
    const pid = (await readFile('/var/run/docker.pid', 'utf8')).trim();
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return null;
  }
}

async function measure(): Promise<void> {
  const containers = Number(process.env.BENCH_COLLECT_CONTAINERS ?? 100);
  const intervalMs = 15_000;
  const collections = Number(process.env.BENCH_COLLECT_WINDOWS ?? 4);
  const nonce = `${process.pid}-${Date.now()}`;
  const log = (line: string) => process.stderr.write(`bench:observe collection ${line}\n`);
  const target = { dockerHost: 'unix:///var/run/docker.sock' };
  const runtime = new DockerRuntime();
  const store = new MemoryStore();
  const orgId = 'org_bench_usage';
  const { serviceId, environmentId, releaseId } = await store.withOrg(orgId, async (r) => {
    await r.orgs.insert(anOrg({ id: orgId }));
    const p = aProject(orgId);
    await r.projects.insert(p);
    const env = anEnvironment(orgId, p.id);
    await r.environments.insert(env);
    const svc = aService(orgId, p.id, { replicas: containers });
    await r.services.insert(svc);
    const node = aNode(orgId, { name: 'local', dockerHost: target.dockerHost });
    await r.nodes.insert(node);
    // A live release, so the org is among those the collector measures.
    const rel = aRelease(orgId, svc.id, env.id, {
      status: 'completed',
      nodeId: node.id,
      upstream: '127.0.0.1:1',
    });
    await r.releases.insert(rel);
    return { serviceId: svc.id, environmentId: env.id, releaseId: rel.id };
  });
  const sink = new PrometheusUsageSink({ maxAgeMs: 3 * intervalMs });
  const collector = new UsageCollector({
    store,
    runtime,
    vault: new MemoryKeyVault(),
    clock: new SystemClock(),
    ids: new RandomIds(),
    logger: new MemoryLogger(),
    sink,
    config: { nodeProbeImage: 'selfdevop-test/busybox:base', nodeProbeEverySeconds: 60 },
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  let scraped = 0;
  /** `collections` collections at the interval, as the worker runs them; CPU and peak RSS over the window. */
  const window = async () => {
    gc?.();
    const engine0 = await engineCpuSeconds();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let peak = process.memoryUsage().rss;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 250);
    const took: number[] = [];
    let replicas = 0;
    for (let i = 0; i < collections; i++) {
      const start = performance.now();
      const snapshot = await collector.collect();
      took.push(performance.now() - start);
      replicas = snapshot.replicas.length;
      scraped += sink.render().length;
      const wait = intervalMs - (performance.now() - start);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    clearInterval(sampler);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const engine1 = await engineCpuSeconds();
    return {
      replicas,
      cpuPctOfCore: round(((cpu.user + cpu.system) / 1e6 / wall) * 100, 2),
      peakRssMb: round(peak / 1e6, 1),
      engineCpuPctOfCore:
        engine0 !== null && engine1 !== null ? round(((engine1 - engine0) / wall) * 100, 2) : null,
      collectionMs: took.map((t) => round(t)),
    };
  };
  try {
    // Warm: dockerode loaded, the first node probe taken, in both windows alike.
    await collector.collect();
    log(`measuring with no containers (${collections} collections, ${intervalMs / 1000} s apart)`);
    const none = await window();
    log(`none: ${JSON.stringify(none)}`);
    const labels = {
      'selfdevop.org': orgId,
      'selfdevop.service': serviceId,
      'selfdevop.environment': environmentId,
      'selfdevop.release': releaseId,
      'selfdevop.role': 'web',
      'selfdevop.bench': nonce,
    };
    const started = performance.now();
    const queue = Array.from({ length: containers }, (_, i) => i);
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift())
          await runtime.start(target, {
            name: `sdo-bench-usage-${nonce}-r${i}`,
            image: 'selfdevop-test/app:v1',
            env: {},
            labels,
            restartPolicy: 'no',
            memoryMb: 32,
          });
      }),
    );
    log(`${containers} containers started in ${round((performance.now() - started) / 1000, 1)} s`);
    // The first collection that sees them starts their CPU baselines; not in the window.
    await collector.collect();
    const measured = await window();
    log(`measured: ${JSON.stringify(measured)}`);
    if (measured.replicas !== containers)
      throw new Error(`measured ${measured.replicas} replicas, expected ${containers}`);
    process.stdout.write(
      JSON.stringify({
        containers,
        intervalSeconds: intervalMs / 1000,
        collectionsPerWindow: collections,
        cpuPctOfCore: { none: none.cpuPctOfCore, measured: measured.cpuPctOfCore },
        peakRssMb: { none: none.peakRssMb, measured: measured.peakRssMb },
        engineCpuPctOfCore: {
          none: none.engineCpuPctOfCore,
          measured: measured.engineCpuPctOfCore,
        },
        collectionMs: { none: none.collectionMs, measured: measured.collectionMs },
        scrapedBytes: scraped,
      }) + '\n',
    );
  } finally {
    const { stdout } = await run('docker', [
      'ps',
      '-aq',
      '--filter',
      `label=selfdevop.bench=${nonce}`,
    ]);
    const ids = stdout.split('\n').filter(Boolean);
    if (ids.length) await run('docker', ['rm', '-f', ...ids], { maxBuffer: 10 * 1024 * 1024 });
    runtime.close();
  }
}

if (process.argv.includes('--measure') && process.argv[1] === fileURLToPath(import.meta.url))
  await measure();
