import { NotFound } from '../errors.ts';
import { defaultHosts } from '../releases/plan.ts';
import type { HealthPolicy, Page, PageRequest, Service } from '../models.ts';
import { assertCan } from '../roles.ts';
import type { CreateServiceInput } from '../schemas.ts';
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

export interface ServiceView extends Service {
  hosts: { environment: string; host: string }[];
}

async function withHosts(
  deps: CoreDeps,
  service: Service,
  environments: { name: string }[],
): Promise<ServiceView> {
  return {
    ...service,
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
  return deps.store.withOrg(p.orgId, async (repos) => {
    await findProject(repos, input.projectId);
    const service: Service = {
      id: deps.ids.newId('svc'),
      orgId: p.orgId,
      projectId: input.projectId,
      name: input.name,
      image: input.image,
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
      createdAt: deps.clock.now().toISOString(),
    };
    await repos.services.insert(service);
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.created',
      targetType: 'service',
      targetId: service.id,
      // Plain env values may be configuration a person considers sensitive: keep names only.
      data: { name: service.name, image: service.image, envNames: Object.keys(service.env) },
    });
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    return withHosts(deps, service, envs.items);
  });
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
): Promise<Page<Service>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, (repos) => repos.services.list(page, filter));
}
