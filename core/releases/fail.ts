import {
  appendEvent,
  appendLog,
  containerEnv,
  endStep,
  maskSecrets,
  move,
  nodeTarget,
  updateDeployJob,
  upstreamAt,
  type StepContext,
} from './context.ts';
import { containerName, migrationContainerName, planCandidate, routeId } from './plan.ts';

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
  const upstream = c.release.upstream;
  if (!upstream || (reached !== 'health_validating' && reached !== 'traffic_shifted')) return;
  try {
    const route = await c.deps.edge.get(routeId(c.service.id, c.environment.id));
    if (!route || !route.upstreams.includes(upstream)) return;
    const back = c.previous?.release.upstream;
    if (back) {
      await c.deps.edge.put({ ...route, upstreams: [back] });
      await appendLog(c, `traffic returned to release ${c.previous!.release.id} at ${back}`);
    } else {
      await c.deps.edge.remove(route.id);
      await appendLog(c, `route ${route.id} removed: no earlier release to return traffic to`);
    }
  } catch (e) {
    await appendLog(c, `could not check the route after the failure: ${messageOf(e)}`);
  }
}

async function removeCandidate(c: StepContext): Promise<void> {
  const names = [containerName(c.release), migrationContainerName(c.release)];
  try {
    const target = await nodeTarget(c);
    for (const name of names) await c.deps.runtime.remove(target, name);
    if (c.release.containerId) await appendLog(c, `candidate container ${names[0]} removed`);
  } catch (e) {
    await appendLog(c, `could not remove candidate container ${names[0]}: ${messageOf(e)}`);
  }
}

/** Replace stopped the old release's container: start it again and point the route at it. */
async function restorePrevious(c: StepContext): Promise<void> {
  const prev = c.previous;
  if (!prev) return;
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
