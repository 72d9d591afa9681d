/**
 * scaleUp: 1 → 10 replicas (maxSurge 3) under the load. The time goal is
 * "all serving within 2× the time of starting one replica × ⌈10 / parallelism⌉": the time
 * of one replica is measured first in the same run (1 → 2, then back to 1), since this
 * machine's speed varies too much for a fixed figure.
 */
import { replicasOf } from '../../core/releases/replicas.ts';
import { scaleService } from '../../core/services/scale.ts';
import type { ScaleEnv } from './env.ts';
import { type ScenarioResult, sleep } from './goal.ts';
import { failedOf, startLoad } from './load-client.ts';

export async function scaleUp(env: ScaleEnv, o: { deadlineMs: number }): Promise<ScenarioResult> {
  const maxSurge = 3;
  const to = 10;
  const svc = await env.addService('scale', { replicas: 1, maxSurge });
  const first = await env.deploy(svc.id, env.app.v1);
  if (first.status !== 'completed') throw new Error(`deploy ${first.status}: ${first.error}`);
  const serving = async () =>
    replicasOf((await env.serving(svc.id))!).filter((r) => r.health === 'healthy').length;
  /** Scales to `n` and waits until n replicas serve; ms, or null past the deadline. */
  const scaleTo = async (n: number): Promise<number | null> => {
    const t0 = performance.now();
    await scaleService(env.deps, env.deployer, svc.id, { replicas: n }, null);
    const end = Date.now() + o.deadlineMs;
    while (Date.now() < end) {
      if ((await serving()) === n) return Math.round(performance.now() - t0);
      await sleep(50);
    }
    return null;
  };
  const oneReplicaMs = await scaleTo(2);
  await scaleTo(1);
  env.edgeErrors();
  const load = await startLoad({
    port: env.caddy.httpPort,
    hosts: [svc.host],
    path: '/env/HOSTNAME',
    capSeconds: Math.ceil(o.deadlineMs / 1000) + 60,
  });
  let scaleUpMs: number | null;
  try {
    await sleep(1000);
    scaleUpMs = await scaleTo(to);
    await sleep(1000);
  } catch (e) {
    await load.stop().catch(() => undefined);
    throw e;
  }
  const result = await load.stop();
  const edgeErrors = env.edgeErrors();
  await scaleService(env.deps, env.deployer, svc.id, { replicas: 0 }, null);
  const failed = failedOf(result);
  const allowedMs = oneReplicaMs === null ? null : 2 * oneReplicaMs * Math.ceil(to / maxSurge);
  return {
    detail: { from: 1, to, maxSurge, oneReplicaMs, scaleUpMs, allowedMs, load: result, edgeErrors },
    goals: {
      scaleUpFailedRequests: { goal: '0', got: failed, met: failed === 0 },
      scaleUpAllServingMs: {
        goal: `<= 2 × one replica (${oneReplicaMs} ms) × ⌈${to} / ${maxSurge}⌉ = ${allowedMs} ms`,
        got: scaleUpMs,
        met: scaleUpMs !== null && allowedMs !== null && scaleUpMs <= allowedMs,
      },
    },
  };
}
