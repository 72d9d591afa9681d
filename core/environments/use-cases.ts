import { AlreadyExists, InvalidInput, NotFound } from '../errors.ts';
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
import type { EventQueue, OrgRepos } from '../ports.ts';
import { projectPairs, removalUnits, sendRemoval } from '../services/removal.ts';

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

async function findEnvironment(repos: OrgRepos, id: string): Promise<Environment> {
  const env = await repos.environments.get(id);
  if (!env) throw new NotFound('environment', id);
  return env;
}

/**
 * Renames an environment (`PATCH /api/environments/{id}`): at once for the API and deploys
 * by name; the default hosts are named after it, and the edge adds the new ones within a
 * minute (edge-rebuild) while the old ones keep serving, so no link breaks. `production`
 * keeps its name: push-to-deploy and deploys that name no environment go there.
 */
export async function updateEnvironment(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: { name: string },
  ctx: RequestContext,
): Promise<Environment & { applies: { name: 'now' } }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const env = await findEnvironment(repos, id);
    if (env.name === 'production' && input.name !== 'production')
      throw new InvalidInput(
        'name: production keeps its name; push-to-deploy and deploys that name no environment go there',
        { field: 'name' },
      );
    if (input.name !== env.name) {
      if (await repos.environments.findByName(env.projectId, input.name))
        throw new AlreadyExists('environment', input.name);
      await repos.environments.update(id, { name: input.name });
    }
    await recordAudit(deps, repos, p, ctx, {
      action: 'environment.updated',
      targetType: 'environment',
      targetId: id,
      data: { name: { from: env.name, to: input.name }, projectId: env.projectId },
    });
    return { ...env, name: input.name, applies: { name: 'now' } };
  });
}

/**
 * Deletes an environment (`DELETE /api/environments/{id}?confirm=NAME`, 204) with every
 * service's releases, secrets and domains in it, in one transaction; refused while a
 * release in it is in flight (409 naming it). Routes and containers go through the queue.
 */
export async function deleteEnvironment(
  deps: CoreDeps & { queue: EventQueue },
  principal: Principal,
  id: string,
  confirm: string | undefined,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const env = await findEnvironment(repos, id);
    if (confirm !== env.name)
      throw new InvalidInput(
        `confirm: type the environment's name (${env.name}) to delete it with its releases, secrets and domains`,
        { field: 'confirm' },
      );
    const units = await removalUnits(
      repos,
      await projectPairs(repos, env.projectId, { environmentId: id }),
    );
    await repos.environments.delete(id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'environment.deleted',
      targetType: 'environment',
      targetId: id,
      data: { name: env.name, projectId: env.projectId },
    });
    await sendRemoval(deps.queue, {
      orgId: p.orgId,
      target: { type: 'environment', id, name: env.name },
      units,
    });
  });
}
