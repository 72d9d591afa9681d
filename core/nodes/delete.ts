/**
 * Removing a node (`DELETE /api/nodes/{id}`): selfdevop forgets it. Only a node that serves
 * nothing goes: an empty or fully drained one, or, with `force`, a lost one whose replicas
 * live on elsewhere (the loss replaced them, or will once a node takes them). Deleting a node
 * never stops a container, so nothing that serves may still be placed on it; what selfdevop
 * left stopped there (old releases, the warm previous one, failed attempts) is removed once
 * the node is forgotten, since nothing would ever reach those containers again.
 */
import { CoreError, NotFound } from '../errors.ts';
import type { DataService, NodeRecord, Release, Replica } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import { recordAudit, requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { activeReleases, allNodes, replicasOf } from '../releases/replicas.ts';
import { retryUnplaced } from './unplaced.ts';

/** A replica of a serving or in-flight release that is placed on the node. */
export interface HeldReplica {
  serviceId: string;
  service: string;
  environmentId: string;
  releaseId: string;
  /** Whether the release is in flight (placed, not yet serving) rather than serving. */
  inFlight: boolean;
  replicas: number[];
  /** Replicas of the release on other nodes that answer (what a forced delete leaves serving). */
  elsewhere: number;
}

const describeHeld = (held: readonly HeldReplica[]) =>
  held
    .map(
      (h) =>
        `${h.service} (${h.inFlight ? 'release in flight' : 'serving'} ${h.releaseId}, replica ${h.replicas.join(', ')})`,
    )
    .join('; ');

/** The node still holds replicas: 409 naming each service, release and replica. */
export class NodeHoldsReplicas extends CoreError {
  constructor(node: NodeRecord, held: readonly HeldReplica[], hint: string) {
    super(
      'conflict',
      'node_holds_replicas',
      `node ${node.name} holds replicas of ${describeHeld(held)}: ${hint}`,
      { nodeId: node.id, replicas: held },
    );
  }
}

/** A data service lives on the node (its volume is there): 409 naming them. */
export class NodeHoldsDataServices extends CoreError {
  constructor(node: NodeRecord, dataServices: readonly Pick<DataService, 'id' | 'name'>[]) {
    super(
      'conflict',
      'node_holds_data_services',
      `node ${node.name} holds the data service${dataServices.length > 1 ? 's' : ''} ${dataServices.map((d) => d.name).join(', ')} (their data volumes are on it): delete ${dataServices.length > 1 ? 'them' : 'it'} first`,
      { nodeId: node.id, dataServices: dataServices.map((d) => ({ id: d.id, name: d.name })) },
    );
  }
}

const live = (r: Replica) => r.health !== 'stopped';

/**
 * Replicas of serving and in-flight releases placed on `nodeId` (pure); `answering` are the
 * nodes that are registered and not lost.
 */
export function heldReplicas(
  active: readonly {
    service: { id: string; name: string };
    live: Release | null;
    inFlight: Release | null;
  }[],
  nodeId: string,
  answering: ReadonlySet<string>,
): HeldReplica[] {
  const out: HeldReplica[] = [];
  for (const a of active)
    for (const r of [a.live, a.inFlight]) {
      if (!r) continue;
      const placed = replicasOf(r).filter(live);
      const here = placed.filter((x) => x.nodeId === nodeId);
      if (here.length === 0) continue;
      out.push({
        serviceId: a.service.id,
        service: a.service.name,
        environmentId: r.environmentId,
        releaseId: r.id,
        inFlight: r !== a.live,
        replicas: here.map((x) => x.index),
        elsewhere: placed.filter((x) => x.nodeId !== nodeId && answering.has(x.nodeId)).length,
      });
    }
  return out;
}

async function dataServicesOn(repos: OrgRepos, nodeId: string): Promise<DataService[]> {
  const out: DataService[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const { items, nextCursor }: { items: DataService[]; nextCursor: string | null } =
      await repos.dataServices.list({ limit: 200, cursor });
    out.push(...items.filter((d) => d.nodeId === nodeId));
    if (!nextCursor) break;
    cursor = nextCursor;
  }
  return out;
}

export interface DeleteNodeResult {
  /** Serving releases whose replicas on the lost node were written off (force). */
  writtenOff: { releaseId: string; serviceId: string; replicas: number[] }[];
  /** Releases short of their count afterwards, queued to be restored elsewhere. */
  replacing: string[];
  /** The org's stopped containers removed from the node's engine (see removeLeftovers). */
  containers: LeftoverCleanup;
}

export interface LeftoverCleanup {
  removed: string[];
  /** Running containers of the org, left alone (a delete never stops one). */
  kept: string[];
  /** A container that could not be removed, or the engine not answering, with why. */
  errors: string[];
  /** Why nothing was tried (a Swarm node: its tasks belong to the cluster's services). */
  skipped?: string;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Removes the org's containers that are not running from a deleted node's engine: best
 * effort, since the node is gone whatever the engine says (a lost one usually does not
 * answer at all). Only containers labelled with the org are touched, and never a running
 * one: the checks above left none that serve, and a running one is someone's work.
 */
export async function removeLeftovers(
  deps: Pick<ReleaseDeps, 'runtime' | 'vault'>,
  node: NodeRecord,
): Promise<LeftoverCleanup> {
  const out: LeftoverCleanup = { removed: [], kept: [], errors: [] };
  if (node.kind === 'swarm') return { ...out, skipped: 'a Swarm node: its tasks are the services' };
  try {
    const target = await openTarget(deps, node);
    const containers = await deps.runtime.list(target, { 'selfdevop.org': node.orgId });
    for (const c of containers) {
      const name = c.name.replace(/^\//, '');
      if (c.state === 'running' || c.state === 'restarting' || c.state === 'paused') {
        out.kept.push(name);
        continue;
      }
      try {
        await deps.runtime.remove(target, c.id);
        out.removed.push(name);
      } catch (e) {
        out.errors.push(`${name}: ${messageOf(e)}`);
      }
    }
  } catch (e) {
    // A lost engine fails at once (its socket is gone) or at the runtime's request timeout.
    out.errors.push(`the engine did not answer: ${messageOf(e)}`);
  }
  return out;
}

export async function deleteNode(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
  options: { force?: boolean },
  ctx: RequestContext | null,
): Promise<DeleteNodeResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const force = options.force === true;
  const { node, writtenOff } = await deps.store.withOrg(p.orgId, async (repos) => {
    const node = await repos.nodes.get(id);
    if (!node) throw new NotFound('node', id);
    const onIt = await dataServicesOn(repos, id);
    if (onIt.length > 0) throw new NodeHoldsDataServices(node, onIt);
    const nodes = await allNodes(repos);
    const answering = new Set(
      nodes.filter((n) => n.reachability !== 'lost' && n.id !== id).map((n) => n.id),
    );
    const active = await activeReleases(repos);
    const held = heldReplicas(active, id, answering);
    const writtenOff: DeleteNodeResult['writtenOff'] = [];
    if (held.length > 0) {
      if (node.reachability !== 'lost')
        throw new NodeHoldsReplicas(
          node,
          held,
          force
            ? 'force only removes a lost node (its engine does not answer); drain this one first'
            : node.drainMode
              ? 'its drain is still moving them; delete it once they are stopped'
              : 'drain it first (POST /api/nodes/{id}/drain), then delete it',
        );
      const inFlight = held.filter((h) => h.inFlight);
      if (inFlight.length > 0)
        throw new NodeHoldsReplicas(
          node,
          inFlight,
          'a release in flight is placed on it: wait for it to finish or cancel it first',
        );
      const alone = held.filter((h) => h.elsewhere === 0);
      if (alone.length > 0)
        throw new NodeHoldsReplicas(
          node,
          alone,
          'no replica of theirs serves on another node: register or undrain a node so they are replaced, then delete it',
        );
      if (!force)
        throw new NodeHoldsReplicas(
          node,
          held,
          'the node is lost; delete it with force=true to write them off (they are replaced on the other nodes)',
        );
      // The lost replicas leave the replica sets: the edge already serves the survivors, and
      // a release must not name a node that is gone.
      for (const h of held) {
        const release = active.find((a) => a.live?.id === h.releaseId)!.live!;
        const replicas = replicasOf(release).map((r) =>
          r.nodeId === id && live(r) ? { ...r, health: 'stopped' as const, upstream: null } : r,
        );
        const first = replicas.find((r) => live(r));
        await repos.releases.update(release.id, {
          replicaSet: { replicas },
          ...(release.nodeId === id && first
            ? { nodeId: first.nodeId, containerId: first.containerId, upstream: first.upstream }
            : {}),
          updatedAt: deps.clock.now().toISOString(),
        });
        await repos.releaseLogs.append(release.id, [
          {
            at: deps.clock.now().toISOString(),
            stream: 'system',
            line: `node ${node.name} deleted while lost: replica ${h.replicas.join(', ')} written off`,
          },
        ]);
        writtenOff.push({ releaseId: h.releaseId, serviceId: h.serviceId, replicas: h.replicas });
      }
    }
    if (!(await repos.nodes.delete(id))) throw new NotFound('node', id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'node.deleted',
      targetType: 'node',
      targetId: id,
      data: {
        nodeId: id,
        name: node.name,
        dockerHost: node.dockerHost,
        reachability: node.reachability,
        drainMode: node.drainMode,
        force,
        writtenOff,
      },
    });
    return { node, writtenOff };
  });
  const containers = await removeLeftovers(deps, node);
  if (containers.removed.length > 0 || containers.errors.length > 0)
    await deps.store
      .withOrg(p.orgId, (repos) =>
        recordAudit(deps, repos, p, ctx, {
          action: 'node.containers_removed',
          targetType: 'node',
          targetId: id,
          data: { nodeId: id, name: node.name, reachability: node.reachability, ...containers },
        }),
      )
      .catch((e: unknown) =>
        deps.logger.warn(
          { orgId: p.orgId, nodeId: id, err: messageOf(e) },
          'node clean-up not audited',
        ),
      );
  if (containers.errors.length > 0)
    deps.logger.warn(
      { orgId: p.orgId, nodeId: id, reachability: node.reachability, errors: containers.errors },
      'deleted node: stopped containers left on its engine',
    );
  // Written-off replicas are restored on the nodes that take them (a reshape each). The node
  // is gone either way: a retry that cannot be queued is logged, and the next node change
  // (or a scale) tries again.
  const replacing =
    writtenOff.length === 0
      ? []
      : await retryUnplaced(deps, p.orgId, `node ${node.name} deleted`).catch((e: unknown) => {
          deps.logger.warn(
            { orgId: p.orgId, nodeId: id, err: e instanceof Error ? e.message : String(e) },
            'written-off replicas were not queued for replacement',
          );
          return [];
        });
  return { writtenOff, replacing, containers };
}
