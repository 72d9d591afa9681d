/**
 * `npm run bench:observe` (issue 16, benchmark item 2, `logSearchMs`): a text search over
 * the last hour of 3 replicas' logs, for real — three containers on the local Docker Engine
 * that printed `BENCH_LOG_LINES` lines between them (default 60,000; the figure is
 * 1,000,000: `BENCH_LOG_LINES=1000000 npm run bench:observe`), read through the same use
 * case the API runs (`openServiceLogs`: the engines' log streams, merged by time, filtered).
 *
 * - logSearchMs: from opening the read to its last line, for a substring that matches one
 *   line in 1,000 (goal ≤ 2,000 ms at 1,000,000 lines);
 * - logSearchMemoryMb: this process's peak RSS during the search above its RSS just before
 *   (goal ≤ 30 MB: the lines are streamed, never held);
 * - also: the same search as a regular expression, and `(a+)+$` (the catastrophic pattern),
 *   each timed, with the lines read per second.
 *
 * `engineFloor` is the same three logs read raw from the Engine API at once (no parsing,
 * merging or search): what the engine alone costs on this machine.
 *
 * `collectionOverhead` (benchmark item 3) is bench/observe/collection.ts.
 *
 * Prints one JSON object (its last output) with a `goals` map. Loopback only; every loop is
 * bounded; the containers (label `selfdevop.bench=<run>`) are removed at the end, also on failure.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { promisify } from 'node:util';
import { SystemClock } from '../adapters/clock/system.ts';
import { DockerRuntime } from '../adapters/runtime/docker.ts';
import { MemoryStore } from '../adapters/store/memory.ts';
import { MemoryKeyVault } from '../adapters/vault/memory.ts';
import type { CoreDeps, OrgPrincipal } from '../core/deps.ts';
import type { ContainerRuntime } from '../core/ports.ts';
import { openServiceLogs, serviceLogsQuery } from '../core/services/logs.ts';
import {
  aNode,
  aProject,
  aService,
  anEnvironment,
  anOrg,
} from '../test/contracts/store/builders.ts';
import { ensureTestImages } from '../test/support/docker.ts';
import { round } from './support/stats.ts';
import { alertToNotification } from './observe/alerts.ts';
import { collectionOverhead } from './observe/collection.ts';
import { edgeTrafficCost } from './observe/edge-traffic.ts';

const run = promisify(execFile);
const totalLines = Number(process.env.BENCH_LOG_LINES ?? 60_000);
const replicas = 3;
const nonce = `${process.pid}-${Date.now()}`;
const log = (line: string) => process.stderr.write(`bench:observe ${line}\n`);
const goals = { logSearchMs: 2_000, logSearchMemoryMb: 30 };
/** Which parts run (`BENCH_OBSERVE_PARTS=logs,alerts,collection,edge`, all unless set): one part is quicker to repeat. */
const parts = new Set(
  (process.env.BENCH_OBSERVE_PARTS ?? 'logs,alerts,collection,edge').split(','),
);
if ([...parts].some((p) => !['logs', 'alerts', 'collection', 'edge'].includes(p))) {
  process.stderr.write('BENCH_OBSERVE_PARTS names parts among logs, alerts, collection, edge\n');
  process.exit(2);
}

if (!Number.isInteger(totalLines) || totalLines < replicas || totalLines > 3_000_000) {
  process.stderr.write('BENCH_LOG_LINES must be a whole number from 3 to 3,000,000\n');
  process.exit(2);
}

const orgId = 'org_bench';
const viewer: OrgPrincipal = {
  actorType: 'user',
  actorId: 'usr_bench',
  userId: 'usr_bench',
  orgId,
  role: 'viewer',
};

/** The log search over 3 real replicas (benchmark item 2), with the engine's own raw read beside it. */
async function logSearch() {
  await ensureTestImages();
  // The search's scanner runs in LOG_SCAN_IMAGE (selfdevop/node:24 unless set; empty: the
  // Engine API read alone, the figure before the scanner).
  const runtime = new DockerRuntime({
    ...(process.env.LOG_SCAN_IMAGE !== undefined
      ? { logScanImage: process.env.LOG_SCAN_IMAGE }
      : {}),
  });
  const target = { dockerHost: 'unix:///var/run/docker.sock' };
  const store = new MemoryStore();
  const { serviceId, envId } = await store.withOrg(orgId, async (r) => {
    await r.orgs.insert(anOrg({ id: orgId }));
    const p = aProject(orgId);
    await r.projects.insert(p);
    const env = anEnvironment(orgId, p.id);
    await r.environments.insert(env);
    const svc = aService(orgId, p.id);
    await r.services.insert(svc);
    await r.nodes.insert(aNode(orgId, { name: 'local', dockerHost: target.dockerHost }));
    return { serviceId: svc.id, envId: env.id };
  });
  const labels = {
    'selfdevop.service': serviceId,
    'selfdevop.environment': envId,
    'selfdevop.bench': nonce,
  };
  const perReplica = Math.ceil(totalLines / replicas);
  try {
    const started = Date.now();
    for (let k = 0; k < replicas; k++)
      await runtime.start(target, {
        name: `sdo-bench-logs-${nonce}-${k}`,
        image: 'selfdevop-test/app:v1',
        env: {},
        labels,
        // Like an access log: one line in 1,000 is a 500. awk prints them as fast as the
        // engine takes them; the log is sized to keep them all (the default rotation is 30 MB).
        cmd: [
          '/bin/sh',
          '-c',
          `awk 'BEGIN { for (i = 0; i < ${perReplica}; i++) printf "replica=${k} req=%d GET /api/items/%d status=%d took=%dms\\n", i, i % 977, (i % 1000 == 999 ? 500 : 200), i % 37 }'`,
        ],
        restartPolicy: 'no',
        logRotation: { maxSizeMb: Math.max(10, Math.ceil((perReplica * 160) / 1e6)), maxFiles: 1 },
      });
    // Bounded: each replica must finish printing within the budget.
    for (let k = 0; k < replicas; k++) {
      const name = `sdo-bench-logs-${nonce}-${k}`;
      for (let polls = 0; ; polls++) {
        if ((await runtime.inspect(target, name))?.state === 'exited') break;
        if (polls > 1200) throw new Error(`${name} still printing after 120 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    log(`${perReplica * replicas} lines written in ${Date.now() - started} ms`);

    const deps = {
      store,
      clock: new SystemClock(),
      release: { runtime, vault: new MemoryKeyVault() },
    } as unknown as CoreDeps & {
      release: { runtime: ContainerRuntime; vault: MemoryKeyVault };
    };
    const search = async (query: Record<string, string>) => {
      global.gc?.();
      const before = process.memoryUsage.rss();
      let peak = before;
      // rss() alone: memoryUsage() walks the heap's spaces, and at 50 calls a second it took
      // a core's worth of seconds from the engine it measures (node --cpu-prof).
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage.rss());
      }, 20);
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      let matches = 0;
      let notices = 0;
      const controller = new AbortController();
      const budget = setTimeout(() => controller.abort(), 120_000);
      try {
        for await (const e of await openServiceLogs(
          deps,
          viewer,
          serviceId,
          serviceLogsQuery.parse({ since: '1h', ...query }),
          controller.signal,
        ))
          if (e.type === 'line') matches++;
          else notices++;
      } finally {
        clearTimeout(budget);
        clearInterval(sampler);
      }
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      peak = Math.max(peak, process.memoryUsage.rss());
      if (controller.signal.aborted) throw new Error('a search took over 120 s');
      return {
        ms: round(ms),
        // This process's CPU for it (the engine's is not counted): steadier than ms on a loaded machine.
        cpuMs: round((cpu.user + cpu.system) / 1000),
        matches,
        notices,
        memoryGrowthMb: round((peak - before) / 1e6, 1),
        linesPerSecond: round((perReplica * replicas) / (ms / 1000)),
      };
    };
    // The floor: the same logs read raw from the engine (no parsing, merging or search),
    // the three at once, as the use case reads them.
    const rawRead = (name: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.get(
          {
            socketPath: '/var/run/docker.sock',
            path: `/containers/${name}/logs?stdout=1&stderr=1&timestamps=1`,
          },
          (res) => {
            let bytes = 0;
            res.on('data', (c: Buffer) => (bytes += c.length));
            res.on('end', () => resolve(bytes));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
      });
    const f0 = performance.now();
    const rawBytes = await Promise.all(
      Array.from({ length: replicas }, (_, k) => rawRead(`sdo-bench-logs-${nonce}-${k}`)),
    );
    const engineFloor = {
      ms: round(performance.now() - f0),
      mb: round(rawBytes.reduce((a, b) => a + b, 0) / 1e6, 1),
    };
    log(`engine floor: ${JSON.stringify(engineFloor)}`);
    const substring = await search({ grep: 'status=500' });
    log(`substring: ${JSON.stringify(substring)}`);
    const regex = await search({ grep: 'status=5\\d\\d took=\\d+ms$', regex: 'true' });
    log(`regex: ${JSON.stringify(regex)}`);
    const catastrophic = await search({ grep: '(a+)+$', regex: 'true' });
    log(`(a+)+$: ${JSON.stringify(catastrophic)}`);
    const expected = replicas * Math.floor(perReplica / 1000);
    if (substring.matches !== expected || regex.matches !== expected)
      throw new Error(
        `expected ${expected} matches, got ${substring.matches} and ${regex.matches}`,
      );
    return {
      detail: {
        lines: perReplica * replicas,
        replicas,
        engineFloor,
        substring,
        regex,
        catastrophic,
      },
      goals: {
        logSearchMs: {
          goal: `<= ${goals.logSearchMs} at 1,000,000 lines`,
          got: substring.ms,
          // Met only at the size the goal names: a smaller run says how fast, not that it holds.
          met: perReplica * replicas >= 1_000_000 && substring.ms <= goals.logSearchMs,
          lines: perReplica * replicas,
        },
        logSearchMemoryMb: {
          goal: `<= ${goals.logSearchMemoryMb}`,
          got: substring.memoryGrowthMb,
          met: substring.memoryGrowthMb <= goals.logSearchMemoryMb,
        },
      },
    };
  } finally {
    const { stdout } = await run('docker', [
      'ps',
      '-aq',
      '--filter',
      `label=selfdevop.bench=${nonce}`,
    ]);
    const ids = stdout.split('\n').filter(Boolean);
    if (ids.length) await run('docker', ['rm', '-f', ...ids]);
    runtime.close();
  }
}

async function main() {
  const logs = parts.has('logs') ? await logSearch() : null;
  const alerts = parts.has('alerts') ? await alertToNotification(log) : null;
  if (alerts) log(`alerts: ${JSON.stringify(alerts)}`);
  const collection = parts.has('collection') ? await collectionOverhead(log) : null;
  const edge = parts.has('edge') ? await edgeTrafficCost(log) : null;
  process.stdout.write(
    `${JSON.stringify(
      {
        ...(collection ? { collection: collection.detail } : {}),
        ...(edge ? { edge: edge.detail } : {}),
        ...logs?.detail,
        loadAverage: os.loadavg().map((l) => round(l, 1)),
        cores: os.cpus().length,
        ...(alerts ? { alerts: alerts.detail } : {}),
        goals: { ...alerts?.goals, ...logs?.goals, ...collection?.goals, ...edge?.goals },
      },
      null,
      2,
    )}\n`,
  );
}

await main();
