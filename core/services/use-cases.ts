import { InvalidInput, NotFound } from '../errors.ts';
import { defaultHosts } from '../releases/plan.ts';
import type { GitSource, HealthPolicy, Page, PageRequest, Service } from '../models.ts';
import { assertCan } from '../roles.ts';
import { isPrivateUrl, type CreateServiceInput, type UpdateServiceInput } from '../schemas.ts';
import {
  buildRepository,
  defaultDockerfile,
  defaultGitRef,
  gitCredentialContext,
  gitHost,
  isSshUrl,
  publicService,
  type GitSourceInput,
  type PublicService,
} from '../builds/git-source.ts';
import { BuildsUnavailable } from '../builds/errors.ts';
import type { OrgRepos } from '../ports.ts';
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
  hosts: { environment: string; host: string }[];
}

async function withHosts(
  deps: CoreDeps,
  service: Service,
  environments: { name: string }[],
): Promise<ServiceView> {
  return {
    ...publicService(service),
    hosts: environments.map((e) => ({
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
  return deps.store.withOrg(p.orgId, async (repos) => {
    await findProject(repos, input.projectId);
    const service: Service = {
      id,
      orgId: p.orgId,
      projectId: input.projectId,
      name: input.name,
      // A git-only service's image is where its builds are tagged.
      image: input.image ?? buildRepository({ id, name: input.name }),
      containerPort: input.containerPort,
      healthcheckPath: input.healthcheckPath,
      migrateCommand: input.migrateCommand ?? null,
      strategy: input.strategy ?? 'blue_green',
      replicas: input.replicas ?? 1,
      env: input.env ?? {},
      memoryMb: input.memoryMb ?? null,
      cpus: input.cpus ?? null,
      health: { ...defaultHealthPolicy, ...input.health },
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
  return {
    url: input.url,
    ref: input.ref ?? previous?.ref ?? defaultGitRef,
    subdir: input.subdir ?? previous?.subdir ?? '',
    dockerfile: input.dockerfile ?? previous?.dockerfile ?? defaultDockerfile,
    buildArgs: input.buildArgs ?? previous?.buildArgs ?? {},
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

/**
 * Changes a service (`PATCH /api/services/{id}`): the fields given replace its own; `git`
 * replaces the source (fields it leaves out keep their values), `git: null` removes it
 * with its credential. The next release uses the change; the serving one is untouched.
 */
export async function updateService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: UpdateServiceInput,
  ctx: RequestContext,
): Promise<ServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const current = await deps.store.withOrg(p.orgId, (repos) => findService(repos, id));
  const patch: Partial<Service> = {};
  for (const key of [
    'image',
    'containerPort',
    'healthcheckPath',
    'migrateCommand',
    'env',
    'memoryMb',
    'cpus',
  ] as const) {
    if (input[key] !== undefined) (patch as Record<string, unknown>)[key] = input[key];
  }
  if (input.git === null) {
    Object.assign(patch, {
      git: null,
      gitCredentialKind: null,
      gitPublicKey: null,
      sealedGitCredential: null,
    });
  } else if (input.git) {
    patch.git = gitSourceOf(deps, input.git, current.git);
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
  return deps.store.withOrg(p.orgId, async (repos) => {
    await repos.services.update(id, patch);
    const service = { ...current, ...patch };
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.updated',
      targetType: 'service',
      targetId: id,
      data: {
        fields: Object.keys(input),
        ...(input.env ? { envNames: Object.keys(input.env) } : {}),
        ...(patch.git ? { git: auditedGit(patch.git, service.gitCredentialKind) } : {}),
        ...(input.git === null ? { git: null } : {}),
      },
    });
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    return withHosts(deps, service, envs.items);
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
    return withHosts(deps, service, envs.items);
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
