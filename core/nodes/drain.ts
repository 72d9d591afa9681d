/**
 * Drain and undrain a node (`POST /api/nodes/{id}/drain`, `/undrain`). A draining node takes
 * no new placements; the replicas it holds are started elsewhere, health-gated, switched
 * to, then stopped there (a reshape message per serving release, core/releases/reshape.ts).
 */
import { CoreError, NotFound } from '../errors.ts';
import type { NodeRecord } from '../models.ts';
import { assertCan } from '../roles.ts';
import { recordAudit, requireOrg, type Principal, type RequestContext } from '../deps.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { planReshape, sendReshape } from '../releases/reshape.ts';
import {
  activeReleases,
  allNodes,
  engineCapacities,
  placedUsage,
  replicasOf,
} from '../releases/replicas.ts';
import { eligibleNodes } from '../releases/placement.ts';
import { nodeView, type NodeView } from './use-cases.ts';
import { replaceUnplaced, shortReleases } from './unplaced.ts';

export { shortReleases } from './unplaced.ts';

/** Draining would leave no node to place replicas on. */
export class LastEligibleNode extends CoreError {
  constructor(node: Pick<NodeRecord, 'id' | 'name'>) {
    super(
      'conflict',
      'last_eligible_node',
      `node ${node.name} is the last node that takes replicas: register or undrain another (or wait for a lost one to answer) before draining it`,
      { nodeId: node.id },
    );
  }
}

export interface DrainResult {
  node: NodeView;
  /** Serving releases with replicas on the node, now moving off it. */
  moving: { releaseId: string; serviceId: string; replicas: number }[];
}

export async function drainNode(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext | null,
): Promise<DrainResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const found = await deps.store.withOrg(p.orgId, async (repos) => {
    const nodes = await allNodes(repos);
    const node = nodes.find((n) => n.id === id);
    if (!node) throw new NotFound('node', id);
    return { node, nodes, active: await activeReleases(repos), used: await placedUsage(repos) };
  });
  const { node, nodes, active, used } = found;
  const others = nodes.filter((n) => n.id !== node.id);
  if (eligibleNodes(others, {}).length === 0) throw new LastEligibleNode(node);
  const capacity = await engineCapacities(deps, others);
  const moving: DrainResult['moving'] = [];
  const plans = [];
  // A lost node's replicas are being replaced by the node checks already (core/nodes/checks.ts):
  // draining it only keeps it from taking replicas once it answers again.
  for (const { service, live } of node.reachability === 'lost' ? [] : active) {
    if (live?.status !== 'completed') continue;
    const serving = replicasOf(live).filter((r) => r.health !== 'stopped');
    if (!serving.some((r) => r.nodeId === node.id)) continue;
    // Each move must fit before any starts: a 409 names the service and what is missing.
    planReshape(service, live, serving.length, [node.id], nodes, capacity, used);
    plans.push({ live, count: serving.length });
    moving.push({ releaseId: live.id, serviceId: service.id, replicas: serving.length });
  }
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.nodes.setDrainMode(node.id, true);
    await recordAudit(deps, repos, p, ctx, {
      action: 'node.drained',
      targetType: 'node',
      targetId: node.id,
      data: { name: node.name, moving: moving.map((m) => m.releaseId) },
    });
  });
  for (const { live, count } of plans)
    await sendReshape(deps, live, {
      replicas: count,
      avoid: [node.id],
      reason: `drain ${node.name}`,
    });
  return { node: nodeView({ ...node, drainMode: true }), moving };
}

export async function undrainNode(
  deps: ReleaseDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext | null,
): Promise<NodeView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const { node, short } = await deps.store.withOrg(p.orgId, async (repos) => {
    const node = await repos.nodes.get(id);
    if (!node) throw new NotFound('node', id);
    await repos.nodes.setDrainMode(id, false);
    const short = shortReleases(await activeReleases(repos), await allNodes(repos));
    await recordAudit(deps, repos, p, ctx, {
      action: 'node.undrained',
      targetType: 'node',
      targetId: id,
      data: { name: node.name, replacing: short.map((s) => s.live.id) },
    });
    return { node, short };
  });
  // Capacity appeared: releases that could not be placed (a node lost with nowhere to go)
  // get their missing replicas now; a reshape that still does not fit says so in its log.
  await replaceUnplaced(deps, short, `undrain ${node.name}`);
  return nodeView({ ...node, drainMode: false });
}
