import {
  appendEvent,
  appendLog,
  containerEnv,
  endStep,
  maskSecrets,
  move,
  nodeById,
  nodeTarget,
  updateDeployJob,
  upstreamAt,
  type StepContext,
} from './context.ts';
import type { Release } from '../models.ts';
import {
  containerName,
  migrationContainerName,
  planCandidate,
  replicaContainerName,
  routeId,
} from './plan.ts';
import { replicasOf, upstreamsOf } from './replicas.ts';

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * The automatic rollback of a failed step: traffic stays on (or returns to) the release
 * that served before, the candidate goes away, and the release is `failed` with `reason`.
 * Clean-up is best effort: what cannot be done is written to the release log.
 */
export async function failRelease(c: StepContext, reason: string): Promise<void> {
  const step = c.currentStep;
  if (step) await endStep(c, step, reason);
  await appendLog(c, `release failed${step ? ` in step ${step.name}` : ''}: ${reason}`);
  await returnTraffic(c, c.release.status);
  await removeCandidate(c);
  if (c.service.strategy === 'replace') await restorePrevious(c);
  await move(
    c,
    'failed',
    { error: maskSecrets(reason, c.secretValues), finishedAt: c.deps.clock.now().toISOString() },
    async (repos, r) => {
      await updateDeployJob(c.deps, repos, r.id, { status: 'failed', attempts: c.attempt });
      await appendEvent(c.deps, repos, r, 'release.failed', {
        reason: r.error,
        step: step?.name ?? null,
      });
    },
  );
}

/**
 * Undoes what the steps of a cancelled release left (it is already `failed`): as the
 * automatic rollback does, but the status is final, so the route is always looked at.
 */
export async function undoCancelled(c: StepContext): Promise<void> {
  // A build waiting for its node's slot leaves its place in the queue.
  await c.deps.store.buildSlots?.free(c.release.id, c.release.orgId);
  await returnTraffic(c, 'health_validating');
  await removeCandidate(c);
  if (c.service.strategy === 'replace') await restorePrevious(c);
  await appendLog(c, 'cancelled: what its steps had started is undone');
}

/**
 * The route is never changed before the switch; but a worker that died between switching
 * and recording it (or a cancel during the switch) leaves traffic on the candidate, so
 * look, and put it back. `reached` is the furthest status the release got to.
 */
async function returnTraffic(c: StepContext, reached: string): Promise<void> {
  const mine = upstreamsOf(c.release);
  if (mine.length === 0 || (reached !== 'health_validating' && reached !== 'traffic_shifted'))
    return;
  try {
    const route = await c.deps.edge.get(routeId(c.service.id, c.environment.id));
    if (!route || !route.upstreams.some((u) => mine.includes(u))) return;
    const back = c.previous ? upstreamsOf(c.previous.release) : [];
    if (back.length > 0) {
      await c.deps.edge.put({ ...route, upstreams: back });
      await appendLog(
        c,
        `traffic returned to release ${c.previous!.release.id} at ${back.join(', ')}`,
      );
    } else {
      await c.deps.edge.remove(route.id);
      await appendLog(c, `route ${route.id} removed: no earlier release to return traffic to`);
    }
  } catch (e) {
    await appendLog(c, `could not check the route after the failure: ${messageOf(e)}`);
  }
}

/** Every candidate replica goes, wherever it was placed; the old set is not touched. */
async function removeCandidate(c: StepContext): Promise<void> {
  try {
    const target = await nodeTarget(c);
    await c.deps.runtime.remove(target, migrationContainerName(c.release));
  } catch (e) {
    await appendLog(c, `could not remove the migration container: ${messageOf(e)}`);
  }
  for (const r of replicasOf(c.release)) {
    const name = replicaContainerName(c.release, r.index);
    try {
      const target = await nodeTarget(c, await nodeById(c, r.nodeId));
      await c.deps.runtime.remove(target, name);
      if (r.containerId || c.release.containerId)
        await appendLog(c, `candidate container ${name} removed`);
    } catch (e) {
      await appendLog(c, `could not remove candidate container ${name}: ${messageOf(e)}`);
    }
  }
}

/** Replace stopped the old release's container: start it again and point the route at it. */
async function restorePrevious(c: StepContext): Promise<void> {
  const prev = c.previous;
  if (!prev) return;
  const others = replicasOf(prev.release).filter((r) => r.index > 0);
  if (others.length > 0) return restoreReplicas(c, prev.release);
  try {
    const target = await nodeTarget(c, prev.node);
    const running = await c.deps.runtime.inspect(target, containerName(prev.release));
    if (running?.state === 'running' && upstreamAt(c, prev.node, running) === prev.release.upstream)
      return;
    // The container is usually still there (stopped) and simply starts again; the spec
    // matters only if it was removed, then it is recreated from the old image.
    const env = await containerEnv(c);
    const spec = planCandidate({
      service: c.service,
      environment: c.environment,
      release: prev.release,
      node: prev.node,
      env,
      ...(c.network ? { network: c.network } : {}),
    });
    const info = await c.deps.runtime.start(target, spec);
    if (info.state !== 'running') {
      await appendLog(
        c,
        `release ${prev.release.id} could not be restarted: its container is ${info.state}`,
      );
      return;
    }
    const upstream = upstreamAt(c, prev.node, info);
    await c.deps.store.withOrg(c.release.orgId, (repos) =>
      repos.releases.update(prev.release.id, {
        containerId: info.id,
        upstream,
        updatedAt: c.deps.clock.now().toISOString(),
      }),
    );
    const id = routeId(c.service.id, c.environment.id);
    const route = await c.deps.edge.get(id);
    if (route && !(route.upstreams.length === 1 && route.upstreams[0] === upstream)) {
      await c.deps.edge.put({ ...route, upstreams: [upstream] });
    }
    await appendLog(c, `release ${prev.release.id} restored at ${upstream}`);
  } catch (e) {
    await appendLog(c, `could not restore release ${prev.release.id}: ${messageOf(e)}`);
  }
}

/** Replace with several replicas: start each stopped one again, then route to all of them. */
async function restoreReplicas(c: StepContext, prev: Release): Promise<void> {
  try {
    const env = await containerEnv(c);
    const replicas = replicasOf(prev).map((r) => ({ ...r }));
    for (const r of replicas) {
      const node = await nodeById(c, r.nodeId);
      const target = await nodeTarget(c, node);
      const spec = planCandidate({
        service: c.service,
        environment: c.environment,
        release: prev,
        node,
        env,
        index: r.index,
        ...(c.network ? { network: c.network } : {}),
      });
      const info = await c.deps.runtime.start(target, spec);
      if (info.state !== 'running') {
        await appendLog(c, `replica ${r.index} of release ${prev.id} could not be restarted`);
        continue;
      }
      r.upstream = upstreamAt(c, node, info);
      r.containerId = info.id;
    }
    const first = replicas[0]!;
    await c.deps.store.withOrg(c.release.orgId, (repos) =>
      repos.releases.update(prev.id, {
        containerId: first.containerId,
        upstream: first.upstream,
        replicaSet: { replicas },
        updatedAt: c.deps.clock.now().toISOString(),
      }),
    );
    const route = await c.deps.edge.get(routeId(c.service.id, c.environment.id));
    const upstreams = replicas.flatMap((r) => (r.upstream ? [r.upstream] : []));
    if (route && upstreams.length > 0) await c.deps.edge.put({ ...route, upstreams });
    await appendLog(c, `release ${prev.id} restored at ${upstreams.join(', ')}`);
  } catch (e) {
    await appendLog(c, `could not restore release ${prev.id}: ${messageOf(e)}`);
  }
}
