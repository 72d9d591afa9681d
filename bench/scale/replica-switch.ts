/**
 * replicaSwitch: 3 replicas on 3 nodes, `switches` blue/green deploys (v1 ↔ v2) under the
 * issue's load. After each switch a steady window (`windowMs`) of keep-alive traffic is
 * counted per replica for the spread.
 */
import type { ScaleEnv } from './env.ts';
import { type ScenarioResult, round1, sleep } from './goal.ts';
import { defaultWarmSeconds } from '../../core/services/use-cases.ts';
import { median } from '../support/stats.ts';
import { failedOf, spreadPct, startLoad } from './load-client.ts';

export async function replicaSwitch(
  env: ScaleEnv,
  o: { switches: number; windowMs: number },
): Promise<ScenarioResult> {
  // The shipped warm window (600 s): the replaced set keeps answering the requests the edge
  // gave it before the switch, as on an install (with 0, the test app's httpd dies on
  // SIGTERM with those requests in flight, which is the app's shutdown, not the switch).
  const svc = await env.addService('switch', {
    replicas: 3,
    maxSurge: 3,
    warmSeconds: defaultWarmSeconds,
  });
  const first = await env.deploy(svc.id, 'selfdevop-test/app:v1');
  if (first.status !== 'completed') throw new Error(`first deploy ${first.status}: ${first.error}`);
  env.edgeErrors();
  const load = await startLoad({
    port: env.caddy.httpPort,
    hosts: [svc.host],
    path: '/env/HOSTNAME',
    capSeconds: 60 + o.switches * 30,
  });
  const deployMs: number[] = [];
  const spreads: number[] = [];
  const failedDeploys: string[] = [];
  try {
    for (let i = 0; i < o.switches; i++) {
      const image = i % 2 === 0 ? 'selfdevop-test/app:v2' : 'selfdevop-test/app:v1';
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
  const edgeErrors = env.edgeErrors();
  const worst = Math.max(...spreads);
  const connectionErrors =
    result.keepAlive.connectionErrors + result.newConnections.connectionErrors;
  const non2xx = result.keepAlive.non2xx + result.newConnections.non2xx;
  return {
    detail: {
      switches: o.switches,
      failedDeploys,
      deployMs: { median: median(deployMs), max: Math.max(...deployMs) },
      spreadPctPerSwitch: spreads.map(round1),
      load: result,
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
    },
  };
}
