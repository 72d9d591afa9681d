import { NotFound } from '../errors.ts';
import type { Environment, Page, PageRequest, Project } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
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
