import type { DockerTarget, MessageHandler } from '../ports.ts';
import { openTarget, type ReleaseDeps, type ReleaseRetireMessage } from './deps.ts';
import { containerName, replicaContainerName } from './plan.ts';
import { awaitEdgeDrained, describeDrain } from './edge-drain.ts';
import { replicasOf, upstreamsOf } from './replicas.ts';

export interface RetireResult {
  retired: boolean;
  /** Why nothing was done: `not_found`, `serving`. */
  skipped: 'not_found' | 'serving' | null;
}

/**
 * Stops (with the service's drain grace) and removes the container of a release that a
 * newer one replaced, once its warm window is over: the handler of `release-retire`.
 * A release that serves again (rolled back to) keeps running. Docker errors are rethrown,
 * so the queue retries.
 */
export async function retireRelease(
  deps: ReleaseDeps,
  message: ReleaseRetireMessage,
): Promise<RetireResult> {
  const loaded = await deps.store.withOrg(message.orgId, async (repos) => {
    const release = await repos.releases.get(message.releaseId);
    if (!release) return null;
    const serving = await repos.releases.latest(release.serviceId, release.environmentId, [
      'completed',
    ]);
    const service = await repos.services.get(release.serviceId);
    const node = release.nodeId ? await repos.nodes.get(release.nodeId) : null;
    return { release, serving, service, node };
  });
  if (!loaded || !loaded.node) return { retired: false, skipped: 'not_found' };
  const { release, serving, service, node } = loaded;
  if (serving?.id === release.id) return { retired: false, skipped: 'serving' };
  const grace = service?.drainSeconds ?? 0;
  // With a short warm window (0 for workers and `warmSeconds: 0`) the switch was a moment
  // ago: the edge may still be answering requests it sent this release before it.
  const drained = await awaitEdgeDrained(deps, upstreamsOf(release), grace);
  const replicas: { name: string; target: DockerTarget }[] = [];
  for (const r of replicasOf(release)) {
    const on =
      r.nodeId === node.id
        ? node
        : await deps.store.withOrg(message.orgId, (repos) => repos.nodes.get(r.nodeId));
    if (!on) continue;
    // Credentials that do not open throw here, and the queue retries: rotating them fixes it.
    replicas.push({
      name: replicaContainerName(release, r.index),
      target: await openTarget(deps, on),
    });
  }
  // Every replica drains and goes on its own: a stop waits up to its grace (longer on a slow
  // node), and one replica's wait must not hold back the others' removal. A replica whose
  // stop failed is not removed (its drain did not happen); the first failure is rethrown,
  // so the queue retries, and stopping or removing what is already gone is a no-op.
  const outcomes = await Promise.allSettled(
    replicas.map(async (r) => {
      await deps.runtime.stop(r.target, r.name, grace);
      await deps.runtime.remove(r.target, r.name);
    }),
  );
  const failure = outcomes.find((o) => o.status === 'rejected');
  if (failure) throw failure.reason;
  const names = replicas.map((r) => r.name);
  const name = names.join(', ') || containerName(release);
  const at = deps.clock.now().toISOString();
  await deps.store.withOrg(message.orgId, async (repos) => {
    await repos.releases.update(release.id, {
      containerId: null,
      ...(release.replicaSet?.replicas
        ? {
            replicaSet: {
              replicas: release.replicaSet.replicas.map((r) => ({
                ...r,
                containerId: null,
                health: 'stopped' as const,
              })),
            },
          }
        : {}),
      updatedAt: at,
    });
    await repos.releaseLogs.append(release.id, [
      {
        at,
        stream: 'system',
        line: `container ${name} stopped (grace ${grace} s) and removed: release ${serving?.id ?? '(none)'} serves now; ${describeDrain(drained, grace)}`,
      },
    ]);
  });
  return { retired: true, skipped: null };
}

/** The `release-retire` queue handler for a worker. */
export function handleReleaseRetire(deps: ReleaseDeps): MessageHandler<ReleaseRetireMessage> {
  return async (m) => {
    await retireRelease(deps, m.payload);
  };
}
