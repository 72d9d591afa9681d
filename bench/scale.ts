/**
 * npm run bench:scale [-- --switches 20 --services 200 --only replicaSwitch,drain
 *                        --floor-seconds 10 --connections 50 --rate 1100
 *                        --app keepalive|busybox]
 *
 * Replicas on three real Docker Engines (../shared/ci/multi-node.sh nodes 1–3, with
 * selfdevop-test/app:v1 and :v2 in MN_IMAGES; the app under load, selfdevop-test/app-ka
 * unless `--app busybox`, is copied to them when missing) behind a real Caddy with dynamic
 * upstreams, driven by the release engine in this process over a fresh PostgreSQL database
 * (bench/scale/env.ts). Load comes from a child process (bench/scale/load.ts): 1,100 req/s
 * keep-alive offered (goal: ≥ 1,000 served) plus 50 new connections/s, to loopback only,
 * bounded in time.
 * Scenarios, one module each under bench/scale/:
 *  - replicaSwitch: 3 replicas on 3 nodes, N blue/green deploys under load.
 *  - drain: node 1, holding replicas of 3 services, drained under load.
 *  - scaleUp: 1 → 10 replicas under load, against the time of one replica.
 *  - manyServices: 200 services × 2 replicas: deploy overhead, upstream DNS, memory.
 *  - nodeLoss: nodes 4–6, one killed under load: survivors-only and restored times.
 * Last output line: one JSON object with a `goals` map of {goal, got, met}; the load
 * average before and after is in it, since this machine is shared.
 * `npm run bench:scale` runs it bundled (bench/scale/run-bundled.ts), as an install runs the
 * control plane, with the install image's V8 flags and malloc arenas (selfhost/Dockerfile's
 * NODE_OPTIONS and MALLOC_ARENA_MAX, bench/support/install-runtime.ts) and --expose-gc: a
 * full GC before the memory figure is read, which without --expose-gc was silently skipped.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { drain } from './scale/drain.ts';
import { benchApps, isBenchApp, nodeSockets, startScaleEnv } from './scale/env.ts';
import type { Goal, ScenarioResult } from './scale/goal.ts';
import { issueLoad } from './scale/load-client.ts';
import { manyServices } from './scale/many-services.ts';
import { nodeLossScenario } from './scale/node-loss.ts';
import { replicaSwitch } from './scale/replica-switch.ts';
import { scaleUp } from './scale/scale-up.ts';

const { values } = parseArgs({
  options: {
    switches: { type: 'string', default: '20' },
    'window-ms': { type: 'string', default: '1500' },
    'floor-seconds': { type: 'string', default: '10' },
    connections: { type: 'string', default: String(issueLoad.connections) },
    rate: { type: 'string', default: String(issueLoad.rate) },
    services: { type: 'string', default: '200' },
    samples: { type: 'string', default: '5' },
    'dns-queries': { type: 'string', default: '2000' },
    only: { type: 'string' },
    app: { type: 'string', default: 'keepalive' },
  },
});
if (!isBenchApp(values.app)) {
  console.error(`--app takes ${Object.keys(benchApps).join(' or ')}, not '${values.app}'`);
  process.exit(2);
}
const app = values.app;
for (const flag of ['connections', 'floor-seconds', 'rate'] as const)
  if (!/^[1-9]\d{0,3}$/.test(values[flag])) {
    console.error(`--${flag} takes a whole number from 1 to 9999, not '${values[flag]}'`);
    process.exit(2);
  }
// Keep-alive connections of every scenario's load (the issue names the rate, not these).
issueLoad.connections = Number(values.connections);
issueLoad.rate = Number(values.rate);
if (!nodeSockets.every((s) => existsSync(s))) {
  console.error(
    'bench:scale needs ../shared/ci/multi-node.sh up (nodes 1–3, MN_IMAGES with the app images)',
  );
  process.exit(2);
}

const scenarios: Record<
  string,
  (env: Awaited<ReturnType<typeof startScaleEnv>>) => Promise<ScenarioResult>
> = {
  replicaSwitch: (env) =>
    replicaSwitch(env, {
      switches: Number(values.switches),
      windowMs: Number(values['window-ms']),
      floorSeconds: Number(values['floor-seconds']),
    }),
  drain: (env) => drain(env, { deadlineMs: 120_000 }),
  // Nodes 4–6, with its own Caddy: it kills one of them, so never the shared 1–3.
  nodeLoss: () => nodeLossScenario(),
  scaleUp: (env) => scaleUp(env, { deadlineMs: 180_000 }),
  manyServices: (env) =>
    manyServices(env, {
      services: Number(values.services),
      samples: Number(values.samples),
      dnsQueries: Number(values['dns-queries']),
      deadlineMs: 900_000,
    }),
};
const only = values.only?.split(',') ?? Object.keys(scenarios);
const unknown = only.filter((n) => !(n in scenarios));
if (unknown.length > 0) {
  console.error(
    `unknown scenario ${unknown.join(', ')}: one of ${Object.keys(scenarios).join(', ')}`,
  );
  process.exit(2);
}

const loadBefore = os.loadavg().map((x) => Math.round(x * 100) / 100);
const env = await startScaleEnv({ app });
// Whatever happens, the containers, Caddy and the database go: a signal or a hang included.
let closing: Promise<void> | null = null;
const closeOnce = () => (closing ??= env.close());
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => void closeOnce().finally(() => process.exit(130)));
const detail: Record<string, unknown> = {};
const goals: Record<string, Goal> = {};
const t0 = performance.now();
try {
  for (const name of only) {
    const started = performance.now();
    process.stderr.write(`bench:scale: ${name}…\n`);
    try {
      const r = await scenarios[name]!(env);
      detail[name] = { ...r.detail, scenarioMs: Math.round(performance.now() - started) };
      Object.assign(goals, r.goals);
    } catch (e) {
      // One scenario's failure is a figure too; the others still run.
      detail[name] = { error: e instanceof Error ? e.message : String(e) };
      process.stderr.write(`bench:scale: ${name} failed: ${String(e)}\n`);
    }
  }
} finally {
  await closeOnce();
}
console.log(
  JSON.stringify({
    bench: 'scale',
    nodes: 3,
    app: env.app,
    cpus: os.cpus().length,
    loadAverage: { before: loadBefore, after: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    totalMs: Math.round(performance.now() - t0),
    ...detail,
    goals,
  }),
);
