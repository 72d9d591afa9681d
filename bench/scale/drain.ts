/**
 * drain: three services of 3 replicas each (one per node), the load spread over
 * the three, then node 1 is drained. Time to drained: from the drain request until no
 * serving replica of the three is on node 1 and node 1 runs none of their containers.
 * The node is undrained and the services scaled to 0 afterwards, for the next scenario.
 */
import { drainNode, undrainNode } from '../../core/nodes/drain.ts';
import { replicasOf } from '../../core/releases/replicas.ts';
import { scaleService } from '../../core/services/scale.ts';
import { nodeIds, nodeSockets, type ScaleEnv } from './env.ts';
import { type ScenarioResult, sleep } from './goal.ts';
import { failedOf, startLoad } from './load-client.ts';

export async function drain(env: ScaleEnv, o: { deadlineMs: number }): Promise<ScenarioResult> {
  const services: { id: string; host: string }[] = [];
  for (const name of ['drain-a', 'drain-b', 'drain-c'])
    services.push(await env.addService(name, { replicas: 3, maxSurge: 3 }));
  for (const s of services) {
    const r = await env.deploy(s.id, env.app.v1);
    if (r.status !== 'completed') throw new Error(`deploy of ${s.id} ${r.status}: ${r.error}`);
  }
  const node = nodeIds[0]!;
  const onNode = async () => {
    let replicas = 0;
    for (const s of services)
      replicas += replicasOf((await env.serving(s.id))!).filter(
        (r) => r.nodeId === node && r.health !== 'stopped',
      ).length;
    const running = (
      await env.deps.runtime.list(
        { dockerHost: `unix://${nodeSockets[0]}` },
        { 'selfdevop.org': env.orgId },
      )
    ).filter(
      (c) => c.state === 'running' && services.some((s) => c.labels['selfdevop.service'] === s.id),
    );
    return replicas + running.length;
  };
  const before = await onNode();
  env.edgeErrors();
  const load = await startLoad({
    port: env.caddy.httpPort,
    hosts: services.map((s) => s.host),
    path: '/env/HOSTNAME',
    capSeconds: Math.ceil(o.deadlineMs / 1000) + 60,
  });
  let drainedMs: number | null = null;
  let moving: number | undefined;
  try {
    // A second of load before, so the figures cover a serving steady state too.
    await sleep(1000);
    const t0 = performance.now();
    moving = (await drainNode(env.deps, env.admin, node, null)).moving.length;
    const end = Date.now() + o.deadlineMs;
    while (Date.now() < end) {
      if ((await onNode()) === 0) {
        drainedMs = Math.round(performance.now() - t0);
        break;
      }
      await sleep(100);
    }
    await sleep(1000);
  } catch (e) {
    await load.stop().catch(() => undefined);
    throw e;
  }
  const result = await load.stop();
  const edgeErrors = env.edgeErrors();
  await undrainNode(env.deps, env.admin, node, null);
  for (const s of services) await scaleService(env.deps, env.deployer, s.id, { replicas: 0 }, null);
  const failed = failedOf(result);
  return {
    detail: {
      services: services.length,
      replicasOnNodeBefore: before,
      releasesMoved: moving,
      drainedMs,
      load: result,
      edgeErrors,
    },
    goals: {
      drainFailedRequests: { goal: '0', got: failed, met: failed === 0 },
      drainedMs: {
        goal: `report (drained within ${o.deadlineMs} ms)`,
        got: drainedMs,
        met: drainedMs !== null,
      },
    },
  };
}
