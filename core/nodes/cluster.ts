/**
 * What a Swarm node's cluster is made of (`GET /api/nodes/{id}/cluster`): its members,
 * their roles, availability, state and labels, read live from the registered manager.
 * Swarm is the source of truth for its members; selfdevop keeps no copy that could go stale.
 */
import { CoreError, isCoreError, NotFound } from '../errors.ts';
import type { NodeRecord } from '../models.ts';
import type {
  ClusterMember,
  ContainerRuntime,
  DockerTarget,
  MemberDrain,
  NodeCluster,
  Store,
  SwarmMembers,
} from '../ports.ts';
import { assertCan } from '../roles.ts';
import { recordAudit, requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { awaitEdgeDrained } from '../releases/edge-drain.ts';
import { routeId } from '../releases/plan.ts';
import { activeReleases, replicasOf } from '../releases/replicas.ts';
import { openNodeTarget } from './credentials.ts';
import { hostOf, SwarmTaskFollower } from './swarm-tasks.ts';

/** Only a node of kind swarm has members. */
export class NodeNotSwarm extends CoreError {
  constructor(name: string) {
    super(
      'conflict',
      'node_not_swarm',
      `node ${name} is a Docker Engine, not a Swarm cluster: it has no members (register a manager with kind: swarm)`,
    );
  }
}

export type { MemberDrain, NodeCluster } from '../ports.ts';

export async function getNodeCluster(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
): Promise<NodeCluster> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const node = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  if (node.kind !== 'swarm') throw new NodeNotSwarm(node.name);
  const runtime = deps.runtime;
  if (!runtime.clusterMembers)
    return {
      nodeId: id,
      available: false,
      reason:
        'this process reaches no Docker Engine (the cloud API); the worker deploys to the cluster',
      members: [],
    };
  try {
    const target = await openNodeTarget(deps.vault, node);
    return {
      nodeId: id,
      available: true,
      reason: null,
      members: await runtime.clusterMembers(target),
    };
  } catch (e) {
    // The page must answer when the manager does not: the reason is the answer.
    return {
      nodeId: id,
      available: false,
      reason: `the manager at ${node.dockerHost} did not answer: ${(e as Error).message}`,
      members: [],
    };
  }
}

/** Draining the member would leave the Swarm no member that takes tasks. */
export class LastAvailableMember extends CoreError {
  constructor(node: string, member: string) {
    super(
      'conflict',
      'last_available_member',
      `member ${member} is the last member of swarm ${node} that is active and ready: Swarm would have nowhere to run its tasks (undrain or add another member first)`,
      { member },
    );
  }
}

/** This process reaches no engine, so it cannot change a member (the cloud API). */
export class ClusterUnreachableHere extends CoreError {
  constructor(node: string) {
    super(
      'conflict',
      'cluster_unreachable_here',
      `this process reaches no Docker Engine, so it cannot change the members of swarm ${node} (the cloud API; use docker node update on a manager)`,
    );
  }
}

/** The manager did not answer the read of its members: nothing was changed. */
export class ManagerUnreachable extends CoreError {
  constructor(node: NodeRecord, cause: string) {
    super(
      'conflict',
      'swarm_manager_unreachable',
      `the manager of swarm ${node.name} at ${node.dockerHost} did not answer, so no member was changed: ${cause} (start it, or register another manager of the swarm)`,
      { node: node.id },
    );
  }
}

type SwarmNodeContext = {
  node: NodeRecord;
  target: DockerTarget;
  runtime: ContainerRuntime &
    Required<Pick<ContainerRuntime, 'clusterMembers' | 'setMemberAvailability'>>;
  members: ClusterMember[];
  member: ClusterMember;
};

async function swarmMember(
  deps: ReleaseDeps,
  orgId: string,
  id: string,
  member: string,
): Promise<SwarmNodeContext> {
  const node = await deps.store.withOrg(orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  if (node.kind !== 'swarm') throw new NodeNotSwarm(node.name);
  const runtime = deps.runtime;
  if (!runtime.clusterMembers || !runtime.setMemberAvailability)
    throw new ClusterUnreachableHere(node.name);
  const target = await openTarget(deps, node);
  let members: ClusterMember[];
  try {
    members = await runtime.clusterMembers(target);
  } catch (e) {
    // Nothing changed, and the caller can do nothing here but wait or fix the manager.
    if (isCoreError(e) && e.kind === 'unavailable') throw new ManagerUnreachable(node, e.message);
    throw e;
  }
  const found = members.find((m) => m.id === member || m.hostname === member);
  if (!found) throw new NotFound('cluster_member', member);
  return { node, target, runtime: runtime as SwarmNodeContext['runtime'], members, member: found };
}

/**
 * Swarm's drain of one member, started from selfdevop (`POST
 * /api/nodes/{id}/cluster/members/{member}/drain`). Swarm stops a drained member's task
 * before it starts the replacement elsewhere, and the app stops on that SIGTERM, so its
 * traffic leaves first: the member is paused (no new task lands there, its tasks keep
 * running), a round of the task following takes its tasks out of the edge (not a replica
 * that is its release's only one serving: the edge is never emptied), the edge finishes
 * what it had sent them, and only then the member is drained. Swarm's replacements join
 * the edge as the node checks follow the tasks: each once it answers its health path.
 */
export async function drainClusterMember(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
  memberRef: string,
  ctx: RequestContext | null,
): Promise<MemberDrain> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const { node, target, runtime, members, member } = await swarmMember(
    deps,
    p.orgId,
    id,
    memberRef,
  );
  if (member.availability === 'drain') return { nodeId: id, member, leaving: [], kept: [] };
  const others = members.filter(
    (m) => m.id !== member.id && m.availability === 'active' && m.state === 'ready',
  );
  if (others.length === 0) throw new LastAvailableMember(node.name, member.hostname);
  await runtime.setMemberAvailability(target, member.id, 'pause');
  await new SwarmTaskFollower(deps).follow(node);
  const active = await deps.store.withOrg(p.orgId, activeReleases);
  const leaving: MemberDrain['leaving'] = [];
  const kept: MemberDrain['kept'] = [];
  const draining: string[] = [];
  let grace = 0;
  for (const { service, live } of active) {
    if (live?.status !== 'completed') continue;
    const here = replicasOf(live).filter(
      (r) =>
        r.nodeId === node.id &&
        r.health !== 'stopped' &&
        r.upstream !== null &&
        hostOf(r.upstream) === member.address,
    );
    if (here.length === 0) continue;
    const edge = (await deps.edge.get(routeId(service.id, live.environmentId)))?.upstreams ?? [];
    const out = here.filter((r) => !edge.includes(r.upstream!));
    const stay = here.filter((r) => edge.includes(r.upstream!));
    if (out.length > 0)
      leaving.push({
        releaseId: live.id,
        serviceId: service.id,
        replicas: out.map((r) => r.index),
      });
    if (stay.length > 0)
      kept.push({ releaseId: live.id, serviceId: service.id, replicas: stay.map((r) => r.index) });
    draining.push(...out.map((r) => r.upstream!));
    grace = Math.max(grace, service.drainSeconds);
  }
  // What the edge already sent them is answered before Swarm stops them.
  await awaitEdgeDrained(deps, draining, grace);
  const drained = await runtime.setMemberAvailability(target, member.id, 'drain');
  await deps.store.withOrg(p.orgId, (repos) =>
    recordAudit(deps, repos, p, ctx, {
      action: 'node.member_drained',
      targetType: 'node',
      targetId: node.id,
      data: {
        name: node.name,
        member: member.hostname,
        memberId: member.id,
        leaving: leaving.map((l) => l.releaseId),
        kept: kept.map((k) => k.releaseId),
      },
    }),
  );
  return { nodeId: id, member: drained, leaving, kept };
}

/** The member takes tasks again (`active`); Swarm moves nothing back by itself. */
export async function undrainClusterMember(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
  memberRef: string,
  ctx: RequestContext | null,
): Promise<{ nodeId: string; member: ClusterMember }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const { node, target, runtime, member } = await swarmMember(deps, p.orgId, id, memberRef);
  const active = await runtime.setMemberAvailability(target, member.id, 'active');
  if (member.availability !== 'active')
    await deps.store.withOrg(p.orgId, (repos) =>
      recordAudit(deps, repos, p, ctx, {
        action: 'node.member_undrained',
        targetType: 'node',
        targetId: node.id,
        data: { name: node.name, member: member.hostname, memberId: member.id },
      }),
    );
  return { nodeId: id, member: active };
}

/**
 * The use cases as the SwarmMembers port, for a process that reaches the manager: the
 * self-hosted API, and the cloud's worker function answering the cloud API's calls.
 */
export function swarmMembersHere(deps: ReleaseDeps): SwarmMembers {
  return {
    read: (c) => getNodeCluster(deps, c.principal, c.nodeId),
    drain: (c) => drainClusterMember(deps, c.principal, c.nodeId, c.member, c.ctx),
    undrain: (c) => undrainClusterMember(deps, c.principal, c.nodeId, c.member, c.ctx),
  };
}

/** What the API's entry points need: the store for their own checks, and where calls go. */
export interface ClusterApiDeps {
  store: Store;
  release: ReleaseDeps;
  /** Where the members are read and changed; in this process (`swarmMembersHere`) unless set. */
  swarmMembers?: SwarmMembers;
}

/**
 * The checks that need no manager, made where the request arrived: a caller who may not,
 * an unknown node or an engine is answered at once, never handed to another process.
 */
async function swarmNodeFor(
  store: Store,
  principal: Principal,
  id: string,
  permission: 'read' | 'manage-nodes',
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, permission);
  const node = await store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  if (node.kind !== 'swarm') throw new NodeNotSwarm(node.name);
}

const membersOf = (deps: ClusterApiDeps) => deps.swarmMembers ?? swarmMembersHere(deps.release);

/** `GET /api/nodes/{id}/cluster`, wherever the manager is reached from. */
export async function readNodeCluster(
  deps: ClusterApiDeps,
  principal: Principal,
  id: string,
): Promise<NodeCluster> {
  await swarmNodeFor(deps.store, principal, id, 'read');
  return membersOf(deps).read({ principal, nodeId: id, member: '', ctx: null });
}

/** `POST …/cluster/members/{member}/drain`, wherever the manager is reached from. */
export async function requestMemberDrain(
  deps: ClusterApiDeps,
  principal: Principal,
  id: string,
  member: string,
  ctx: RequestContext | null,
): Promise<MemberDrain> {
  await swarmNodeFor(deps.store, principal, id, 'manage-nodes');
  return membersOf(deps).drain({ principal, nodeId: id, member, ctx });
}

/** `POST …/cluster/members/{member}/undrain`, wherever the manager is reached from. */
export async function requestMemberUndrain(
  deps: ClusterApiDeps,
  principal: Principal,
  id: string,
  member: string,
  ctx: RequestContext | null,
): Promise<{ nodeId: string; member: ClusterMember }> {
  await swarmNodeFor(deps.store, principal, id, 'manage-nodes');
  return membersOf(deps).undrain({ principal, nodeId: id, member, ctx });
}
