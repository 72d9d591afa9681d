import { NotFound } from '../errors.ts';
import type { NodeRecord, Page, PageRequest } from '../models.ts';
import { assertCan } from '../roles.ts';
import type { CreateNodeInput } from '../schemas.ts';
import { recordAudit, requireOrg, type CoreDeps, type Principal, type RequestContext } from './deps.ts';

export async function createNode(
  deps: CoreDeps,
  principal: Principal,
  input: CreateNodeInput,
  ctx: RequestContext,
): Promise<NodeRecord> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-nodes');
  const node: NodeRecord = {
    id: deps.ids.newId('node'),
    orgId: p.orgId,
    name: input.name,
    dockerHost: input.dockerHost,
    address: input.address,
    labels: input.labels ?? {},
    drainMode: false,
    createdAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.nodes.insert(node);
    await recordAudit(deps, repos, p, ctx, {
      action: 'node.created',
      targetType: 'node',
      targetId: node.id,
      data: { name: node.name, dockerHost: node.dockerHost },
    });
  });
  return node;
}

export async function getNode(deps: CoreDeps, principal: Principal, id: string): Promise<NodeRecord> {
  const p = requireOrg(principal);
  const node = await deps.store.withOrg(p.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new NotFound('node', id);
  return node;
}

export async function listNodes(deps: CoreDeps, principal: Principal, page: PageRequest): Promise<Page<NodeRecord>> {
  const p = requireOrg(principal);
  return deps.store.withOrg(p.orgId, (repos) => repos.nodes.list(page));
}
