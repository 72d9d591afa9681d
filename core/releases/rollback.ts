import { isCoreError, ReleaseAlreadyInFlight, NotFound, Unavailable } from '../errors.ts';
import type { Release, Replica } from '../models.ts';
import type { ContainerInfo } from '../ports.ts';
import { assertCan } from '../roles.ts';
import { requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { appendEvent } from './context.ts';
import { insertRelease, queueRelease } from './create.ts';
import { openTarget, releaseGroup, sendRetire, type ReleaseDeps } from './deps.ts';
import type { MessageHandler } from '../ports.ts';
import { upstreamOf, UntrustedBinding } from '../nodes/address.ts';
import { replicasOf } from './replicas.ts';
import { NothingToRollBackTo, ReleaseNotRollbackable } from './errors.ts';
import { defaultHosts, planRoute, replicaContainerName, routeId } from './plan.ts';
import { rollbackRequestedAction } from './steps.ts';

/** The warm path must stay well under a second, so its one probe gets at most this long. */
const warmProbeTimeoutMs = 500;

/** Queue of manual rollbacks handed to a worker: the API process may have no Docker access. */
export const releaseRollbackQueue = 'release-rollbacks';

export interface ReleaseRollbackMessage {
  orgId: string;
  releaseId: string;
  actor: { actorType: 'user' | 'api_key'; actorId: string };
  requestId: string | null;
}

export interface RollbackResult {
  /**
   * `warm`: traffic went back to the still-running container at once; `redeploy`: a new
   * release runs; `queued`: this process cannot reach the node's Docker Engine (the API
   * container of the self-hosted stack has no socket), so a worker does it within moments.
   */
  path: 'warm' | 'redeploy' | 'queued';
  /** The release rolled back: `rolled_back` on the warm path, still `completed` until the redeploy completes. */
  release: Release;
  /** The release traffic returns to. */
  to: Release;
  /** The queued release redeploying `to`'s image, on the redeploy path. */
  redeploy: Release | null;
}

/**
 * Returns traffic to the release before a completed, serving one (`POST
 * /api/releases/{id}/rollback`, 202). Fast path: every replica of the previous release
 * still runs (warm window) and answers, so the route moves back to all of them at once.
 * Otherwise its image digest is redeployed as a new release, and this one becomes
 * `rolled_back` when that completes.
 */
export async function rollbackRelease(
  deps: ReleaseDeps,
  principal: Principal,
  input: { releaseId: string },
  ctx: RequestContext | null = null,
  options: { inWorker?: boolean } = {},
): Promise<RollbackResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const { releaseId } = input;
  const found = await deps.store.withOrg(p.orgId, async (repos) => {
    const release = await repos.releases.get(releaseId);
    if (!release) throw new NotFound('release', releaseId);
    if (release.status !== 'completed') {
      throw new ReleaseNotRollbackable(
        releaseId,
        `it is ${release.status}; only a completed release can be rolled back`,
      );
    }
    const serving = await repos.releases.latest(release.serviceId, release.environmentId, [
      'completed',
    ]);
    if (serving?.id !== release.id)
      throw new ReleaseNotRollbackable(releaseId, `it is not serving; release ${serving?.id} is`);
    const inFlight = await repos.releases.inFlight(release.serviceId, release.environmentId);
    if (inFlight) throw new ReleaseAlreadyInFlight(inFlight.id);
    if (!release.previousReleaseId) throw new NothingToRollBackTo(releaseId);
    const to = await repos.releases.get(release.previousReleaseId);
    if (!to || to.status !== 'completed') {
      throw new NothingToRollBackTo(
        releaseId,
        `release ${release.previousReleaseId} is ${to?.status ?? 'gone'}`,
      );
    }
    const service = await repos.services.get(release.serviceId);
    const environment = await repos.environments.get(release.environmentId);
    if (!service || !environment) throw new NotFound('service', release.serviceId);
    // Every replica `to` served with (one for a release from before replicas); a retired
    // one is stopped and has nothing warm left.
    const replicas = replicasOf(to).filter((r) => r.health !== 'stopped');
    const nodes = await Promise.all(replicas.map((r) => repos.nodes.get(r.nodeId)));
    return { release, to, service, environment, replicas, nodes };
  });
  const { release, to, service, environment, replicas, nodes } = found;
  const actor = { actorType: p.actorType, actorId: p.actorId };
  const requestId = ctx?.requestId ?? null;

  // Before the try: credentials that do not open are the caller's to fix (409 naming the
  // node), not something a worker could do better.
  const targets = await Promise.all(nodes.map((n) => (n ? openTarget(deps, n) : null)));
  let warm: (ContainerInfo | null)[] = [];
  try {
    // Every replica must still be there: bringing back only some of them would put the
    // whole load of the service on fewer containers than it ran with.
    warm = await Promise.all(
      replicas.map((r, i) => {
        const target = targets[i];
        return target
          ? deps.runtime.inspect(target, replicaContainerName(to, r.index))
          : Promise.resolve(null);
      }),
    );
  } catch (e) {
    // Only the node's engine can say the warm container is still the one we left (a bare
    // port could belong to another app by now), so without it a worker takes over.
    if (options.inWorker || !(isCoreError(e) && e.kind === 'unavailable')) throw e;
    const message: ReleaseRollbackMessage = {
      orgId: p.orgId,
      releaseId,
      actor: { actorType: p.actorType, actorId: p.actorId },
      requestId: ctx?.requestId ?? null,
    };
    await deps.queue.send(releaseRollbackQueue, message, {
      group: releaseGroup(release),
      idempotencyKey: `${releaseId}:rollback`,
    });
    return { path: 'queued', release, to, redeploy: null };
  }
  // Where each warm container is, from its node's address: an engine answer that is not
  // bound where it was asked is no place to probe or route, so the release is redeployed.
  // A worker has no route to switch back and retired at once: it is redeployed.
  const warmAt = replicas.map((_, i) => {
    const info = warm[i];
    const node = nodes[i];
    if (info?.state !== 'running' || !node || service.containerPort === null) return null;
    try {
      return upstreamOf(node, info, service.containerPort, {
        privateAddresses: deps.config.tenantPrivateNodes ?? false,
      });
    } catch (e) {
      if (!(e instanceof UntrustedBinding)) throw e;
      return null;
    }
  });
  const upstreams = warmAt.filter((u): u is string => u !== null);
  // One quick probe each, at once: a warm container that stopped answering is no place to
  // send traffic.
  const allWarm =
    replicas.length > 0 &&
    upstreams.length === replicas.length &&
    (
      await Promise.all(
        upstreams.map((u) =>
          deps.probe.check(
            `http://${u}${service.healthcheckPath}`,
            Math.min(service.health.timeoutMs, warmProbeTimeoutMs),
          ),
        ),
      )
    ).every((r) => r.ok);
  if (allWarm) {
    const id = routeId(service.id, environment.id);
    const existing = await deps.edge.get(id);
    const hosts =
      existing?.hosts ?? defaultHosts({ service, environment, edgeDomain: deps.config.edgeDomain });
    await deps.edge.put(planRoute({ service, environment, upstreams, hosts }));
    const readBack = await deps.edge.get(id);
    const sameSet = (a: readonly string[]) =>
      [...a].sort().join(' ') === [...upstreams].sort().join(' ');
    if (!readBack || !sameSet(readBack.upstreams)) {
      throw new Unavailable(
        'edge',
        `route ${id} does not show upstreams ${upstreams.join(', ')} after the rollback`,
      );
    }
    const at = deps.clock.now().toISOString();
    const back: Replica[] = replicas.map((r, i) => ({
      ...r,
      containerId: warm[i]!.id,
      upstream: upstreams[i]!,
      health: 'healthy',
    }));
    const restored = {
      upstream: back[0]!.upstream,
      containerId: back[0]!.containerId,
      // A release from before replicas keeps its shape: its own fields are its one replica.
      ...(to.replicaSet ? { replicaSet: { replicas: back } } : {}),
    };
    const rolledBack = await deps.store.withOrg(p.orgId, async (repos) => {
      if (
        !(await repos.releases.transition(release.id, 'completed', {
          status: 'rolled_back',
          updatedAt: at,
        }))
      ) {
        throw new ReleaseNotRollbackable(releaseId, 'it changed while rolling back');
      }
      if (
        to.upstream !== restored.upstream ||
        to.containerId !== restored.containerId ||
        (to.replicaSet && JSON.stringify(to.replicaSet.replicas) !== JSON.stringify(back))
      ) {
        await repos.releases.update(to.id, { ...restored, updatedAt: at });
      }
      await appendEvent(
        deps,
        repos,
        release,
        'release.rolled_back',
        { to: to.id, path: 'warm' },
        actor,
        requestId,
      );
      const line = `rolled back: traffic returned to release ${to.id} at ${upstreams.join(', ')}`;
      await repos.releaseLogs.append(release.id, [{ at, stream: 'system', line }]);
      await repos.releaseLogs.append(to.id, [
        { at, stream: 'system', line: `serving again after rollback of release ${release.id}` },
      ]);
      return { ...release, status: 'rolled_back' as const, updatedAt: at };
    });
    // The rolled-back release stays warm in turn, so undoing the rollback is instant too.
    await sendRetire(deps, rolledBack, to.id, service.warmSeconds);
    return { path: 'warm', release: rolledBack, to: { ...to, ...restored }, redeploy: null };
  }

  const redeploy = await deps.store.withOrg(p.orgId, async (repos) => {
    const r = await insertRelease(
      deps,
      repos,
      {
        serviceId: service.id,
        environmentId: environment.id,
        // A built release goes back to its `<service>:<sha>` image: reused where the node
        // still has it, else rebuilt from the recorded sha (the build step logs which).
        ...(to.gitRef !== null && to.gitSha !== null
          ? { image: to.image, gitSha: to.gitSha, gitRef: to.gitSha }
          : { image: to.imageDigest ?? to.image, gitSha: to.gitSha }),
        kind: 'rollback',
      },
      actor,
      requestId,
      { rollbackOf: release.id, to: to.id },
    );
    // The marker the complete step reads to mark `release` rolled_back once traffic moved.
    await appendEvent(
      deps,
      repos,
      r,
      rollbackRequestedAction,
      { rollbackOf: release.id, to: to.id },
      actor,
      requestId,
    );
    return r;
  });
  await queueRelease(deps, redeploy);
  return { path: 'redeploy', release, to, redeploy };
}

/**
 * The worker's side of a handed-over rollback: the same checks again (the release may
 * have changed meanwhile), then the warm switch or the redeploy. The caller's role was
 * checked when the request was accepted.
 */
export const handleReleaseRollback =
  (deps: ReleaseDeps): MessageHandler<ReleaseRollbackMessage> =>
  async (m) => {
    const { orgId, releaseId, actor, requestId } = m.payload;
    const principal: Principal = { ...actor, userId: null, orgId, role: 'deployer' };
    try {
      await rollbackRelease(
        deps,
        principal,
        { releaseId },
        { requestId, ip: null },
        { inWorker: true },
      );
    } catch (e) {
      // Already rolled back or superseded: the request is moot, not a failure to retry.
      if (isCoreError(e) && (e.kind === 'conflict' || e.kind === 'not_found')) {
        deps.logger.warn({ orgId, releaseId, err: e.message }, 'queued rollback no longer applies');
        return;
      }
      throw e;
    }
  };
