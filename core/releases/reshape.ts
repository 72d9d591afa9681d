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
  releaseGroup,
  releaseStepsQueue,
  type ReleaseDeps,
  type ReleaseStepMessage,
} from './deps.ts';
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
    return {
      c: await loadContext(deps, repos, release, attempt),
      nodes: await allNodes(repos),
      used: await placedUsage(repos),
    };
  });
  if (!loaded) return false;
  const { c, nodes, used } = loaded;
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
  let added: Replica[];
  try {
    added = await startHealthy(c, plan.add);
  } catch (e) {
    if (!isStepFailed(e) || e.transient) throw e;
    await appendLog(
      c,
      `${reshape.reason}: failed, the serving replicas are unchanged: ${e.message}`,
    );
    return true;
  }
  const next = [...plan.keep, ...added];
  await switchEdge(c, next);
  const lost = new Set(nodes.filter((n) => n.reachability === 'lost').map((n) => n.id));
  for (const r of plan.leaving) {
    const name = replicaContainerName(c.release, r.index);
    if (lost.has(r.nodeId)) {
      // Its engine does not answer; the node checks remove the container when it returns.
      await appendLog(c, `replica ${r.index} (${name}) is on a lost node: removed when it returns`);
      continue;
    }
    try {
      const target = await nodeTarget(c, await nodeById(c, r.nodeId));
      await viaDocker(() => c.deps.runtime.stop(target, name, c.service.drainSeconds));
      await viaDocker(() => c.deps.runtime.remove(target, name));
      await appendLog(c, `replica ${r.index} (${name}) left the edge, drained and stopped`);
    } catch (e) {
      // Out of the edge already: a container that would not stop serves no one.
      await appendLog(c, `replica ${r.index} (${name}) could not be stopped: ${messageOf(e)}`);
    }
  }
  const first = next[0];
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
      reason: reshape.reason,
      nodeIds: next.map((r) => r.nodeId),
    });
  });
  return true;
}

/** Starts one replica per node in `nodeIds` (maxSurge at once), each health-gated; any failure removes them all. */
async function startHealthy(c: StepContext, nodeIds: readonly string[]): Promise<Replica[]> {
  if (nodeIds.length === 0) return [];
  const env = await containerEnv(c);
  let index = Math.max(-1, ...replicasOf(c.release).map((r) => r.index)) + 1;
  const started: Replica[] = nodeIds.map((nodeId) => ({
    index: index++,
    nodeId,
    containerId: null,
    upstream: null,
    health: 'planned' as const,
  }));
  const surge = Math.max(1, c.service.maxSurge ?? 1);
  const { healthcheckPath: path, health: policy } = c.service;
  try {
    for (let at = 0; at < started.length; at += surge) {
      await Promise.all(
        started.slice(at, at + surge).map(async (replica) => {
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
          });
          const info = await viaDocker(() => c.deps.runtime.start(target, spec));
          replica.containerId = info.id;
          replica.upstream = upstreamAt(c, node, info);
          replica.health = 'starting';
          const outcome = await waitUntilHealthy({
            probe: c.deps.probe,
            clock: c.deps.clock,
            url: `http://${replica.upstream}${path}`,
            policy,
            deadlineAt: c.deps.clock.now().getTime() + policy.deadlineMs,
            // The whole gate in this delivery: a reshape has no step row to resume from.
            sliceMs: policy.deadlineMs,
          });
          if (!outcome.healthy)
            throw new StepFailed(
              `replica ${replica.index} on node ${node.name} did not pass its health check: GET ${path} → ${outcome.lastError ?? 'no answer'}`,
              false,
            );
          replica.health = 'healthy';
          await appendLog(
            c,
            `replica ${replica.index} healthy on node ${node.name} at ${replica.upstream}`,
          );
        }),
      );
    }
  } catch (e) {
    for (const r of started) {
      try {
        const target = await nodeTarget(c, await nodeById(c, r.nodeId));
        await c.deps.runtime.remove(target, replicaContainerName(c.release, r.index));
      } catch (removing) {
        await appendLog(c, `could not remove replica ${r.index}: ${messageOf(removing)}`);
      }
    }
    throw e;
  }
  return started;
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
