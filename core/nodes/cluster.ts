/**
 * What a Swarm node's cluster is made of (`GET /api/nodes/{id}/cluster`): its members,
 * their roles, availability, state and labels, read live from the registered manager.
 * Swarm is the source of truth for its members; selfdevop keeps no copy that could go stale.
 */
import { CoreError, NotFound } from '../errors.ts';
import type { ClusterMember, ContainerRuntime, KeyVault } from '../ports.ts';
import { assertCan } from '../roles.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';
import { openNodeTarget } from './credentials.ts';

export interface NodeCluster {
  nodeId: string;
  /** False when the manager did not answer; `reason` then says why. */
  available: boolean;
  reason: string | null;
  members: ClusterMember[];
}

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

export async function getNodeCluster(
  deps: CoreDeps & { release: { runtime: ContainerRuntime; vault: KeyVault } },
  principal: Principal,
  id: string,
): Promise<NodeCluster> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const node = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  if (node.kind !== 'swarm') throw new NodeNotSwarm(node.name);
  const runtime = deps.release.runtime;
  if (!runtime.clusterMembers)
    return {
      nodeId: id,
      available: false,
      reason:
        'this process reaches no Docker Engine (the cloud API); the worker deploys to the cluster',
      members: [],
    };
  try {
    const target = await openNodeTarget(deps.release.vault, node);
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
