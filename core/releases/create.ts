import * as z from 'zod';
import { InvalidInput, isCoreError, NotFound } from '../errors.ts';
import type { Release, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import { id, imageRef, slugName } from '../schemas.ts';
import { buildRepository, buildTag, gitRefName, isFullSha } from '../builds/git-source.ts';
import { openGitRemote, pinLearnedHostKeys } from '../builds/credentials.ts';
import { requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { appendEvent, deployJobIdOf, failUnstarted } from './context.ts';
import { sendStep, type ReleaseDeps } from './deps.ts';
import { NoNodeAvailable, ServiceStopped } from './errors.ts';
import type { Resources } from './placement.ts';
import {
  allNodes,
  engineCapacities,
  placedUsage,
  placeOrThrow,
  plannedReplicas,
} from './replicas.ts';

/** Body of `POST /api/releases`. */
export const createReleaseInput = z.strictObject({
  serviceId: id,
  environment: slugName.optional(),
  image: imageRef.optional(),
  gitSha: z
    .string()
    .regex(/^[0-9a-f]{7,40}$/, 'must be 7 to 40 lowercase hex characters')
    .nullish(),
  /** Build this branch, tag or full sha of the service's git source (instead of an image). */
  gitRef: gitRefName.optional(),
});
export type CreateReleaseInput = z.input<typeof createReleaseInput>;

/**
 * The nodes of a new release's replicas. Without `capacity` (a release started by a push or
 * a rollback, inside a transaction) only labels and drain decide; the start step checks the
 * engines again. No node at all, or none out of drain → NoNodeAvailable (409).
 */
async function placeRelease(
  repos: OrgRepos,
  service: Service,
  capacity: Record<string, Resources> = {},
): Promise<string[]> {
  const nodes = await allNodes(repos);
  if (!nodes.some((n) => !n.drainMode)) throw new NoNodeAvailable();
  if (service.replicas === 0) throw new ServiceStopped(service.id);
  const used = Object.keys(capacity).length > 0 ? await placedUsage(repos) : {};
  return placeOrThrow(service, service.replicas, nodes, capacity, used);
}

function parseInput(input: unknown): z.infer<typeof createReleaseInput> {
  const parsed = createReleaseInput.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field =
    issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(body)');
  throw new InvalidInput(`${field}: ${issue.message}`, { field });
}

/** What insertRelease needs beyond the service environment. */
export interface NewRelease {
  serviceId: string;
  environmentId: string;
  image: string;
  gitSha: string | null;
  /** The ref to build for a git release; null for an image release. */
  gitRef?: string | null;
  kind: 'deploy' | 'rollback';
  /** Engine sizes read before the transaction, so placement can say what does not fit (409). */
  capacity?: Record<string, Resources>;
}

/**
 * Inserts a queued release (throws ReleaseAlreadyInFlight when one is in flight), its
 * deploy job and its audit row, inside `repos`' transaction. The caller sends the first
 * step after commit, so the worker never looks for a release that is not there yet.
 */
export async function insertRelease(
  deps: Pick<ReleaseDeps, 'ids' | 'clock'>,
  repos: OrgRepos,
  input: NewRelease,
  actor: { actorType: 'user' | 'api_key' | 'system'; actorId: string },
  requestId: string | null,
  data: Record<string, unknown> = {},
): Promise<Release> {
  const service = await repos.services.get(input.serviceId);
  if (!service) throw new NotFound('service', input.serviceId);
  const nodeIds = await placeRelease(repos, service, input.capacity);
  const node = { id: nodeIds[0]! };
  const previous = await repos.releases.latest(input.serviceId, input.environmentId, ['completed']);
  const at = deps.clock.now().toISOString();
  const release: Release = {
    id: deps.ids.newId('rel'),
    orgId: repos.orgId,
    serviceId: input.serviceId,
    environmentId: input.environmentId,
    image: input.image,
    imageDigest: null,
    gitSha: input.gitSha,
    gitRef: input.gitRef ?? null,
    status: 'queued',
    previousReleaseId: previous?.id ?? null,
    nodeId: node.id,
    containerId: null,
    upstream: null,
    replicaSet: { replicas: plannedReplicas(nodeIds) },
    error: null,
    createdAt: at,
    updatedAt: at,
    finishedAt: null,
  };
  await repos.releases.insert(release);
  await repos.deployJobs.insert({
    id: deployJobIdOf(release.id),
    orgId: repos.orgId,
    releaseId: release.id,
    kind: input.kind,
    status: 'queued',
    attempts: 0,
    createdAt: at,
    updatedAt: at,
  });
  await appendEvent(
    deps,
    repos,
    release,
    'release.created',
    {
      image: release.image,
      gitSha: release.gitSha,
      ...(release.gitRef ? { gitRef: release.gitRef } : {}),
      nodeId: node.id,
      nodeIds,
      previousReleaseId: release.previousReleaseId,
      kind: input.kind,
      ...data,
    },
    actor,
    requestId,
  );
  return release;
}

/**
 * Queues a release of a service environment (`POST /api/releases`, 202). Unknown or
 * foreign service/environment → NotFound; another release in flight → ReleaseAlreadyInFlight
 * (409); no usable node → NoNodeAvailable (409).
 */
export async function createRelease(
  deps: ReleaseDeps,
  principal: Principal,
  input: CreateReleaseInput,
  ctx: RequestContext | null = null,
): Promise<Release> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const body = parseInput(input);
  if (body.image !== undefined && body.gitRef !== undefined)
    throw new InvalidInput('gitRef: give an image or a gitRef, not both', { field: 'gitRef' });
  const envName = body.environment ?? 'production';
  const found = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(body.serviceId);
    if (!service) throw new NotFound('service', body.serviceId);
    const environment = await repos.environments.findByName(service.projectId, envName);
    if (!environment) throw new NotFound('environment', envName);
    return { service, environment };
  });
  const { service, environment } = found;
  let what: Pick<NewRelease, 'image' | 'gitSha' | 'gitRef'>;
  if (body.image !== undefined) {
    what = { image: body.image, gitSha: body.gitSha ?? null, gitRef: null };
  } else if (!service.git) {
    throw new InvalidInput(
      body.gitRef !== undefined
        ? 'gitRef: the service has no git source to build; set git.url with PATCH /api/services/{id}'
        : 'image: is required (the service has no git source to build)',
      { field: body.gitRef !== undefined ? 'gitRef' : 'image' },
    );
  } else {
    const ref = body.gitRef ?? body.gitSha ?? service.git.ref;
    const sha = isFullSha(ref) ? ref : await resolveEarly(deps, service, ref);
    what = {
      image: sha ? buildTag(service, sha) : buildRepository(service),
      gitSha: sha,
      gitRef: ref,
    };
  }
  // Engines are asked before the transaction: a placement that cannot fit is a 409 now.
  const nodes = await deps.store.withOrg(p.orgId, (repos) => allNodes(repos));
  const capacity = await engineCapacities(deps, nodes);
  const release = await deps.store.withOrg(p.orgId, (repos) =>
    insertRelease(
      deps,
      repos,
      {
        serviceId: service.id,
        environmentId: environment.id,
        ...what,
        kind: 'deploy',
        capacity,
      },
      p,
      ctx?.requestId ?? null,
    ),
  );
  await queueRelease(deps, release);
  return release;
}

/**
 * The commit `ref` names, asked before the release is queued so an unknown ref, a wrong
 * credential or an unreachable repository is the caller's 400 rather than a failed
 * release. Null where this process cannot read repositories (the cloud's API function
 * ships without git): the build step resolves it then, and a failure fails the release.
 */
async function resolveEarly(
  deps: ReleaseDeps,
  service: Service,
  ref: string,
): Promise<string | null> {
  if (!deps.source) return null;
  const remote = await openGitRemote(deps.vault, service);
  try {
    const sha = await deps.source.resolveRef(remote, ref);
    // First contact with an ssh server: its key becomes the pin every build then requires.
    await pinLearnedHostKeys(deps, service.orgId, service.id, remote);
    return sha;
  } catch (e) {
    if (isCoreError(e) && e.kind === 'unavailable') return null;
    throw e;
  }
}

/**
 * Sends the first step of a release just inserted. One release per service environment may
 * be in flight, so a release whose message never reached the queue would refuse every later
 * deploy of it (409) for good: when the send fails, the release fails at once, saying why,
 * and the caller still gets the queue's error (503), so a retry starts a new release.
 */
export async function queueRelease(deps: ReleaseDeps, release: Release): Promise<void> {
  try {
    await sendStep(deps, release, 'queued');
  } catch (e) {
    const reason = `could not be queued: ${(e as Error).message}`;
    try {
      await deps.store.withOrg(release.orgId, (repos) =>
        failUnstarted(deps, repos, release, reason),
      );
    } catch (failing) {
      // The store is down too: the release stays queued; nothing more can be done from here.
      deps.logger.error(
        { releaseId: release.id, err: (failing as Error).message },
        'a release that could not be queued could not be marked failed either',
      );
    }
    throw e;
  }
}
