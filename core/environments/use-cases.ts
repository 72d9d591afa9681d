import { AlreadyExists, NotFound } from '../errors.ts';
import type { Environment, Page, PageRequest } from '../models.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { findProject } from '../projects/use-cases.ts';

export async function createEnvironment(
  deps: CoreDeps,
  principal: Principal,
  input: { projectId: string; name: string },
  ctx: RequestContext,
): Promise<Environment> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  return deps.store.withOrg(p.orgId, async (repos) => {
    await findProject(repos, input.projectId);
    if (await repos.environments.findByName(input.projectId, input.name)) {
      throw new AlreadyExists('environment', input.name);
    }
    const env = {
      id: deps.ids.newId('env'),
      orgId: p.orgId,
      projectId: input.projectId,
      name: input.name,
      createdAt: deps.clock.now().toISOString(),
    };
    await repos.environments.insert(env);
    await recordAudit(deps, repos, p, ctx, {
      action: 'environment.created',
      targetType: 'environment',
      targetId: env.id,
      data: { name: env.name, projectId: env.projectId },
    });
    return env;
  });
}

export async function getEnvironment(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<Environment> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const env = await deps.store.withOrg(p.orgId, (repos) => repos.environments.get(id));
  if (!env) throw new NotFound('environment', id);
  return env;
}

export async function listEnvironments(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
  filter: { projectId?: string },
): Promise<Page<Environment>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, (repos) => repos.environments.list(page, filter));
}
