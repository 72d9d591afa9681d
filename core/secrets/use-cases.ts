import { NotFound } from '../errors.ts';
import type { Environment, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

/** What the API shows of a secret: never its value, which is write-only. */
export interface SecretView {
  name: string;
  environment: string;
  updatedAt: string;
}

/**
 * The AAD a secret is sealed under. Binding org, service, environment and name means a
 * sealed value copied to another row (or another org) does not open.
 */
export const secretContext = (
  orgId: string,
  serviceId: string,
  environmentId: string,
  name: string,
) => `${orgId}:${serviceId}:${environmentId}:${name}`;

async function findServiceEnvironment(
  repos: OrgRepos,
  serviceId: string,
  environmentName: string,
): Promise<{ service: Service; environment: Environment }> {
  const service = await repos.services.get(serviceId);
  if (!service) throw new NotFound('service', serviceId);
  const environment = await repos.environments.findByName(service.projectId, environmentName);
  if (!environment) throw new NotFound('environment', environmentName);
  return { service, environment };
}

export async function putSecret(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  input: { environment?: string; name: string; value: string },
  ctx: RequestContext,
): Promise<SecretView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-secrets');
  const environmentName = input.environment ?? 'production';
  return deps.store.withOrg(p.orgId, async (repos) => {
    const { service, environment } = await findServiceEnvironment(
      repos,
      serviceId,
      environmentName,
    );
    const now = deps.clock.now().toISOString();
    const sealed = await deps.vault.seal(
      input.value,
      secretContext(p.orgId, service.id, environment.id, input.name),
    );
    await repos.secrets.put({
      id: deps.ids.newId('sec'),
      orgId: p.orgId,
      serviceId: service.id,
      environmentId: environment.id,
      name: input.name,
      sealed,
      createdAt: now,
      updatedAt: now,
    });
    await recordAudit(deps, repos, p, ctx, {
      action: 'secret.set',
      targetType: 'service',
      targetId: service.id,
      data: { name: input.name, environment: environment.name },
    });
    return { name: input.name, environment: environment.name, updatedAt: now };
  });
}

export async function listSecrets(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  environmentName = 'production',
): Promise<{ items: SecretView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const { service, environment } = await findServiceEnvironment(
      repos,
      serviceId,
      environmentName,
    );
    const secrets = await repos.secrets.list(service.id, environment.id);
    return {
      items: secrets.map((s) => ({
        name: s.name,
        environment: environment.name,
        updatedAt: s.updatedAt,
      })),
    };
  });
}

export async function deleteSecret(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  name: string,
  environmentName = 'production',
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-secrets');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const { service, environment } = await findServiceEnvironment(
      repos,
      serviceId,
      environmentName,
    );
    if (!(await repos.secrets.delete(service.id, environment.id, name)))
      throw new NotFound('secret', name);
    await recordAudit(deps, repos, p, ctx, {
      action: 'secret.deleted',
      targetType: 'service',
      targetId: service.id,
      data: { name, environment: environment.name },
    });
  });
}
