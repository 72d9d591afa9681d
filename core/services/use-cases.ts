import { AlreadyExists, InvalidInput, NotFound, ReleaseAlreadyInFlight } from '../errors.ts';
import { defaultHosts } from '../releases/plan.ts';
import type {
  GitSource,
  HealthPolicy,
  Page,
  PageRequest,
  Service,
  WorkerHealth,
} from '../models.ts';
import { assertCan } from '../roles.ts';
import { isPrivateUrl, type CreateServiceInput, type UpdateServiceInput } from '../schemas.ts';
import {
  buildSecretContext,
  buildRepository,
  defaultDockerfile,
  defaultGitRef,
  gitCredentialContext,
  gitHost,
  isSshUrl,
  publicService,
  sshAuthority,
  type GitSourceInput,
  type PublicService,
} from '../builds/git-source.ts';
import { BuildsUnavailable } from '../builds/errors.ts';
import { hostKeys } from '../builds/host-keys.ts';
import type { EventQueue, GitPoll, OrgRepos } from '../ports.ts';
import { projectPairs, removalUnits, sendRemoval } from './removal.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { findProject } from '../projects/use-cases.ts';

/**
 * Sane defaults for a small web app: healthy within a minute, two clean probes 100 ms
 * apart. Every extra probe is time the old release keeps serving for nothing.
 */
export const defaultHealthPolicy: HealthPolicy = {
  intervalMs: 100,
  timeoutMs: 2_000,
  successes: 2,
  deadlineMs: 60_000,
};
/**
 * Caddy restarts the close timer of every proxied WebSocket on any config change, even of
 * another route, and cuts it `drainSeconds` later; so the drain window is long, and the
 * previous release stays warm longer than that so its streams end before it stops.
 */
export const defaultDrainSeconds = 300;
export const defaultWarmSeconds = 600;

export interface ServiceView extends PublicService {
  /** The default host per environment; none for a worker (it has no route). */
  hosts: { environment: string; host: string }[];
  /**
   * What the polls of the followed branch saw (GET of one service; null before the first
   * poll or without a git source).
   */
  gitPoll?: Omit<GitPoll, 'serviceId'> | null;
}

/** A worker's gate unless it says otherwise: up for 10 s without a restart. */
export const defaultWorkerHealth: WorkerHealth = { stableSeconds: 10, command: null };

async function withHosts(
  deps: CoreDeps,
  service: Service,
  environments: { name: string }[],
): Promise<ServiceView> {
  return {
    ...publicService(service),
    hosts: (service.kind === 'worker' ? [] : environments).map((e) => ({
      environment: e.name,
      host: defaultHosts({ service, environment: e, edgeDomain: deps.config.edgeDomain })[0]!,
    })),
  };
}

export async function createService(
  deps: CoreDeps,
  principal: Principal,
  input: CreateServiceInput,
  ctx: RequestContext,
): Promise<ServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const id = deps.ids.newId('svc');
  const git = input.git ? gitSourceOf(deps, input.git, null) : null;
  const sealedToken = input.git?.token
    ? await sealToken(deps, p.orgId, id, input.git.url, input.git.token)
    : null;
  const sealedBuildSecrets = await sealBuildSecrets(deps, p.orgId, id, {}, input.git?.buildSecrets);
  return deps.store.withOrg(p.orgId, async (repos) => {
    await findProject(repos, input.projectId);
    const service: Service = {
      id,
      orgId: p.orgId,
      projectId: input.projectId,
      name: input.name,
      // A git-only service's image is where its builds are tagged.
      kind: input.kind ?? 'web',
      image: input.image ?? buildRepository({ id, name: input.name }),
      // The schema insists on both for a web service and refuses them for a worker.
      containerPort: input.containerPort ?? null,
      healthcheckPath: input.healthcheckPath ?? '/',
      migrateCommand: input.migrateCommand ?? null,
      strategy: input.strategy ?? 'blue_green',
      replicas: input.replicas ?? 1,
      env: input.env ?? {},
      memoryMb: input.memoryMb ?? null,
      cpus: input.cpus ?? null,
      health: { ...defaultHealthPolicy, ...input.health },
      workerHealth:
        input.kind === 'worker'
          ? {
              stableSeconds: input.workerHealth?.stableSeconds ?? defaultWorkerHealth.stableSeconds,
              command: input.workerHealth?.command ?? null,
            }
          : null,
      warmSeconds: input.warmSeconds ?? defaultWarmSeconds,
      drainSeconds: input.drainSeconds ?? defaultDrainSeconds,
      sticky: input.sticky ?? false,
      placement: { labels: input.placement?.labels ?? {} },
      loadBalancing: input.loadBalancing ?? 'round_robin',
      maxSurge: input.maxSurge ?? 1,
      git,
      gitCredentialKind: sealedToken ? 'token' : null,
      gitPublicKey: null,
      sealedGitCredential: sealedToken,
      sealedBuildSecrets,
      createdAt: deps.clock.now().toISOString(),
    };
    await repos.services.insert(service);
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.created',
      targetType: 'service',
      targetId: service.id,
      // Plain env values may be configuration a person considers sensitive: keep names only.
      data: {
        name: service.name,
        image: service.image,
        envNames: Object.keys(service.env),
        ...(git ? { git: auditedGit(git, service.gitCredentialKind) } : {}),
      },
    });
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    return withHosts(deps, service, envs.items);
  });
}

/** The stored source of a validated input; the network rules the schema cannot know are checked here. */
/**
 * The sealed build secrets after `changes` (id → value seals it, null removes it); the ids
 * not named keep their sealed values.
 */
async function sealBuildSecrets(
  deps: CoreDeps,
  orgId: string,
  serviceId: string,
  current: Record<string, string>,
  changes: Record<string, string | null> | undefined,
): Promise<Record<string, string>> {
  const next = { ...current };
  for (const [id, value] of Object.entries(changes ?? {})) {
    if (value === null) delete next[id];
    else next[id] = await deps.vault.seal(value, buildSecretContext(orgId, serviceId, id));
  }
  if (Object.keys(next).length > 20)
    throw new InvalidInput('git.buildSecrets: at most 20 build secrets per service', {
      field: 'git.buildSecrets',
    });
  return next;
}

function gitSourceOf(deps: CoreDeps, input: GitSourceInput, previous: GitSource | null): GitSource {
  const host = gitHost(input.url);
  const testLoopback =
    deps.config.allowLoopbackGitHosts === true &&
    host !== null &&
    /^127\.\d+\.\d+\.\d+$/.test(host);
  if (
    !deps.config.allowPrivateGitHosts &&
    !testLoopback &&
    host &&
    isPrivateUrl(`http://${host}/`)
  ) {
    // A SaaS's builders must not be pointed at its own network (SSRF).
    throw new InvalidInput(
      'git.url: must be a public repository host; private and loopback addresses are refused here',
      { field: 'git.url' },
    );
  }
  const ssh = sshAuthority(input.url);
  if (input.knownHosts && !ssh)
    throw new InvalidInput(
      'git.knownHosts: only an ssh repository has host keys (this URL is not ssh:// nor user@host:path)',
      { field: 'git.knownHosts' },
    );
  // A pin belongs to the server it was taken from: a source moved elsewhere forgets it.
  const samePlace = previous !== null && ssh !== null && sshAuthority(previous.url) === ssh;
  return {
    url: input.url,
    ref: input.ref ?? previous?.ref ?? defaultGitRef,
    subdir: input.subdir ?? previous?.subdir ?? '',
    dockerfile: input.dockerfile ?? previous?.dockerfile ?? defaultDockerfile,
    buildArgs: input.buildArgs ?? previous?.buildArgs ?? {},
    knownHosts:
      input.knownHosts !== undefined
        ? input.knownHosts
        : samePlace
          ? (previous.knownHosts ?? null)
          : null,
    pollIntervalSeconds:
      input.pollIntervalSeconds !== undefined
        ? input.pollIntervalSeconds
        : (previous?.pollIntervalSeconds ?? null),
  };
}

/** Build args are plain configuration, but like env values only their names are audited. */
const auditedGit = (git: GitSource, credential: Service['gitCredentialKind']) => ({
  url: git.url,
  ref: git.ref,
  subdir: git.subdir,
  dockerfile: git.dockerfile,
  buildArgNames: Object.keys(git.buildArgs),
  credential,
  hostKeys: hostKeys(git.knownHosts).map((k) => k.fingerprint),
  pollIntervalSeconds: git.pollIntervalSeconds ?? null,
});

async function sealToken(
  deps: CoreDeps,
  orgId: string,
  serviceId: string,
  url: string,
  token: string,
): Promise<string> {
  if (isSshUrl(url))
    throw new InvalidInput(
      'git.token: an ssh repository takes a deploy key (POST /api/services/{id}/deploy-key), not a token',
      { field: 'git.token' },
    );
  // A token over plain HTTP would cross the network readable; loopback is the one exception.
  if (url.startsWith('http://') && !/^(127\.|localhost$|::1$)/.test(gitHost(url) ?? ''))
    throw new InvalidInput('git.token: a token is sent only over https://', {
      field: 'git.token',
    });
  return deps.vault.seal(JSON.stringify({ token }), gitCredentialContext(orgId, serviceId));
}

async function findService(repos: OrgRepos, id: string): Promise<Service> {
  const service = await repos.services.get(id);
  if (!service) throw new NotFound('service', id);
  return service;
}

/** When a changed field takes effect: at once, or with the service's next release. */
export type Applies = 'now' | 'next_release';

/**
 * What each field changes. The name is the service's at once (the API, CLI and dashboard
 * find it by it); everything a container or the edge route is made from is read by the
 * release steps, so it reaches traffic with the next release, and the serving release is
 * untouched until then.
 */
export const serviceFieldApplies: Record<keyof UpdateServiceInput, Applies> = {
  name: 'now',
  image: 'next_release',
  containerPort: 'next_release',
  healthcheckPath: 'next_release',
  migrateCommand: 'next_release',
  env: 'next_release',
  memoryMb: 'next_release',
  cpus: 'next_release',
  health: 'next_release',
  strategy: 'next_release',
  warmSeconds: 'next_release',
  drainSeconds: 'next_release',
  sticky: 'next_release',
  git: 'next_release',
  workerHealth: 'next_release',
};

const plainFields = [
  'name',
  'image',
  'containerPort',
  'healthcheckPath',
  'migrateCommand',
  'env',
  'memoryMb',
  'cpus',
  'strategy',
  'warmSeconds',
  'drainSeconds',
  'sticky',
] as const;

/**
 * Changes a service (`PATCH /api/services/{id}`): the fields given replace its own (`health`
 * merges over the current policy); `git` replaces the source (fields it leaves out keep
 * their values), `git: null` removes it with its credential. The answer says per field
 * whether it applies now or with the next release. A change a release reads is refused
 * (409 naming it) while one is in flight, so no release runs half on the old settings and
 * half on the new.
 */
export async function updateService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: UpdateServiceInput,
  ctx: RequestContext,
): Promise<ServiceView & { applies: Partial<Record<keyof UpdateServiceInput, Applies>> }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const current = await deps.store.withOrg(p.orgId, (repos) => findService(repos, id));
  if (current.kind === 'worker') {
    for (const field of ['containerPort', 'healthcheckPath'] as const)
      if (input[field] !== undefined)
        throw new InvalidInput(`${field}: a worker has no port and no HTTP health check`, {
          field,
        });
  } else if (input.workerHealth !== undefined) {
    throw new InvalidInput('workerHealth: is for workers only', { field: 'workerHealth' });
  }
  const patch: Partial<Service> = {};
  if (input.workerHealth !== undefined && current.workerHealth) {
    patch.workerHealth = {
      stableSeconds: input.workerHealth.stableSeconds ?? current.workerHealth.stableSeconds,
      command:
        input.workerHealth.command === undefined
          ? current.workerHealth.command
          : input.workerHealth.command,
    };
  }
  for (const key of plainFields) {
    if (input[key] !== undefined) (patch as Record<string, unknown>)[key] = input[key];
  }
  if (input.health) patch.health = { ...current.health, ...input.health };
  if (input.git === null) {
    Object.assign(patch, {
      git: null,
      gitCredentialKind: null,
      gitPublicKey: null,
      sealedGitCredential: null,
      sealedBuildSecrets: {},
    });
  } else if (input.git) {
    patch.git = gitSourceOf(deps, input.git, current.git);
    if (input.git.buildSecrets)
      patch.sealedBuildSecrets = await sealBuildSecrets(
        deps,
        p.orgId,
        id,
        current.sealedBuildSecrets ?? {},
        input.git.buildSecrets,
      );
    if (input.git.token === null) {
      Object.assign(patch, {
        gitCredentialKind: null,
        gitPublicKey: null,
        sealedGitCredential: null,
      });
    } else if (input.git.token) {
      patch.sealedGitCredential = await sealToken(
        deps,
        p.orgId,
        id,
        input.git.url,
        input.git.token,
      );
      patch.gitCredentialKind = 'token';
      patch.gitPublicKey = null;
    } else if (current.gitCredentialKind === 'deploy_key' && !isSshUrl(input.git.url)) {
      throw new InvalidInput(
        'git.url: the service holds a deploy key, which only an ssh repository takes; give git.token, or token: null to drop the key',
        { field: 'git.url' },
      );
    }
  }
  const changed = Object.keys(input) as (keyof UpdateServiceInput)[];
  const applies = Object.fromEntries(changed.map((k) => [k, serviceFieldApplies[k]]));
  return deps.store.withOrg(p.orgId, async (repos) => {
    if (changed.some((k) => serviceFieldApplies[k] === 'next_release')) {
      const envs = await repos.environments.list({ limit: 200 }, { projectId: current.projectId });
      for (const env of envs.items) {
        const flying = await repos.releases.inFlight(id, env.id);
        if (flying) throw new ReleaseAlreadyInFlight(flying.id);
      }
    }
    if (input.name !== undefined && input.name !== current.name) {
      const taken = await repos.services.list({ limit: 200 }, { projectId: current.projectId });
      if (taken.items.some((s) => s.name === input.name))
        throw new AlreadyExists('service', input.name);
    }
    await repos.services.update(id, patch);
    const service = { ...current, ...patch };
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.updated',
      targetType: 'service',
      targetId: id,
      data: {
        fields: changed,
        ...(input.name !== undefined ? { name: { from: current.name, to: input.name } } : {}),
        ...(input.env ? { envNames: Object.keys(input.env) } : {}),
        ...(patch.git ? { git: auditedGit(patch.git, service.gitCredentialKind) } : {}),
        ...(input.git === null ? { git: null } : {}),
        // Ids only: values are write-only.
        ...(input.git?.buildSecrets ? { buildSecretIds: Object.keys(input.git.buildSecrets) } : {}),
      },
    });
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    return { ...(await withHosts(deps, service, envs.items)), applies };
  });
}

/**
 * Deletes a service (`DELETE /api/services/{id}?confirm=NAME`, 204): the name typed again,
 * refused (409 naming it) while a release of it is in flight. Its releases, secrets,
 * domains, push hook and data-service links go with it in one transaction; its routes and
 * containers go through the `service-removals` queue, sent from that transaction.
 */
export async function deleteService(
  deps: CoreDeps & { queue: EventQueue },
  principal: Principal,
  id: string,
  confirm: string | undefined,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await findService(repos, id);
    if (confirm !== service.name)
      throw new InvalidInput(
        `confirm: type the service's name (${service.name}) to delete it with its releases, secrets and domains`,
        { field: 'confirm' },
      );
    const units = await removalUnits(
      repos,
      await projectPairs(repos, service.projectId, { serviceId: id }),
    );
    await repos.services.delete(id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.deleted',
      targetType: 'service',
      targetId: id,
      data: { name: service.name, projectId: service.projectId },
    });
    await sendRemoval(deps.queue, {
      orgId: p.orgId,
      target: { type: 'service', id, name: service.name },
      units,
    });
  });
}

/**
 * Makes a new ed25519 deploy key for the service's repository (`POST
 * /api/services/{id}/deploy-key`) and answers its public half, to be added to the
 * repository as a read-only deploy key. The private half is sealed and never shown; a
 * new key replaces the old one (and any token).
 */
export async function createDeployKey(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<{ serviceId: string; publicKey: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  if (!deps.source) throw new BuildsUnavailable('this process cannot make deploy keys');
  const service = await deps.store.withOrg(p.orgId, (repos) => findService(repos, id));
  if (!service.git)
    throw new InvalidInput('git: the service has no git source; set git.url first', {
      field: 'git',
    });
  if (!isSshUrl(service.git.url))
    throw new InvalidInput(
      'git.url: a deploy key is used over SSH; the repository URL must be ssh:// or user@host:path',
      { field: 'git.url' },
    );
  const key = await deps.source.generateDeployKey(`selfdevop-${service.name}`);
  const sealed = await deps.vault.seal(
    JSON.stringify({ privateKey: key.privateKey }),
    gitCredentialContext(p.orgId, id),
  );
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.services.update(id, {
      gitCredentialKind: 'deploy_key',
      gitPublicKey: key.publicKey,
      sealedGitCredential: sealed,
    });
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.deploy_key_created',
      targetType: 'service',
      targetId: id,
      data: { publicKey: key.publicKey },
    });
  });
  return { serviceId: id, publicKey: key.publicKey };
}

export async function getService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<ServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(id);
    if (!service) throw new NotFound('service', id);
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    const poll = service.git ? await repos.gitPolls.get(id) : null;
    let gitPoll: ServiceView['gitPoll'] = null;
    if (poll) {
      const { serviceId: _serviceId, ...seen } = poll;
      gitPoll = seen;
    }
    return { ...(await withHosts(deps, service, envs.items)), gitPoll };
  });
}

export async function listServices(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
  filter: { projectId?: string },
): Promise<Page<PublicService>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const listed = await deps.store.withOrg(p.orgId, (repos) => repos.services.list(page, filter));
  return { items: listed.items.map(publicService), nextCursor: listed.nextCursor };
}
