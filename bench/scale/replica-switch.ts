/**
 * replicaSwitch: 3 replicas on 3 nodes, `switches` blue/green deploys (v1 ↔ v2) under the
 * issue's load. After each switch a steady window (`windowMs`) of keep-alive traffic is
 * counted per replica for the spread. The CPU of each part (Caddy, the load client, this
 * process, the node engines with the replicas, the rest of the machine) is measured over the
 * switches, and the floor (`floors`) right after them, so a rate short of the goal can be
 * told apart: the switch's cost, or what the machine allows at all.
 */
import type { ScaleEnv } from './env.ts';
import { type ScenarioResult, round1, sleep } from './goal.ts';
import { defaultWarmSeconds } from '../../core/services/use-cases.ts';
import { median } from '../support/stats.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { replicasOf } from '../../core/releases/replicas.ts';
import { cpuMeter, type CpuShares } from './cpu.ts';
import { failedOf, issueLoad, spreadPct, startLoad } from './load-client.ts';

const nodeCgroups = ['sdo-node1', 'sdo-node2', 'sdo-node3'];

export async function replicaSwitch(
  env: ScaleEnv,
  o: { switches: number; windowMs: number; floorSeconds: number },
): Promise<ScenarioResult> {
  // The shipped warm window (600 s): the replaced set keeps answering the requests the edge
  // gave it before the switch, as on an install (with 0, the test app's httpd dies on
  // SIGTERM with those requests in flight, which is the app's shutdown, not the switch).
  const svc = await env.addService('switch', {
    replicas: 3,
    maxSurge: 3,
    warmSeconds: defaultWarmSeconds,
  });
  const first = await env.deploy(svc.id, env.app.v1);
  if (first.status !== 'completed') throw new Error(`first deploy ${first.status}: ${first.error}`);
  env.edgeErrors();
  const load = await startLoad({
    port: env.caddy.httpPort,
    hosts: [svc.host],
    path: '/env/HOSTNAME',
    capSeconds: 60 + o.switches * 30,
  });
  const cpu = cpuMeter({ caddyPid: env.caddy.pid, loadPid: load.pid, nodeCgroups });
  const deployMs: number[] = [];
  const spreads: number[] = [];
  const failedDeploys: string[] = [];
  try {
    for (let i = 0; i < o.switches; i++) {
      const image = i % 2 === 0 ? env.app.v2 : env.app.v1;
      const t0 = performance.now();
      const r = await env.deploy(svc.id, image);
      deployMs.push(Math.round(performance.now() - t0));
      if (r.status !== 'completed') failedDeploys.push(`${r.id}: ${r.error}`);
      // A steady window on the new set. Requests the edge sent to the old set just before
      // the switch may still be answering (latency here reaches a second), so a settle
      // window is left out first.
      await load.window();
      await sleep(1000);
      await load.window();
      await sleep(o.windowMs);
      spreads.push(spreadPct(await load.window(), svc.host, 3));
    }
  } catch (e) {
    await load.stop().catch(() => undefined);
    throw e;
  }
  const result = await load.stop();
  const cpuDuringSwitches = cpu.read();
  const edgeErrors = env.edgeErrors();
  const floor = await floors(env, svc.id, o.floorSeconds);
  const worst = Math.max(...spreads);
  const connectionErrors =
    result.keepAlive.connectionErrors + result.newConnections.connectionErrors;
  const non2xx = result.keepAlive.non2xx + result.newConnections.non2xx;
  return {
    detail: {
      switches: o.switches,
      offeredReqPerSec: issueLoad.rate,
      failedDeploys,
      deployMs: { median: median(deployMs), max: Math.max(...deployMs) },
      spreadPctPerSwitch: spreads.map(round1),
      load: result,
      cpuDuringSwitches,
      floor,
      edgeErrors,
      failed: failedOf(result),
    },
    goals: {
      replicaSwitchNon2xx: { goal: '0', got: non2xx, met: non2xx === 0 },
      replicaSwitchConnectionErrors: {
        goal: '0',
        got: connectionErrors,
        met: connectionErrors === 0,
      },
      replicaSpreadPct: { goal: '<= 15', got: round1(worst), met: worst <= 15 },
      replicaSwitchReqPerSec: {
        goal: '>= 1000 keep-alive + 50 new connections/s',
        got: result.keepAlive.reqPerSec,
        met: result.keepAlive.reqPerSec >= 1000 && result.newConnections.perSec >= 50,
      },
      // Beside the rate: the same load on the same replicas as static upstreams, in this run.
      replicaSwitchFloorReqPerSec: {
        goal: 'report (the same load on static upstreams, no switch, same run)',
        got: floor.staticUpstreams?.reqPerSec ?? null,
        met: floor.staticUpstreams !== undefined,
      },
    },
  };
}

/**
 * What the machine allows, measured in the same run right after the switches: the same load
 * (same client, rate and connections) for `seconds` against the same Caddy, (1) on a route
 * with the serving replicas as static upstreams (no DNS, no control plane at work), and
 * (2) on a route Caddy answers itself (no app, no upstream connection). When (1) cannot
 * reach the goal either, the box bounds the figure, not the switch.
 */
async function floors(
  env: ScaleEnv,
  serviceId: string,
  seconds: number,
): Promise<
  Record<
    string,
    {
      reqPerSec: number;
      newPerSec: number;
      failed: number;
      latencyMeanMs: number;
      latencyP99Ms: number;
      cpu: CpuShares;
    }
  >
> {
  const serving = await env.serving(serviceId);
  const upstreams = replicasOf(serving!)
    .filter((r) => r.health === 'healthy' && r.upstream)
    .map((r) => r.upstream!);
  const staticEdge = new CaddyEdgeRouter({
    adminUrl: env.caddy.adminUrl,
    server: env.caddy.serverName,
  });
  const staticHost = 'floor-static.apps.example.test';
  await staticEdge.put({
    id: 'floor-static',
    hosts: [staticHost],
    upstreams,
    sticky: false,
    drainSeconds: 2,
  });
  const answerHost = 'floor-caddy.apps.example.test';
  const added = await env.caddy.admin.request(
    'POST',
    `/config/apps/http/servers/${env.caddy.serverName}/routes`,
    {
      '@id': 'floor-caddy',
      match: [{ host: [answerHost] }],
      handle: [{ handler: 'static_response', status_code: 200, body: 'caddy' }],
      terminal: true,
    },
  );
  if (added.status !== 200) throw new Error(`floor route: ${added.status} ${added.body}`);
  const out: Awaited<ReturnType<typeof floors>> = {};
  try {
    for (const [name, host] of [
      ['staticUpstreams', staticHost],
      ['caddyAlone', answerHost],
    ] as const) {
      const load = await startLoad({
        port: env.caddy.httpPort,
        hosts: [host],
        path: '/env/HOSTNAME',
        capSeconds: seconds + 30,
      });
      const cpu = cpuMeter({ caddyPid: env.caddy.pid, loadPid: load.pid, nodeCgroups });
      await sleep(seconds * 1000);
      const r = await load.stop();
      out[name] = {
        reqPerSec: r.keepAlive.reqPerSec,
        newPerSec: r.newConnections.perSec,
        failed: failedOf(r),
        latencyMeanMs: r.keepAlive.latencyMeanMs,
        latencyP99Ms: r.keepAlive.latencyP99Ms,
        cpu: cpu.read(),
      };
    }
  } finally {
    await staticEdge.remove('floor-static').catch(() => undefined);
    await env.caddy.admin.request('DELETE', '/id/floor-caddy').catch(() => undefined);
  }
  return out;
}
