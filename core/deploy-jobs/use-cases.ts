import { NotFound } from '../errors.ts';
import { assertCan } from '../roles.ts';
import type { DeployJob, Page, PageRequest } from '../models.ts';
import { deployJobIdOf } from '../releases/context.ts';
import { createRelease, type CreateReleaseInput } from '../releases/create.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { requireOrg, type Principal, type RequestContext } from '../deps.ts';

/** `POST /api/deploy-jobs`: the same work as a release, seen as the queue sees it. */
export async function createDeployJob(
  deps: ReleaseDeps,
  principal: Principal,
  input: CreateReleaseInput,
  ctx: RequestContext,
): Promise<DeployJob> {
  const release = await createRelease(deps, principal, input, ctx);
  return getDeployJob(deps, principal, deployJobIdOf(release.id));
}

export async function getDeployJob(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  id: string,
): Promise<DeployJob> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const job = await deps.store.withOrg(p.orgId, (repos) => repos.deployJobs.get(id));
  if (!job) throw new NotFound('deploy_job', id);
  return job;
}

export async function listDeployJobs(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  page: PageRequest,
): Promise<Page<DeployJob>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, (repos) => repos.deployJobs.list(page));
}
