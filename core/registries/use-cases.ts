import { AlreadyExists, InvalidInput, NotFound } from '../errors.ts';
import type { Registry } from '../models.ts';
import type { KeyVault, RegistryAuth, RegistryRepo } from '../ports.ts';
import { assertCan } from '../roles.ts';
import type { CreateRegistryInput } from '../schemas.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { normaliseServer, registryOf } from './image-ref.ts';

export type RegistryView = Omit<Registry, 'sealedPassword'>;

const view = ({ sealedPassword: _sealed, ...rest }: Registry): RegistryView => rest;

/** The AAD a registry's password is sealed under: it opens for this org and registry only. */
export const registryPasswordContext = (orgId: string, registryId: string) =>
  `${orgId}:registry:${registryId}`;

/** Stores the org's credential for a registry; the password is sealed and never shown again. */
export async function createRegistry(
  deps: CoreDeps,
  principal: Principal,
  input: CreateRegistryInput,
  ctx: RequestContext,
): Promise<RegistryView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-registries');
  const server = normaliseServer(input.server);
  if (!server)
    throw new InvalidInput(
      `server: ${JSON.stringify(input.server)} is not a registry host[:port] (e.g. registry.example.com, 127.0.0.1:5000, docker.io)`,
      { field: 'server' },
    );
  const id = deps.ids.newId('reg');
  const registry: Registry = {
    id,
    orgId: p.orgId,
    server,
    username: input.username,
    sealedPassword: await deps.vault.seal(input.password, registryPasswordContext(p.orgId, id)),
    createdAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (await repos.registries.byServer(server)) throw new AlreadyExists('registry', server);
    await repos.registries.insert(registry);
    await recordAudit(deps, repos, p, ctx, {
      action: 'registry.created',
      targetType: 'registry',
      targetId: id,
      data: { server, username: input.username },
    });
  });
  return view(registry);
}

export async function listRegistries(
  deps: CoreDeps,
  principal: Principal,
): Promise<{ items: RegistryView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const items = await deps.store.withOrg(p.orgId, (repos) => repos.registries.list());
  return { items: items.map(view) };
}

export async function deleteRegistry(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-registries');
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.registries.delete(id))) throw new NotFound('registry', id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'registry.deleted',
      targetType: 'registry',
      targetId: id,
    });
  });
}

/**
 * The credential a pull of `image` sends: the org's for the image's registry, opened, or
 * undefined when the org has none (a public image, or the node's own login).
 */
export async function pullAuthFor(
  vault: KeyVault,
  registries: RegistryRepo,
  image: string,
): Promise<RegistryAuth | undefined> {
  const registry = await registries.byServer(registryOf(image));
  if (!registry) return undefined;
  return {
    server: registry.server,
    username: registry.username,
    password: await vault.open(
      registry.sealedPassword,
      registryPasswordContext(registry.orgId, registry.id),
    ),
  };
}
