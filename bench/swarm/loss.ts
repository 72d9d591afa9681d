/**
 * bench:swarm's loss scenarios. Each kills one Swarm member (multi-node.sh: 7-9 are the
 * Swarm's) and always boots it again, then holds the Swarm to be whole (three members
 * ready, one cluster) before it returns.
 *
 * - nodeLoss: 3 replicas, requests through Caddy from 8 loops (a new connection each,
 *   bounded in count and time); a member that is neither the leader nor the manager
 *   selfdevop talks to loses power. survivorsOnlyMs: kill → the edge's upstreams no longer
 *   hold the lost task, or the send time of the last request that still failed, if later;
 *   restoredMs: kill → the release has three healthy replicas none on the lost member and
 *   the edge serves them; against swarmRescheduleMs: kill → Swarm runs a replacement task
 *   of every lost one (Swarm's own healing, measured in the same run).
 * - leaderLoss: the leader loses power while a deploy starts its candidate, selfdevop
 *   talking to another manager, its node checks running as in nodeLoss; ok when the release completes, or fails with its candidate
 *   services removed and the previous set serving, and every request after it settles is
 *   answered by the set that serves.
 */
import http from 'node:http';
import Docker from 'dockerode';
import { NodeChecker } from '../../core/nodes/checks.ts';
import { createRelease } from '../../core/releases/engine.ts';
import { routeId } from '../../core/releases/plan.ts';
import { deployer } from '../../test/core/releases/harness.ts';
import type { Goal } from '../scale/goal.ts';
import { sleep } from '../scale/goal.ts';
import type { BenchApp } from '../scale/env.ts';
import { memberView, multiNode, socketOf, startSwarmEnv, swarmHealthy } from './env.ts';

function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
  });
}

async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms: number) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null && ok(v)) return v;
    if (Date.now() > end) return null;
    await sleep(100);
  }
}

const round = (n: number | null) => (n === null ? null : Math.round(n));

interface TaskView {
  ServiceID: string;
  NodeID?: string;
  DesiredState?: string;
  Status?: { State?: string };
}

/** The manager and the member to kill: neither is the other; `leader` picks the leader. */
async function roles(leader: boolean): Promise<{ via: number; victim: number }> {
  const view = await memberView(7).catch(() => memberView(8));
  const lead = view.find((m) => m.leader)!.index;
  if (leader) return { victim: lead, via: [7, 8, 9].find((i) => i !== lead)! };
  const via = lead;
  return { via, victim: [7, 8, 9].find((i) => i !== lead)! };
}

async function whole(): Promise<void> {
  const why = await swarmHealthy(180_000);
  if (why) throw new Error(`the Swarm is not whole after the loss: ${why}`);
}

export async function nodeLoss(app: BenchApp = 'keepalive'): Promise<{
  detail: Record<string, unknown>;
  goals: Record<string, Goal>;
}> {
  const { via, victim } = await roles(false);
  const env = await startSwarmEnv(via, app);
  const docker = new Docker({ socketPath: socketOf(via) });
  let killed = false;
  // The worker's node checks, a round a second: they follow the Swarm's tasks.
  const stopChecks = new NodeChecker({
    release: env.deps,
    policy: { intervalMs: 1000, timeoutMs: 1000, missesToLose: 2 },
  }).start();
  try {
    const svc = await env.addService('node-loss', { warmSeconds: 0 });
    const v1 = await env.deploy(svc.id, env.app.v1);
    if (v1.status !== 'completed') throw new Error(`deploy: ${v1.status} ${v1.error}`);
    const victimId = (await memberView(via)).find((m) => m.index === victim)!.id;
    const onVictim = v1.replicaSet!.replicas.filter((r) =>
      r.upstream!.startsWith(`10.213.0.${10 + victim}:`),
    );
    const serviceIds = (
      (await docker.listServices({
        filters: { label: [`selfdevop.release=${v1.id}`] },
      })) as { ID: string }[]
    ).map((s) => s.ID);
    const edgeSet = async () =>
      (await env.deps.edge.get(routeId(svc.id, 'env_000001')))?.upstreams ?? [];
    const lostUpstreams = onVictim.map((r) => r.upstream!);
    if (onVictim.length === 0) throw new Error(`no task of the release on sdo-node${victim}`);

    const samples: { sentAt: number; status: number }[] = [];
    let loading = true;
    const loadEnd = Date.now() + 150_000;
    const loops = Array.from({ length: 8 }, async () => {
      while (loading && samples.length < 60_000 && Date.now() < loadEnd) {
        const sentAt = performance.now();
        const r = await get(env.caddy.httpPort, svc.host, '/env/HOSTNAME');
        samples.push({ sentAt, status: r.status });
      }
    });
    await sleep(2000);
    const t0 = performance.now();
    killed = true;
    await multiNode('kill', String(victim));
    // Swarm's own healing: each lost task has a running replacement on another member.
    const rescheduled = until(
      async () =>
        Promise.all(
          serviceIds.map(
            async (id) =>
              (await docker.listTasks({ filters: { service: [id] } })) as unknown as TaskView[],
          ),
        ),
      (per) =>
        per.every((tasks) =>
          tasks.some((t) => t.Status?.State === 'running' && t.NodeID !== victimId),
        ),
      90_000,
    ).then((v) => (v ? performance.now() - t0 : null));
    const edgeDropped = until(
      edgeSet,
      (u) => !u.some((x) => lostUpstreams.includes(x)),
      90_000,
    ).then((v) => (v ? performance.now() - t0 : null));
    const restored = until(
      async () => ({ r: await env.release(v1.id), edge: await edgeSet() }),
      ({ r, edge }) => {
        const healthy = r.replicaSet!.replicas.filter((x) => x.health === 'healthy');
        return (
          healthy.length === 3 &&
          healthy.every((x) => !lostUpstreams.includes(x.upstream!)) &&
          edge.length === 3 &&
          healthy.every((x) => edge.includes(x.upstream!))
        );
      },
      90_000,
    ).then((v) => (v ? performance.now() - t0 : null));
    const [swarmRescheduleMs, edgeDroppedMs, restoredMs] = await Promise.all([
      rescheduled,
      edgeDropped,
      restored,
    ]);
    loading = false;
    await Promise.all(loops);
    const after = samples.filter((s) => s.sentAt >= t0);
    const failed = after.filter((s) => s.status !== 200);
    const lastFailed = failed.length ? Math.max(...failed.map((s) => s.sentAt - t0)) : null;
    const survivorsOnlyMs =
      edgeDroppedMs === null ? null : Math.max(lastFailed ?? 0, edgeDroppedMs);
    await multiNode('start', String(victim));
    killed = false;
    await whole();
    return {
      detail: {
        via: `sdo-node${via}`,
        lost: `sdo-node${victim}`,
        tasksOnLost: onVictim.length,
        requestsAfterKill: after.length,
        failedAfterKill: failed.length,
        lastFailedSentMs: round(lastFailed),
        swarmRescheduleMs: round(swarmRescheduleMs),
        edgeDroppedMs: round(edgeDroppedMs),
        survivorsOnlyMs: round(survivorsOnlyMs),
        restoredMs: round(restoredMs),
        note:
          edgeDroppedMs === null
            ? 'the edge kept the lost task: the task following did not act'
            : undefined,
      },
      goals: {
        swarmNodeLossSurvivorsOnlyMs: {
          goal: '<= 3000',
          got: round(survivorsOnlyMs),
          met: survivorsOnlyMs !== null && survivorsOnlyMs <= 3000,
        },
        swarmNodeLossRestoredMs: {
          goal: `reported against Swarm's own rescheduling (${round(swarmRescheduleMs)} ms this run)`,
          got: round(restoredMs),
          met:
            restoredMs !== null &&
            swarmRescheduleMs !== null &&
            restoredMs <= swarmRescheduleMs + 5000,
        },
      },
    };
  } finally {
    await stopChecks().catch(() => undefined);
    if (killed) await multiNode('start', String(victim)).catch(() => undefined);
    await env.close();
  }
}

export async function leaderLoss(app: BenchApp = 'keepalive'): Promise<{
  detail: Record<string, unknown>;
  goals: Record<string, Goal>;
}> {
  const { via, victim } = await roles(true);
  const env = await startSwarmEnv(via, app);
  let killed = false;
  // The worker's node checks, a round a second, as in nodeLoss: the leader is a member too,
  // and the serving set's task on it leaves the edge only because they follow the tasks.
  const stopChecks = new NodeChecker({
    release: env.deps,
    policy: { intervalMs: 1000, timeoutMs: 1000, missesToLose: 2 },
  }).start();
  try {
    const svc = await env.addService('leader-loss', { warmSeconds: 0 });
    const v1 = await env.deploy(svc.id, env.app.v1);
    if (v1.status !== 'completed') throw new Error(`deploy: ${v1.status} ${v1.error}`);
    const { id } = await createRelease(env.deps, deployer, {
      serviceId: svc.id,
      image: env.app.v2,
    });
    // The leader goes while the candidate starts.
    await until(
      () => env.release(id),
      (r) => !['queued', 'building'].includes(r.status),
      60_000,
    );
    const t0 = performance.now();
    killed = true;
    await multiNode('kill', String(victim));
    const settled = await until(
      () => env.release(id),
      (r) => r.status === 'completed' || r.status === 'failed',
      300_000,
    );
    const settledMs = settled ? performance.now() - t0 : null;
    const docker = new Docker({ socketPath: socketOf(via) });
    const leftover = settled
      ? (
          (await docker.listServices({
            filters: { label: [`selfdevop.release=${id}`] },
          })) as unknown[]
        ).length
      : null;
    const serving = settled?.status === 'completed' ? 'v2' : 'v1';
    const answers: number[] = [];
    const bodies = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const r = await get(env.caddy.httpPort, svc.host, '/env/APP_VERSION');
      answers.push(r.status);
      if (r.status === 200) bodies.add(r.body);
    }
    const allAnswered = answers.every((s) => s === 200);
    const ok =
      settled !== null &&
      allAnswered &&
      bodies.size === 1 &&
      bodies.has(serving) &&
      (settled.status === 'completed' || leftover === 0);
    await multiNode('start', String(victim));
    killed = false;
    await whole();
    return {
      detail: {
        via: `sdo-node${via}`,
        killedLeader: `sdo-node${victim}`,
        status: settled?.status ?? 'not settled in 300 s',
        error: settled?.error ?? null,
        settledAfterKillMs: round(settledMs),
        candidateServicesLeft: leftover,
        answersAfter: { ok: answers.filter((s) => s === 200).length, of: answers.length },
        versionsAfter: [...bodies],
        note: allAnswered
          ? undefined
          : 'requests after it settled failed: a task on the killed leader was still at the edge',
      },
      goals: {
        swarmLeaderLossReleaseOk: {
          goal: '1 = true (completes, or fails with its candidate removed and v1 serving)',
          got: ok ? 1 : 0,
          met: ok,
        },
      },
    };
  } finally {
    await stopChecks().catch(() => undefined);
    if (killed) await multiNode('start', String(victim)).catch(() => undefined);
    await env.close();
  }
}
