/**
 * Replicas that found no place, tried again the moment capacity appears: a node registered,
 * undrained, or answering again. A reconcile of desired against running, at the change
 * itself, instead of waiting for the next deploy or scale; nothing loops on a timer.
 */
import type { NodeRecord, Release } from '../models.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { sendReshape } from '../releases/reshape.ts';
import { activeReleases, allNodes, replicasOf } from '../releases/replicas.ts';

/**
 * Serving releases with fewer replicas on nodes that answer than their service asks for,
 * and no release in flight (pure): those whose missing replicas found no place before. A
 * replica on a node that is lost, or no longer registered (removed with `force` while
 * lost), does not answer.
 */
export function shortReleases<S extends { replicas: number }, R extends Release>(
  active: readonly { service: S; live: R | null; inFlight: R | null }[],
  nodes: readonly NodeRecord[],
): { service: S; live: R }[] {
  const answering = new Set(nodes.filter((n) => n.reachability !== 'lost').map((n) => n.id));
  const out: { service: S; live: R }[] = [];
  for (const { service, live, inFlight } of active) {
    if (live?.status !== 'completed' || inFlight) continue;
    const up = replicasOf(live).filter((r) => r.health !== 'stopped' && answering.has(r.nodeId));
    if (up.length < service.replicas) out.push({ service, live });
  }
  return out;
}

/**
 * Queues a reshape to its service's count for each short release (the worker places, starts
 * and health-gates the missing replicas; one that still does not fit says so in the
 * release's log).
 */
export async function replaceUnplaced(
  deps: Pick<ReleaseDeps, 'queue' | 'config' | 'ids'>,
  short: readonly { service: { replicas: number }; live: Release }[],
  reason: string,
): Promise<void> {
  for (const { live, service } of short)
    await sendReshape(deps, live, {
      replicas: service.replicas,
      avoid: [],
      reason: `${reason}: replacing replicas that could not be placed`,
    });
}

/** `replaceUnplaced` for the org's short releases as they are now; answers their ids. */
export async function retryUnplaced(
  deps: Pick<ReleaseDeps, 'store' | 'queue' | 'config' | 'ids'>,
  orgId: string,
  reason: string,
): Promise<string[]> {
  const short = await deps.store.withOrg(orgId, async (repos) =>
    shortReleases(await activeReleases(repos), await allNodes(repos)),
  );
  await replaceUnplaced(deps, short, reason);
  return short.map((s) => s.live.id);
}
