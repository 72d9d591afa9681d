/**
 * npm run bench:swarm [-- --switches 20 --only swarmSwitch,nodeLoss,leaderLoss --app keepalive]
 *
 * selfdevop on the three-manager Swarm of scripts/swarm-up.sh 7 8 9 (multi-node.sh nodes
 * 7-9, with the app images) behind a real Caddy with dynamic upstreams, driven by the
 * release engine in this process (bench/swarm/env.ts). Scenarios:
 *  - swarmSwitch: 3 replicas, N blue/green deploys under ≥ 1,000 req/s keep-alive plus 50
 *    new connections/s (bench/scale's load child, loopback only, bounded in time); deploy
 *    overhead beyond the tasks' own start-to-healthy, measured in the same run under the
 *    same load (one sample after each deploy; `--own-samples` more before the load, shown
 *    for comparison).
 *  - nodeLoss: a member loses power under load: survivors-only and restored times, against
 *    Swarm's own rescheduling time.
 *  - leaderLoss: the leader loses power during a deploy: the release completes or fails
 *    cleanly.
 * The app is selfdevop-test/app-ka (keep-alive, as real apps are) unless `--app busybox`
 * asks for the connection-per-request app; both versions are copied to members that lack them.
 * The loss scenarios boot the member again and check the Swarm is whole (three ready
 * members, one cluster) before going on. Last output line: one JSON object with a `goals`
 * map of {goal, got, met}, with the load average before and after (a shared machine).
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { Goal, ScenarioResult } from './scale/goal.ts';
import { benchApps, isBenchApp } from './scale/env.ts';
import { members, socketOf, startSwarmEnv, swarmHealthy } from './swarm/env.ts';
import { leaderLoss, nodeLoss } from './swarm/loss.ts';
import { swarmSwitch } from './swarm/switch.ts';

const { values } = parseArgs({
  options: {
    switches: { type: 'string', default: '20' },
    'own-samples': { type: 'string', default: '3' },
    only: { type: 'string' },
    app: { type: 'string', default: 'keepalive' },
  },
});
if (!isBenchApp(values.app)) {
  console.error(
    `bench:swarm: --app takes ${Object.keys(benchApps).join(' or ')}, not ${values.app}`,
  );
  process.exit(2);
}
const app = values.app;
if (!members.every((i) => existsSync(socketOf(i)))) {
  console.error(
    'bench:swarm needs multi-node.sh up 9 (MN_IMAGES with the app images), then scripts/swarm-up.sh 7 8 9',
  );
  process.exit(2);
}
const unwell = await swarmHealthy(30_000);
if (unwell) {
  console.error(
    `bench:swarm: the Swarm on nodes 7-9 is not whole (${unwell}): bash scripts/swarm-up.sh 7 8 9`,
  );
  process.exit(2);
}

const scenarios: Record<string, () => Promise<ScenarioResult>> = {
  swarmSwitch: async () => {
    // selfdevop talks to node 7, as an install registers one manager.
    const env = await startSwarmEnv(7, app);
    try {
      return await swarmSwitch(env, {
        switches: Number(values.switches),
        ownSamples: Number(values['own-samples']),
      });
    } finally {
      await env.close();
    }
  },
  nodeLoss: () => nodeLoss(app),
  leaderLoss: () => leaderLoss(app),
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
const detail: Record<string, unknown> = {};
const goals: Record<string, Goal> = {};
const t0 = performance.now();
for (const name of only) {
  const started = performance.now();
  process.stderr.write(`bench:swarm: ${name}…\n`);
  try {
    // Each scenario starts on a whole Swarm (a loss before it booted its member again).
    const unwhole = await swarmHealthy(120_000);
    if (unwhole) throw new Error(`the Swarm is not whole before ${name}: ${unwhole}`);
    const r = await scenarios[name]!();
    detail[name] = { ...r.detail, scenarioMs: Math.round(performance.now() - started) };
    Object.assign(goals, r.goals);
  } catch (e) {
    // One scenario's failure is a figure too; the others still run.
    detail[name] = { error: e instanceof Error ? e.message : String(e) };
    process.stderr.write(`bench:swarm: ${name} failed: ${String(e)}\n`);
  }
}
const after = await swarmHealthy(60_000);
console.log(
  JSON.stringify({
    bench: 'swarm',
    members: 3,
    cpus: os.cpus().length,
    loadAverage: { before: loadBefore, after: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    totalMs: Math.round(performance.now() - t0),
    swarmWholeAfter: after === null ? true : after,
    ...detail,
    goals,
  }),
);
