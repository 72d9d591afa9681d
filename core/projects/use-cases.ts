import { AlreadyExists, CoreError, InvalidInput, NotFound } from '../errors.ts';
import type { Environment, Page, PageRequest, Project } from '../models.ts';
import type { EventQueue, OrgRepos } from '../ports.ts';
import { projectPairs, removalUnits, sendRemoval } from '../services/removal.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

export async function createProject(
  deps: CoreDeps,
  principal: Principal,
  input: { name: string },
  ctx: RequestContext,
): Promise<Project & { environments: Pick<Environment, 'id' | 'name'>[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const now = deps.clock.now().toISOString();
  const project = { id: deps.ids.newId('prj'), orgId: p.orgId, name: input.name, createdAt: now };
  // Every project starts with a production environment: that is where a first deploy goes.
  const production = {
    id: deps.ids.newId('env'),
    orgId: p.orgId,
    projectId: project.id,
    name: 'production',
    createdAt: now,
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.projects.insert(project);
    await repos.environments.insert(production);
    await recordAudit(deps, repos, p, ctx, {
      action: 'project.created',
      targetType: 'project',
      targetId: project.id,
      data: { name: project.name },
    });
  });
  return { ...project, environments: [{ id: production.id, name: production.name }] };
}

export async function findProject(repos: OrgRepos, projectId: string): Promise<Project> {
  const project = await repos.projects.get(projectId);
  if (!project) throw new NotFound('project', projectId);
  return project;
}

export async function getProject(
  deps: CoreDeps,
  principal: Principal,
  projectId: string,
): Promise<Project & { environments: Environment[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const project = await findProject(repos, projectId);
    const envs = await repos.environments.list({ limit: 200 }, { projectId });
    return { ...project, environments: envs.items };
  });
}

export async function listProjects(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
): Promise<Page<Project>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, (repos) => repos.projects.list(page));
}

/** Renames a project (`PATCH /api/projects/{id}`); it applies at once, nothing runs under it. */
export async function updateProject(
  deps: CoreDeps,
  principal: Principal,
  projectId: string,
  input: { name: string },
  ctx: RequestContext,
): Promise<Project & { applies: { name: 'now' } }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const project = await findProject(repos, projectId);
    if (input.name !== project.name) {
      // Bounded: the first 200 are checked here; the database's unique index has the rest.
      const others = await repos.projects.list({ limit: 200 });
      if (others.items.some((o) => o.name === input.name))
        throw new AlreadyExists('project', input.name);
      await repos.projects.update(projectId, { name: input.name });
    }
    await recordAudit(deps, repos, p, ctx, {
      action: 'project.updated',
      targetType: 'project',
      targetId: projectId,
      data: { name: { from: project.name, to: input.name } },
    });
    return { ...project, name: input.name, applies: { name: 'now' } };
  });
}

/** A project that still holds data services: they hold data, so they are deleted on their own. */
export class ProjectHasDataServices extends CoreError {
  constructor(names: string[]) {
    super(
      'conflict',
      'project_has_data_services',
      `delete the project's data services first (${names.join(', ')}): their volumes hold data`,
      { dataServices: names },
    );
  }
}

/**
 * Deletes a project (`DELETE /api/projects/{id}?confirm=NAME`, 204) with its environments and
 * services, in one transaction: refused while any release of it is in flight (409 naming
 * it) or while it holds data services. Routes and containers go through the queue.
 */
export async function deleteProject(
  deps: CoreDeps & { queue: EventQueue },
  principal: Principal,
  projectId: string,
  confirm: string | undefined,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const project = await findProject(repos, projectId);
    if (confirm !== project.name)
      throw new InvalidInput(
        `confirm: type the project's name (${project.name}) to delete it with every environment and service in it`,
        { field: 'confirm' },
      );
    const data = await repos.dataServices.list({ limit: 200 }, { projectId });
    if (data.items.length > 0) throw new ProjectHasDataServices(data.items.map((d) => d.name));
    const units = await removalUnits(repos, await projectPairs(repos, projectId));
    await repos.projects.delete(projectId);
    await recordAudit(deps, repos, p, ctx, {
      action: 'project.deleted',
      targetType: 'project',
      targetId: projectId,
      data: { name: project.name },
    });
    await sendRemoval(deps.queue, {
      orgId: p.orgId,
      target: { type: 'project', id: projectId, name: project.name },
      units,
    });
  });
}
