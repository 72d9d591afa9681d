import { NotFound } from '../errors.ts';
import { assertCan } from '../roles.ts';
import type { Org } from '../models.ts';
import {
  recordAudit,
  requireSameOrg,
  requireUser,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

export async function createOrg(
  deps: CoreDeps,
  principal: Principal,
  input: { name: string },
  ctx: RequestContext,
): Promise<Pick<Org, 'id' | 'name'>> {
  const userId = requireUser(principal);
  const now = deps.clock.now().toISOString();
  const org = { id: deps.ids.newId('org'), name: input.name, createdAt: now };
  await deps.store.withOrg(org.id, async (repos) => {
    await repos.orgs.insert(org);
    await repos.memberships.insert({ orgId: org.id, userId, role: 'owner', createdAt: now });
    await recordAudit(deps, repos, principal, ctx, {
      action: 'org.created',
      targetType: 'org',
      targetId: org.id,
    });
  });
  return { id: org.id, name: org.name };
}

export async function getOrg(deps: CoreDeps, principal: Principal, orgId: string): Promise<Org> {
  const p = requireSameOrg(principal, orgId);
  assertCan(p.role, 'read');
  const org = await deps.store.withOrg(orgId, (repos) => repos.orgs.get());
  if (!org) throw new NotFound('org', orgId);
  return org;
}
