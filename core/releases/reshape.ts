/**
 * Scale and drain without a deploy: the serving release's replicas change in place, in the
 * release's queue group (so never beside one of its steps). New replicas start on placed
 * nodes and join the edge only once healthy; leaving ones leave the edge first, then stop
 * with the service's drain grace. A new replica that fails its gate is removed and the
 * serving set is left as it was.
 */
import { isCoreError } from '../errors.ts';
import type { NodeRecord, Release, Replica, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import {
  appendEvent,
  appendLog,
  containerEnv,
  loadContext,
  nodeById,
  nodeTarget,
  upstreamAt,
  viaDocker,
  viaEdge,
  type StepContext,
} from './context.ts';
import {
  defaultReleaseConfig,
  openTarget,
  releaseGroup,
  releaseStepsQueue,
  type ReleaseDeps,
  type ReleaseStepMessage,
  type ReshapePending,
} from './deps.ts';
import { liveReleaseStatuses } from '../edge/live-routes.ts';
import { awaitEdgeDrained, describeDrain } from './edge-drain.ts';
import { isStepFailed, StepFailed } from './errors.ts';
import { waitUntilHealthy } from './health.ts';
import type { Resources } from './placement.ts';
import { defaultHosts, planCandidate, planRoute, replicaContainerName, routeId } from './plan.ts';
import { allNodes, placedUsage, placeOrThrow, replicasOf } from './replicas.ts';

export interface ReshapePlan {
  keep: Replica[];
  leaving: Replica[];
  /** Nodes of the replicas to start. */
  add: string[];
}

/**
 * Which replicas stay, which leave and where new ones go, for `replicas` in all with none on
 * `avoid` or draining nodes. Throws PlacementUnfit (409) when the new ones do not fit.
 */
export function planReshape(
  service: Service,
  release: Release,
  replicas: number,
  avoid: readonly string[],
  nodes: readonly NodeRecord[],
  capacity: Record<string, Resources>,
  used: Record<string, Resources>,
): ReshapePlan {
  const off = new Set([
    ...avoid,
    ...nodes.filter((n) => n.drainMode || n.reachability === 'lost').map((n) => n.id),
  ]);
  const current = replicasOf(release).filter((r) => r.health !== 'stopped');
  const keep = current.filter((r) => !off.has(r.nodeId)).slice(0, replicas);
  const leaving = current.filter((r) => !keep.includes(r));
  const add = placeOrThrow(
    service,
    replicas - keep.length,
    nodes,
    capacity,
    used,
    keep.map((r) => r.nodeId),
    [...off],
  );
  return { keep, leaving, add };
}

/** Queues a reshape of `release`; ordered after any step of its service environment. */
export async function sendReshape(
  deps: Pick<ReleaseDeps, 'queue' | 'config' | 'ids'>,
  release: Release,
  reshape: Omit<NonNullable<ReleaseStepMessage['reshape']>, 'id'>,
): Promise<void> {
  const id = deps.ids.newId('rsh');
  await deps.queue.send(
    releaseStepsQueue,
    { orgId: release.orgId, releaseId: release.id, reshape: { id, ...reshape } },
    {
      group: releaseGroup(release),
      idempotencyKey: `${release.id}:reshape:${id}`,
      maxAttempts: deps.config.maxStepAttempts + 2,
    },
  );
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The handler of a reshape message: true when it ran (the release still serves). */
export async function reshapeRelease(
  deps: ReleaseDeps,
  message: ReleaseStepMessage,
  attempt: number,
): Promise<boolean> {
  const reshape = message.reshape!;
  const loaded = await deps.store.withOrg(message.orgId, async (repos) => {
    const release = await repos.releases.get(message.releaseId);
    if (release?.status !== 'completed') return null;
    const serving = await repos.releases.latest(release.serviceId, release.environmentId, [
      ...liveReleaseStatuses,
    ]);
    return {
      c: await loadContext(deps, repos, release, attempt),
      serving: serving?.id === release.id,
      nodes: await allNodes(repos),
      used: await placedUsage(repos),
    };
  });
  if (!loaded) {
    // A later slice whose release stopped serving: what it started serves no one.
    if (reshape.pending) await removeStartedOf(deps, message);
    return false;
  }
  const { c, nodes, used } = loaded;
  c.hop = message.hop ?? 0;
  if (!loaded.serving) {
    // Replaced since the request (or between slices): moving its replicas would undo a switch.
    if (reshape.pending) await removeStarted(c, reshape.pending.started);
    await appendLog(c, `${reshape.reason}: not done: a newer release serves now`);
    return true;
  }
  if (reshape.pending) return continueReshape(c, message, reshape.pending);
  const capacity: Record<string, Resources> = {};
  if (deps.runtime.capacity) {
    // A lost node is not asked: a hung engine would hold this reshape up.
    for (const n of nodes.filter((x) => !x.drainMode && x.reachability !== 'lost')) {
      try {
        capacity[n.id] = await deps.runtime.capacity(await nodeTarget(c, n));
      } catch {
        // Unknown: the start below is what finds out.
      }
    }
  }
  let plan: ReshapePlan;
  try {
    plan = planReshape(
      c.service,
      c.release,
      reshape.replicas,
      reshape.avoid,
      nodes,
      capacity,
      used,
    );
  } catch (e) {
    if (!isCoreError(e)) throw e;
    await appendLog(c, `${reshape.reason}: not done: ${e.message}`);
    return true;
  }
  const from = plan.keep.length + plan.leaving.length;
  await appendLog(
    c,
    `${reshape.reason}: ${from} → ${reshape.replicas} replicas (${plan.add.length} to start, ${plan.leaving.length} to stop)`,
  );
  // Indexes follow the release's own, so a redelivered first slice starts the same
  // containers by name instead of new ones.
  const firstIndex = Math.max(-1, ...replicasOf(c.release).map((r) => r.index)) + 1;
  const pending: ReshapePending = {
    keep: plan.keep.map((r) => r.index),
    leaving: plan.leaving.map((r) => r.index),
    toStart: [...plan.add],
    started: [],
    deadlineAt: 0,
  };
  return continueReshape(c, { ...message, reshape: { ...reshape, pending } }, pending, firstIndex);
}

const plannedReplica = (index: number, nodeId: string): Replica => ({
  index,
  nodeId,
  containerId: null,
  upstream: null,
  health: 'planned',
});

/**
 * One slice of a reshape: starts the next maxSurge batch when the last one passed its gate,
 * probes the batch for at most `healthSliceMs`, and either re-queues itself (the slot is
 * free meanwhile), gives up (every new replica removed, the serving set untouched), or
 * switches the edge to the new set and stops the leaving replicas.
 */
async function continueReshape(
  c: StepContext,
  message: ReleaseStepMessage,
  pending: ReshapePending,
  firstIndex?: number,
): Promise<boolean> {
  const reshape = message.reshape!;
  const state: ReshapePending = structuredClone(pending);
  const sliceMs = c.deps.config.healthSliceMs ?? defaultReleaseConfig.healthSliceMs;
  const sliceEnd = c.deps.clock.now().getTime() + sliceMs;
  const { health: policy } = c.service;
  let nextIndex =
    firstIndex ??
    Math.max(
      -1,
      ...replicasOf(c.release).map((r) => r.index),
      ...state.started.map((r) => r.index),
    ) + 1;
  try {
    for (;;) {
      const gating = state.started.filter((r) => r.health !== 'healthy');
      if (gating.length === 0) {
        if (state.toStart.length === 0) break;
        // Past the slice with nothing waiting: the next batch starts in the next delivery.
        if (c.deps.clock.now().getTime() >= sliceEnd) {
          await resendReshape(c, message, state, 0);
          return true;
        }
        const surge = Math.max(1, c.service.maxSurge ?? 1);
        const batch = state.toStart
          .splice(0, surge)
          .map((nodeId) => plannedReplica(nextIndex++, nodeId));
        state.started.push(...batch);
        state.deadlineAt = c.deps.clock.now().getTime() + policy.deadlineMs;
        await Promise.all(batch.map((r) => startReplica(c, r)));
        continue;
      }
      const outcomes = await Promise.all(
        gating.map(async (replica) => {
          const node = await nodeById(c, replica.nodeId);
          const outcome = await waitUntilHealthy({
            probe: c.deps.probe,
            clock: c.deps.clock,
            url: `http://${replica.upstream}${c.service.healthcheckPath}`,
            policy,
            deadlineAt: state.deadlineAt,
            sliceMs: Math.max(0, sliceEnd - c.deps.clock.now().getTime()),
          });
          if (outcome.healthy) {
            replica.health = 'healthy';
            await appendLog(
              c,
              `replica ${replica.index} healthy on node ${node.name} at ${replica.upstream}`,
            );
          }
          return { replica, node, outcome };
        }),
      );
      const failed = outcomes.find((o) => !o.outcome.healthy && !o.outcome.pending);
      if (failed)
        throw new StepFailed(
          `replica ${failed.replica.index} on node ${failed.node.name} did not pass its health check: GET ${c.service.healthcheckPath} → ${failed.outcome.lastError ?? 'no answer'}`,
          false,
        );
      if (outcomes.some((o) => o.outcome.pending)) {
        await resendReshape(c, message, state, Math.max(1, Math.ceil(policy.intervalMs / 1000)));
        return true;
      }
    }
  } catch (e) {
    if (isStepFailed(e) && e.transient) {
      // Retried by the queue with this slice's message: what it started is found by name.
      throw e;
    }
    await removeStarted(c, state.started);
    if (!isStepFailed(e)) throw e;
    await appendLog(
      c,
      `${reshape.reason}: failed, the serving replicas are unchanged: ${e.message}`,
    );
    return true;
  }
  await finishReshape(c, reshape.reason, state);
  return true;
}

/** Starts one new replica's container (idempotent by name) and records where it listens. */
async function startReplica(c: StepContext, replica: Replica): Promise<void> {
  const env = await containerEnv(c);
  const node = await nodeById(c, replica.nodeId);
  const target = await nodeTarget(c, node);
  const spec = planCandidate({
    service: c.service,
    environment: c.environment,
    release: c.release,
    node,
    env,
    index: replica.index,
    ...(c.network ? { network: c.network } : {}),
    ...(c.configurationHash ? { configurationHash: c.configurationHash } : {}),
  });
  const info = await viaDocker(() => c.deps.runtime.start(target, spec));
  replica.containerId = info.id;
  replica.upstream = upstreamAt(c, node, info);
  replica.health = 'starting';
  await appendLog(
    c,
    (info.warnings ?? []).map((w) => `warning: replica ${replica.index}: ${w}`),
  );
}

async function resendReshape(
  c: StepContext,
  message: ReleaseStepMessage,
  pending: ReshapePending,
  delaySeconds: number,
): Promise<void> {
  const reshape = message.reshape!;
  const hop = c.hop + 1;
  await c.deps.queue.send(
    releaseStepsQueue,
    { ...message, hop, reshape: { ...reshape, pending } },
    {
      group: releaseGroup(c.release),
      idempotencyKey: `${c.release.id}:reshape:${reshape.id}:hop:${hop}`,
      ...(delaySeconds > 0 ? { delaySeconds } : {}),
      maxAttempts: c.deps.config.maxStepAttempts + 2,
    },
  );
}

/** The new set serves: one edge change, then the leaving replicas drain and stop. */
async function finishReshape(c: StepContext, reason: string, state: ReshapePending): Promise<void> {
  const current = replicasOf(c.release).filter((r) => r.health !== 'stopped');
  const keep = current.filter((r) => state.keep.includes(r.index));
  const leaving = current.filter((r) => state.leaving.includes(r.index));
  const from = keep.length + leaving.length;
  const next = [...keep, ...state.started];
  await switchEdge(c, next);
  // Out of the edge now; each is stopped once the edge finished what it had sent it.
  // A lost node's replica is not waited for: its engine does not answer, it is left as is.
  const draining: string[] = [];
  for (const r of leaving) {
    const node = await nodeById(c, r.nodeId).catch(() => null);
    if (r.upstream && node?.reachability !== 'lost') draining.push(r.upstream);
  }
  const drained = await awaitEdgeDrained(c.deps, draining, c.service.drainSeconds);
  if (leaving.length > 0) await appendLog(c, describeDrain(drained, c.service.drainSeconds));
  for (const r of leaving) {
    const name = replicaContainerName(c.release, r.index);
    try {
      const node = await nodeById(c, r.nodeId);
      if (node.reachability === 'lost') {
        // Its engine does not answer; the node checks remove the container when it returns.
        await appendLog(
          c,
          `replica ${r.index} (${name}) is on a lost node: removed when it returns`,
        );
        continue;
      }
      const target = await nodeTarget(c, node);
      await viaDocker(() => c.deps.runtime.stop(target, name, c.service.drainSeconds));
      await viaDocker(() => c.deps.runtime.remove(target, name));
      await appendLog(c, `replica ${r.index} (${name}) left the edge, drained and stopped`);
    } catch (e) {
      // Out of the edge already: a container that would not stop serves no one.
      await appendLog(c, `replica ${r.index} (${name}) could not be stopped: ${messageOf(e)}`);
    }
  }
  const first = next[0];
  const deps = c.deps;
  await deps.store.withOrg(c.release.orgId, async (repos: OrgRepos) => {
    await repos.releases.update(c.release.id, {
      replicaSet: { replicas: next },
      containerId: first?.containerId ?? null,
      upstream: first?.upstream ?? null,
      ...(first ? { nodeId: first.nodeId } : {}),
      updatedAt: deps.clock.now().toISOString(),
    });
    await appendEvent(deps, repos, c.release, 'release.scaled', {
      from,
      to: next.length,
      reason,
      nodeIds: next.map((r) => r.nodeId),
    });
  });
}

/** Removes new replicas that will not serve (a failed gate, a release replaced meanwhile). */
async function removeStarted(c: StepContext, started: readonly Replica[]): Promise<void> {
  for (const r of started) {
    try {
      const target = await nodeTarget(c, await nodeById(c, r.nodeId));
      await c.deps.runtime.remove(target, replicaContainerName(c.release, r.index));
    } catch (removing) {
      await appendLog(c, `could not remove replica ${r.index}: ${messageOf(removing)}`);
    }
  }
}

/** As removeStarted, for a release that is no longer `completed` (so has no step context). */
async function removeStartedOf(deps: ReleaseDeps, message: ReleaseStepMessage): Promise<void> {
  const started = message.reshape?.pending?.started ?? [];
  if (started.length === 0) return;
  const found = await deps.store.withOrg(message.orgId, async (repos) => ({
    release: await repos.releases.get(message.releaseId),
    nodes: await Promise.all(started.map((r) => repos.nodes.get(r.nodeId))),
  }));
  if (!found.release) return;
  for (const [i, r] of started.entries()) {
    const node = found.nodes[i];
    if (!node) continue;
    try {
      await deps.runtime.remove(
        await openTarget(deps, node),
        replicaContainerName(found.release, r.index),
      );
    } catch (e) {
      deps.logger.warn(
        { releaseId: message.releaseId, err: messageOf(e) },
        'could not remove a reshape replica',
      );
    }
  }
}

/** Points the route at `replicas` (one change, all at once); none left removes the route. */
async function switchEdge(c: StepContext, replicas: Replica[]): Promise<void> {
  const id = routeId(c.service.id, c.environment.id);
  const existing = await viaEdge(() => c.deps.edge.get(id));
  const upstreams = replicas.flatMap((r) => (r.upstream ? [r.upstream] : []));
  if (upstreams.length === 0) {
    if (existing) await viaEdge(() => c.deps.edge.remove(id));
    await appendLog(c, `route ${id} removed: no replica serves`);
    return;
  }
  const hosts =
    existing?.hosts ??
    defaultHosts({
      service: c.service,
      environment: c.environment,
      edgeDomain: c.deps.config.edgeDomain,
    });
  await viaEdge(() =>
    c.deps.edge.put(
      planRoute({ service: c.service, environment: c.environment, upstreams, hosts }),
    ),
  );
  await appendLog(c, `edge serves ${upstreams.join(', ')}`);
}
