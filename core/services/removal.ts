/**
 * Deleting a service, an environment or a project: the rows go at once (one transaction,
 * the history cascading in the database, migration 0019), and what they ran on the nodes
 * and the edge goes through the queue `service-removals`, because in the cloud only the
 * worker reaches Docker engines. The use cases (`deleteService`, `deleteEnvironment`,
 * `deleteProject`) share what is here: the in-flight check, the list of what to remove,
 * and the worker's handler.
 */
import { ReleaseAlreadyInFlight } from '../errors.ts';
import type { EventQueue, MessageHandler, OrgRepos } from '../ports.ts';
import { recordAudit } from '../deps.ts';
import { openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { routeId } from '../releases/plan.ts';

/** The queue of removals; one message per deleted service, environment or project. */
export const serviceRemovalsQueue = 'service-removals';

/** One service environment to take off the edge and its nodes. */
export interface RemovalUnit {
  serviceId: string;
  environmentId: string;
  /** Every node a release of it was placed on. */
  nodeIds: string[];
}

export interface RemovalMessage {
  orgId: string;
  /** What was deleted: the worker acts only once its row is gone (the delete committed). */
  target: { type: 'service' | 'environment' | 'project'; id: string; name: string };
  units: RemovalUnit[];
}

/** Deliveries of a removal before it is given up (a node that stays unreachable). */
export const removalMaxAttempts = 8;

export const removalActor = { actorType: 'system', actorId: 'removal-worker' } as const;

/** Bounded page walk: 50 pages of 200 is far beyond one project's size. */
async function all<T>(
  list: (page: {
    limit: number;
    cursor: string | null;
  }) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 50; i++) {
    const page: { items: T[]; nextCursor: string | null } = await list({ limit: 200, cursor });
    out.push(...page.items);
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return out;
}

/**
 * The service environments of `pairs`, each with the nodes its releases used. Throws
 * ReleaseAlreadyInFlight (409, naming the release) when any of them is deploying, before
 * anything is deleted.
 */
export async function removalUnits(
  repos: OrgRepos,
  pairs: { serviceId: string; environmentId: string }[],
): Promise<RemovalUnit[]> {
  const units: RemovalUnit[] = [];
  for (const { serviceId, environmentId } of pairs) {
    const flying = await repos.releases.inFlight(serviceId, environmentId);
    if (flying) throw new ReleaseAlreadyInFlight(flying.id);
    const releases = await all((page) => repos.releases.list(page, { serviceId, environmentId }));
    const nodeIds = [...new Set(releases.map((r) => r.nodeId).filter((n): n is string => !!n))];
    units.push({ serviceId, environmentId, nodeIds: nodeIds.sort() });
  }
  return units;
}

/** Every service and environment of a project, as the pairs `removalUnits` takes. */
export async function projectPairs(
  repos: OrgRepos,
  projectId: string,
  only: { serviceId?: string; environmentId?: string } = {},
): Promise<{ serviceId: string; environmentId: string }[]> {
  const services = only.serviceId
    ? [{ id: only.serviceId }]
    : await all((page) => repos.services.list(page, { projectId }));
  const environments = only.environmentId
    ? [{ id: only.environmentId }]
    : await all((page) => repos.environments.list(page, { projectId }));
  return services.flatMap((s) =>
    environments.map((e) => ({ serviceId: s.id, environmentId: e.id })),
  );
}

/**
 * Sends the removal from inside the deleting transaction: a send that fails rolls the
 * delete back (nothing half-applied), and the worker waits for the delete's commit by
 * finding the row gone (a rolled-back delete leaves it, and the message is dropped).
 */
export async function sendRemoval(queue: EventQueue, message: RemovalMessage): Promise<void> {
  if (message.units.length === 0) return;
  await queue.send(serviceRemovalsQueue, message, {
    idempotencyKey: `remove:${message.target.type}:${message.target.id}`,
    group: message.target.id,
    maxAttempts: removalMaxAttempts + 2,
  });
}

async function targetGone(repos: OrgRepos, target: RemovalMessage['target']): Promise<boolean> {
  if (target.type === 'service') return (await repos.services.get(target.id)) === null;
  if (target.type === 'environment') return (await repos.environments.get(target.id)) === null;
  return (await repos.projects.get(target.id)) === null;
}

/**
 * The worker's side: takes each service environment off the edge (its route and dynamic
 * upstreams, so no request reaches a container about to go), then removes every container
 * of it on each node it used, found by label (the serving, warm and any stray candidate or
 * migration container alike). Idempotent: a missing route or container is already removed.
 */
export function handleServiceRemoval(
  deps: Pick<
    ReleaseDeps,
    'store' | 'runtime' | 'edge' | 'vault' | 'logger' | 'clock' | 'ids' | 'events' | 'source'
  >,
): MessageHandler<RemovalMessage> {
  return async (message) => {
    const { orgId, target, units } = message.payload;
    const gone = await deps.store.withOrg(orgId, (repos) => targetGone(repos, target));
    if (!gone) {
      // The delete has not committed yet, or it rolled back: wait for it, then drop it.
      if (message.attempt < removalMaxAttempts)
        throw new Error(`${target.type} ${target.id} is not deleted yet`);
      deps.logger.warn({ target }, 'removal dropped: its delete never committed');
      return;
    }
    const removed: string[] = [];
    try {
      // The build checkouts this worker kept for the service (in the cloud, a worker's /tmp
      // that another worker may also hold: those go by their cap, least recently used).
      for (const serviceId of new Set(units.map((u) => u.serviceId)))
        await deps.source?.forgetCheckouts?.(serviceId);
      for (const unit of units) {
        await deps.edge.remove(routeId(unit.serviceId, unit.environmentId));
        for (const nodeId of unit.nodeIds) {
          const node = await deps.store.withOrg(orgId, (repos) => repos.nodes.get(nodeId));
          if (!node) continue; // the node was removed, and its containers with it
          const runtime = await openTarget(deps, node);
          const containers = await deps.runtime.list(runtime, {
            'selfdevop.org': orgId,
            'selfdevop.service': unit.serviceId,
            'selfdevop.environment': unit.environmentId,
          });
          for (const c of containers) {
            await deps.runtime.remove(runtime, c.id);
            removed.push(c.name);
          }
        }
      }
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      deps.logger.warn({ target, attempt: message.attempt, reason }, 'removal failed');
      if (message.attempt < removalMaxAttempts) throw e;
      await deps.store.withOrg(orgId, (repos) =>
        recordAudit(deps, repos, removalActor, null, {
          action: `${target.type}.removal_failed`,
          targetType: target.type,
          targetId: target.id,
          data: { name: target.name, reason },
        }),
      );
      return;
    }
    await deps.store.withOrg(orgId, (repos) =>
      recordAudit(deps, repos, removalActor, null, {
        action: `${target.type}.removed`,
        targetType: target.type,
        targetId: target.id,
        data: { name: target.name, containers: removed },
      }),
    );
  };
}
