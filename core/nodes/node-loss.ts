/**
 * What a lost node and a returning one mean for the replicas: pure plans, tested by
 * equality (like core/releases/plan.ts); core/nodes/checks.ts carries them out. A
 * reconcile, not a scheduler: the desired count is the serving release's own, running is
 * its replicas on nodes not lost, and the replacements go through the same reshape as a
 * scale or a drain (placement, capacity, health gate before the edge).
 */
import type { ContainerInfo } from '../ports.ts';
import type { Release, Service } from '../models.ts';
import { replicaContainerName } from '../releases/plan.ts';
import { replicasOf } from '../releases/replicas.ts';

/** A service environment's serving release and its release in flight, as activeReleases gives them. */
export interface ActiveRelease {
  service: Pick<Service, 'id'>;
  live: Release | null;
  inFlight: Release | null;
}

export interface LossStep {
  releaseId: string;
  serviceId: string;
  environmentId: string;
  /** Replicas (indexes) on the node that was lost. */
  lost: number[];
  /** What the edge keeps serving: the upstreams of replicas on nodes not lost, in order. */
  survivors: string[];
  /** The count to restore: the release's serving replicas, the lost ones included. */
  desired: number;
}

/**
 * For each completed serving release with a replica on `nodeId`: which replicas were lost,
 * which upstreams survive (on no node of `lostNodeIds`, which holds `nodeId`), and the count
 * to restore.
 */
export function planNodeLoss(
  active: readonly ActiveRelease[],
  nodeId: string,
  lostNodeIds: ReadonlySet<string>,
): LossStep[] {
  const out: LossStep[] = [];
  for (const { live } of active) {
    if (live?.status !== 'completed') continue;
    const serving = replicasOf(live).filter((r) => r.health !== 'stopped');
    const lost = serving.filter((r) => r.nodeId === nodeId);
    if (lost.length === 0) continue;
    out.push({
      releaseId: live.id,
      serviceId: live.serviceId,
      environmentId: live.environmentId,
      lost: lost.map((r) => r.index),
      survivors: serving
        .filter((r) => !lostNodeIds.has(r.nodeId) && r.upstream !== null)
        .map((r) => r.upstream!),
      desired: serving.length,
    });
  }
  return out;
}

export interface ReturnPlan {
  /** Containers of replicas that were replaced meanwhile, or of releases no longer serving. */
  remove: { name: string; releaseId: string; reason: string }[];
  /** Containers still wanted: replicas of a serving or in-flight release on this node. */
  keep: string[];
  /** Serving releases with replicas still on this node: their edge set is refreshed. */
  rejoin: string[];
}

const appRoles = new Set(['web', 'worker']);

/**
 * What to do with the app containers found on a node that answers again. A container is
 * kept when it is a replica the serving or in-flight release still lists on this node, or
 * belongs to the release a rollback would switch back to (warm); it is stale, and removed,
 * when its release still serves elsewhere without it (replaced while the node was lost) or
 * when a newer release of its service environment took over. Containers of service
 * environments this org no longer has are left to the service removal.
 */
export function planNodeReturn(
  nodeId: string,
  containers: readonly Pick<ContainerInfo, 'name' | 'labels'>[],
  active: readonly ActiveRelease[],
): ReturnPlan {
  const bySe = new Map<string, ActiveRelease>();
  for (const a of active) {
    const r = a.live ?? a.inFlight;
    if (r) bySe.set(`${r.serviceId}/${r.environmentId}`, a);
  }
  const wanted = new Set<string>();
  const rejoin: string[] = [];
  for (const { live, inFlight } of active) {
    for (const r of [live, inFlight]) {
      if (!r) continue;
      const here = replicasOf(r).filter((x) => x.nodeId === nodeId && x.health !== 'stopped');
      for (const x of here) wanted.add(replicaContainerName(r, x.index));
      if (r === live && r.status === 'completed' && here.length > 0) rejoin.push(r.id);
    }
  }
  const remove: ReturnPlan['remove'] = [];
  const keep: string[] = [];
  for (const c of containers) {
    const l = c.labels;
    const releaseId = l['selfdevop.release'];
    const se = bySe.get(`${l['selfdevop.service']}/${l['selfdevop.environment']}`);
    if (!releaseId || !appRoles.has(l['selfdevop.role'] ?? '') || !se) continue;
    if (wanted.has(c.name)) {
      keep.push(c.name);
      continue;
    }
    if (releaseId === se.live?.id || releaseId === se.inFlight?.id)
      remove.push({ name: c.name, releaseId, reason: 'replaced while the node was lost' });
    else if (releaseId !== se.live?.previousReleaseId)
      remove.push({ name: c.name, releaseId, reason: 'its release no longer serves' });
    else keep.push(c.name);
  }
  return { remove, keep, rejoin };
}
