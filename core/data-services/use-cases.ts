import type { deleteDataServiceQuery } from '../schemas.ts';
import type * as z from 'zod';
import { CoreError, InvalidInput, NotFound } from '../errors.ts';
import type {
  DataEngine,
  DataService,
  DataServiceLink,
  DataServiceSettings,
  DrillSchedule,
  NodeRecord,
  Page,
  PageRequest,
} from '../models.ts';
import type { EventQueue, OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import {
  checkBackupSchedule,
  checkDrillSchedule,
  defaultBackupSchedule,
  defaultDrillSchedule,
} from './backups.ts';
import { dataServiceWorkQueue, type DataServiceWorkMessage } from './deps.ts';
import {
  dataEndpoint,
  dataEngineImages,
  dataServiceSecretContext,
  dataVolumeName,
  defaultLinkEnvName,
  defaultRedisSettings,
  projectNetworkName,
} from './plan.ts';

type Deps = CoreDeps & { queue: EventQueue };

/** A data service as the API shows it: where it lives, never its password. */
export type DataServiceView = Omit<
  DataService,
  'sealedPassword' | 'removeVolume' | 'pendingSealedPassword' | 'drillSchedule'
> & {
  /** Which of its backups are restore-drilled (`every_backup` unless set). */
  drillSchedule: DrillSchedule;
  /** A password rotation is under way (the worker sets, checks, then redeploys linked apps). */
  rotating: boolean;
  /** Its host name on the project network (only the project's app containers reach it). */
  host: string;
  port: number;
  volume: string;
  network: string;
  /** `shared`: a database and user on `sharedServerId`; `dedicated`: a server of its own. */
  mode: 'dedicated' | 'shared';
  shareable: boolean;
  sharedServerId: string | null;
  /** The database and user a link's URL names (`app` on a dedicated server). */
  database: string | null;
  user: string | null;
};

const enginePorts: Record<DataEngine, number> = { redis: 6379, mariadb: 3306, postgres: 5432 };

export const dataServiceView = ({
  sealedPassword: _s,
  removeVolume: _r,
  pendingSealedPassword: pending,
  ...d
}: DataService): DataServiceView => {
  const at = dataEndpoint(d);
  return {
    ...d,
    passwordRotatedAt: d.passwordRotatedAt ?? null,
    upgrade: d.upgrade ?? null,
    drillSchedule: d.drillSchedule ?? defaultDrillSchedule,
    rotating: Boolean(pending),
    host: at.host,
    port: enginePorts[d.engine],
    // A database on a shared server lives in that server's volume.
    volume: dataVolumeName({ id: d.sharedServerId ?? d.id }),
    network: projectNetworkName(d.projectId),
    mode: d.sharedServerId ? 'shared' : 'dedicated',
    shareable: d.shareable ?? false,
    sharedServerId: d.sharedServerId ?? null,
    database: d.engine === 'redis' ? null : at.database,
    user: d.engine === 'redis' ? null : at.user,
  };
};

export interface CreateDataServiceInput {
  projectId: string;
  name: string;
  engine: DataEngine;
  version?: string | undefined;
  nodeId?: string | undefined;
  maxmemoryMb?: number | undefined;
  evictionPolicy?: DataServiceSettings['evictionPolicy'] | undefined;
  persistence?: DataServiceSettings['persistence'] | undefined;
  backupSchedule?: string | undefined;
  drillSchedule?: DrillSchedule | undefined;
  shareable?: boolean | undefined;
  sharedServerId?: string | undefined;
}

/**
 * Checks a shared data service's server: a shareable MariaDB or PostgreSQL data service of
 * the same project (its network is the only one the apps reach it on), ready, of the engine
 * asked for. Redis is refused: its only isolation between apps would be ACL users on one
 * keyspace, and a Socket.IO fan-out of one app would take the memory of all of them.
 */
function checkSharedServer(
  input: CreateDataServiceInput,
  server: DataService | null,
): asserts server is DataService {
  const field = 'sharedServerId';
  if (input.engine === 'redis')
    throw new InvalidInput(
      `${field}: redis is never shared (no databases or users to isolate apps by); create a dedicated one`,
      { field },
    );
  if (input.shareable)
    throw new InvalidInput(`shareable: a database on a shared server cannot hold others`, {
      field: 'shareable',
    });
  if (!server) throw new NotFound('data_service', input.sharedServerId!);
  if (!server.shareable)
    throw new InvalidInput(
      `${field}: data service ${server.name} is not a shareable server (create one with shareable: true)`,
      { field },
    );
  if (server.projectId !== input.projectId)
    throw new InvalidInput(
      `${field}: data service ${server.name} is in another project; a shared server serves only its own project's apps`,
      { field },
    );
  if (server.engine !== input.engine)
    throw new InvalidInput(
      `engine: ${server.name} is a ${server.engine} server, not ${input.engine}`,
      {
        field: 'engine',
      },
    );
  if (input.version !== undefined && input.version !== server.version)
    throw new InvalidInput(`version: ${server.name} runs ${server.engine} ${server.version}`, {
      field: 'version',
    });
  if (input.nodeId !== undefined && input.nodeId !== server.nodeId)
    throw new InvalidInput(
      `nodeId: a shared database lives on its server's node (${server.nodeId})`,
      {
        field: 'nodeId',
      },
    );
  if (server.status !== 'ready')
    throw new CoreError(
      'conflict',
      'data_service_not_ready',
      `shared server ${server.name} is ${server.status}; wait until it is ready`,
    );
}

/** Where a data service goes: the node asked for, else a `role=data` node, else any undrained one. */
async function placeOn(repos: OrgRepos, nodeId: string | undefined): Promise<NodeRecord> {
  if (nodeId) {
    const node = await repos.nodes.get(nodeId);
    if (!node) throw new NotFound('node', nodeId);
    return node;
  }
  const nodes = (await repos.nodes.list({ limit: 200 })).items.filter((n) => !n.drainMode);
  const node = nodes.find((n) => n.labels.role === 'data') ?? nodes[0];
  if (!node)
    throw new InvalidInput('nodeId: no undrained node is registered to place the data service on', {
      field: 'nodeId',
    });
  return node;
}

function settingsOf(input: CreateDataServiceInput): DataServiceSettings {
  const given = {
    ...(input.maxmemoryMb !== undefined ? { maxmemoryMb: input.maxmemoryMb } : {}),
    ...(input.evictionPolicy !== undefined ? { evictionPolicy: input.evictionPolicy } : {}),
    ...(input.persistence !== undefined ? { persistence: input.persistence } : {}),
  };
  if (input.engine !== 'redis') {
    const field = Object.keys(given)[0];
    if (field) throw new InvalidInput(`${field}: applies to redis only`, { field });
    return {};
  }
  // Stored explicitly, so what runs is what the API shows, whatever later defaults become.
  return { ...defaultRedisSettings, ...given };
}

/**
 * Creates a data service in `provisioning` and queues its start; the worker moves it to
 * `ready` once an authenticated query answers on the project network, or to `failed`.
 */
export async function createDataService(
  deps: Deps,
  principal: Principal,
  input: CreateDataServiceInput,
  ctx: RequestContext,
): Promise<DataServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const engine = dataEngineImages[input.engine];
  const version = input.version ?? engine.defaultVersion;
  if (!engine.versions[version])
    throw new InvalidInput(
      `version: ${input.engine} ${version} is not available; available: ${Object.keys(engine.versions).join(', ')}`,
      { field: 'version', available: Object.keys(engine.versions) },
    );
  if (input.shareable && input.engine === 'redis')
    throw new InvalidInput(
      'shareable: redis is never shared (no databases or users to isolate apps by); each app gets its own',
      { field: 'shareable' },
    );
  const settings = settingsOf(input);
  const backupSchedule =
    input.backupSchedule === undefined
      ? defaultBackupSchedule
      : checkBackupSchedule(input.backupSchedule);
  const drillSchedule =
    input.drillSchedule === undefined
      ? defaultDrillSchedule
      : checkDrillSchedule(input.drillSchedule);
  const id = deps.ids.newId('dat');
  // Hex-like and URL-safe: it goes into connection URLs and the engines' init SQL unquoted.
  const password = deps.ids.newSecret(24).replace(/[^A-Za-z0-9]/g, 'x');
  const sealedPassword = await deps.vault.seal(password, dataServiceSecretContext(p.orgId, id));
  const now = deps.clock.now().toISOString();
  const ds = await deps.store.withOrg(p.orgId, async (repos) => {
    const project = await repos.projects.get(input.projectId);
    if (!project) throw new NotFound('project', input.projectId);
    let server: DataService | null = null;
    if (input.sharedServerId) {
      server = await repos.dataServices.get(input.sharedServerId);
      checkSharedServer(input, server);
    }
    const node = server ? await repos.nodes.get(server.nodeId) : await placeOn(repos, input.nodeId);
    if (!node) throw new NotFound('node', server!.nodeId);
    const row: DataService = {
      id,
      orgId: p.orgId,
      projectId: project.id,
      name: input.name,
      engine: input.engine,
      version: server?.version ?? version,
      nodeId: node.id,
      status: 'provisioning',
      error: null,
      settings,
      sealedPassword,
      removeVolume: false,
      backupSchedule,
      drillSchedule,
      pendingSealedPassword: null,
      passwordRotatedAt: null,
      shareable: input.shareable ?? false,
      sharedServerId: server?.id ?? null,
      createdAt: now,
      updatedAt: now,
    };
    await repos.dataServices.insert(row);
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.created',
      targetType: 'data_service',
      targetId: id,
      data: {
        projectId: project.id,
        name: row.name,
        engine: row.engine,
        version: row.version,
        nodeId: node.id,
        mode: server ? 'shared' : 'dedicated',
        ...(row.shareable ? { shareable: true } : {}),
        ...(server ? { sharedServerId: server.id, database: dataEndpoint(row).database } : {}),
      },
    });
    return row;
  });
  await sendWork(deps, ds, 'provision');
  return dataServiceView(ds);
}

async function sendWork(
  deps: Deps,
  ds: Pick<DataService, 'orgId' | 'id'>,
  op: DataServiceWorkMessage['op'],
): Promise<void> {
  const message: DataServiceWorkMessage = { orgId: ds.orgId, dataServiceId: ds.id, op };
  try {
    await deps.queue.send(dataServiceWorkQueue, message, {
      idempotencyKey: `${ds.id}:${op}`,
      group: ds.id,
      maxAttempts: 10, // the worker gives up itself after maxStepAttempts
    });
  } catch (e) {
    // Nothing would ever pick it up: say so on the resource rather than leave it spinning.
    await deps.store.withOrg(ds.orgId, (repos) =>
      repos.dataServices.update(ds.id, {
        status: 'failed',
        error: `could not queue the ${op}: ${e instanceof Error ? e.message : String(e)}`,
        updatedAt: deps.clock.now().toISOString(),
      }),
    );
    throw e;
  }
}

export async function listDataServices(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest & { projectId?: string | undefined },
): Promise<Page<DataServiceView>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const res = await deps.store.withOrg(p.orgId, (repos) =>
    repos.dataServices.list(page, page.projectId ? { projectId: page.projectId } : undefined),
  );
  return { items: res.items.map(dataServiceView), nextCursor: res.nextCursor };
}

export async function getDataService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<DataServiceView & { links: DataServiceLink[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    return {
      ...dataServiceView(ds),
      links: await repos.dataServiceLinks.list({ dataServiceId: id }),
    };
  });
}

/**
 * Deletes a data service: the caller types its name again (`confirm`) and says whether the
 * data volume goes too (`volume=remove`) or stays on the node (`keep`, the default). A
 * linked one is refused (unlink first), so no app loses its database by surprise. The
 * container is removed by the worker (202); the resource is gone when that is done.
 */
export async function deleteDataService(
  deps: Deps,
  principal: Principal,
  id: string,
  query: z.infer<typeof deleteDataServiceQuery>,
  ctx: RequestContext,
): Promise<DataServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const ds = await deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    if (query.confirm !== ds.name)
      throw new InvalidInput(
        `confirm: type the data service's name (${ds.name}) to delete it; volume=${query.volume} ${query.volume === 'remove' ? 'deletes its data for good' : 'keeps its data volume on the node'}`,
        { field: 'confirm' },
      );
    if (ds.shareable) {
      const held = (
        await repos.dataServices.list({ limit: 200 }, { projectId: ds.projectId })
      ).items
        .filter((o) => o.sharedServerId === id)
        .map((o) => o.name);
      if (held.length > 0)
        throw new CoreError(
          'conflict',
          'data_service_has_databases',
          `shared server ${ds.name} holds ${held.length} database(s) (${held.join(', ')}): delete or move them first`,
          { databases: held },
        );
    }
    const links = await repos.dataServiceLinks.list({ dataServiceId: id });
    if (links.length > 0)
      throw new CoreError(
        'conflict',
        'data_service_linked',
        `data service ${ds.name} is linked to ${links.length} service(s): unlink them first`,
        { serviceIds: links.map((l) => l.serviceId) },
      );
    const patch = {
      status: 'deleting' as const,
      removeVolume: query.volume === 'remove',
      updatedAt: deps.clock.now().toISOString(),
    };
    await repos.dataServices.update(id, patch);
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.delete_requested',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, volume: query.volume === 'remove' ? 'removed' : 'kept' },
    });
    return { ...ds, ...patch };
  });
  await sendWork(deps, ds, 'delete');
  return dataServiceView(ds);
}

/**
 * Links a data service to an app service of the same project: its URL arrives as `envName`
 * in the service's candidates and migrations from the next release on.
 */
export async function linkDataService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: { serviceId: string; envName?: string | undefined },
  ctx: RequestContext,
): Promise<DataServiceLink> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    const service = await repos.services.get(input.serviceId);
    if (!service) throw new NotFound('service', input.serviceId);
    if (service.projectId !== ds.projectId)
      throw new InvalidInput(
        `serviceId: service ${service.name} is in another project than data service ${ds.name}; a data service is reachable only from its own project`,
        { field: 'serviceId' },
      );
    if (ds.status === 'deleting')
      throw new CoreError(
        'conflict',
        'data_service_deleting',
        `data service ${ds.name} is being deleted`,
      );
    if (ds.shareable)
      throw new CoreError(
        'conflict',
        'data_service_shareable',
        `data service ${ds.name} is a shared server: its user administers every database on it; create a data service on it (sharedServerId: ${ds.id}) and link that`,
      );
    const link: DataServiceLink = {
      id: deps.ids.newId('dsl'),
      orgId: p.orgId,
      dataServiceId: id,
      serviceId: service.id,
      envName: input.envName ?? defaultLinkEnvName[ds.engine],
      createdAt: deps.clock.now().toISOString(),
    };
    await repos.dataServiceLinks.insert(link);
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.linked',
      targetType: 'data_service',
      targetId: id,
      data: { serviceId: service.id, envName: link.envName, linkId: link.id },
    });
    return link;
  });
}

export async function listDataServiceLinks(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<{ items: DataServiceLink[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.dataServices.get(id))) throw new NotFound('data_service', id);
    return { items: await repos.dataServiceLinks.list({ dataServiceId: id }) };
  });
}

/** Unlinks; the env var leaves the service's containers from its next release on. */
export async function unlinkDataService(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  linkId: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const link = (await repos.dataServiceLinks.list({ dataServiceId: id })).find(
      (l) => l.id === linkId,
    );
    if (!link) throw new NotFound('data_service_link', linkId);
    await repos.dataServiceLinks.delete(linkId);
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.unlinked',
      targetType: 'data_service',
      targetId: id,
      data: { serviceId: link.serviceId, envName: link.envName, linkId },
    });
  });
}
