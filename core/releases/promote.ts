/**
 * Releases made from another release's artifact: a one-click redeploy of what a service
 * environment serves (`POST /api/services/{id}/redeploy`), and a promotion of what one
 * environment serves to another (`POST /api/environments/{id}/promote`). Both deploy the
 * exact image (its digest once resolved, or the built `<service>:<sha>` by its sha), with
 * the target service's current settings, through the ordinary release steps.
 */
import { CoreError, InvalidInput, NotFound } from '../errors.ts';
import type { Environment, Release, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import { requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { insertRelease, queueRelease, type NewRelease } from './create.ts';
import type { ReleaseDeps } from './deps.ts';

/** Nothing is serving in the environment, so there is nothing to deploy again. */
export class NothingDeployed extends CoreError {
  constructor(service: string, environment: string) {
    super(
      'conflict',
      'nothing_deployed',
      `service ${service} has no release serving in ${environment}; deploy one first`,
      { service, environment },
    );
  }
}

/** The release serving a service environment: the newest that moved traffic. */
export function servingRelease(
  repos: OrgRepos,
  serviceId: string,
  environmentId: string,
): Promise<Release | null> {
  return repos.releases.latest(serviceId, environmentId, ['traffic_shifted', 'completed']);
}

/** What deploys `from`'s artifact again (as a rollback's redeploy does). */
export function sameArtifact(from: Release): Pick<NewRelease, 'image' | 'gitSha' | 'gitRef'> {
  // A built release goes back to its `<service>:<sha>` image: reused where the node still
  // has it, else rebuilt from the recorded sha. An image release runs its resolved digest.
  return from.gitRef !== null && from.gitSha !== null
    ? { image: from.image, gitSha: from.gitSha, gitRef: from.gitSha }
    : { image: from.imageDigest ?? from.image, gitSha: from.gitSha, gitRef: null };
}

async function environmentNamed(
  repos: OrgRepos,
  projectId: string,
  name: string,
): Promise<Environment> {
  const env = await repos.environments.findByName(projectId, name);
  if (!env) throw new NotFound('environment', name);
  return env;
}

/**
 * Deploys the serving release's artifact of a service environment again (202 with the new
 * release): a restart onto fresh containers with the service's current settings. 409
 * `nothing_deployed` when nothing serves there, 409 `release_in_flight` while one deploys.
 */
export async function redeployService(
  deps: ReleaseDeps,
  principal: Principal,
  serviceId: string,
  input: { environment?: string | undefined },
  ctx: RequestContext | null,
): Promise<Release> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const release = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    if (!service) throw new NotFound('service', serviceId);
    const env = await environmentNamed(repos, service.projectId, input.environment ?? 'production');
    const current = await servingRelease(repos, service.id, env.id);
    if (!current) throw new NothingDeployed(service.name, env.name);
    return insertRelease(
      deps,
      repos,
      { serviceId, environmentId: env.id, ...sameArtifact(current), kind: 'deploy' },
      p,
      ctx?.requestId ?? null,
      { redeployOf: current.id },
    );
  });
  await queueRelease(deps, release);
  return release;
}

export interface PromoteResult {
  from: { id: string; name: string };
  to: { id: string; name: string };
  releases: Release[];
  /** Services of the project with nothing serving in the source (only when none were named). */
  skipped: { serviceId: string; name: string; reason: string }[];
}

/**
 * Promotes what environment `sourceId` serves to the environment named `to` of the same
 * project (202): for the services named, or every service serving in the source. All the
 * releases are inserted in one transaction, so one in flight in the target (409 naming it)
 * promotes nothing; then each is queued.
 */
export async function promoteEnvironment(
  deps: ReleaseDeps,
  principal: Principal,
  sourceId: string,
  input: { to: string; serviceIds?: string[] | undefined },
  ctx: RequestContext | null,
): Promise<PromoteResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const result = await deps.store.withOrg(p.orgId, async (repos) => {
    const source = await repos.environments.get(sourceId);
    if (!source) throw new NotFound('environment', sourceId);
    if (input.to === source.name)
      throw new InvalidInput('to: name another environment than the one promoted from', {
        field: 'to',
      });
    const target = await environmentNamed(repos, source.projectId, input.to);
    let services: Service[];
    if (input.serviceIds) {
      services = [];
      for (const id of new Set(input.serviceIds)) {
        const s = await repos.services.get(id);
        if (!s || s.projectId !== source.projectId) throw new NotFound('service', id);
        services.push(s);
      }
    } else {
      services = (await repos.services.list({ limit: 200 }, { projectId: source.projectId })).items;
    }
    const releases: Release[] = [];
    const skipped: PromoteResult['skipped'] = [];
    for (const service of services) {
      const current = await servingRelease(repos, service.id, source.id);
      if (!current) {
        if (input.serviceIds) throw new NothingDeployed(service.name, source.name);
        skipped.push({ serviceId: service.id, name: service.name, reason: 'nothing serving' });
        continue;
      }
      releases.push(
        await insertRelease(
          deps,
          repos,
          {
            serviceId: service.id,
            environmentId: target.id,
            ...sameArtifact(current),
            kind: 'deploy',
          },
          p,
          ctx?.requestId ?? null,
          { promotedFrom: { environment: source.name, releaseId: current.id } },
        ),
      );
    }
    if (releases.length === 0)
      throw new CoreError(
        'conflict',
        'nothing_deployed',
        `nothing serves in ${source.name} to promote to ${target.name}; deploy there first`,
      );
    return {
      from: { id: source.id, name: source.name },
      to: { id: target.id, name: target.name },
      releases,
      skipped,
    };
  });
  for (const release of result.releases) await queueRelease(deps, release);
  return result;
}
