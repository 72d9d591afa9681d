import { CoreError, InvalidInput, NotFound } from '../errors.ts';
import type { DataService, DataServiceUpgrade } from '../models.ts';
import { openPinnedNodeTarget } from '../nodes/credentials.ts';
import type { DockerTarget, EventQueue } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { backupNow } from './backup-work.ts';
import {
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import {
  compareVersions,
  dataContainerName,
  dataEngineImages,
  dataServiceSecretContext,
  planDataContainer,
  planReadinessCheck,
  planVersionQuery,
  releaseLine,
  serverVersionOf,
  versionMatches,
} from './plan.ts';
import { dataServiceView, type DataServiceView } from './use-cases.ts';

/**
 * Upgrading a data service's server to a newer minor of its release line, in place:
 * 1. `backup`: a backup first (trigger `pre_upgrade`, recorded and drilled like any other);
 *    its failure stops everything before the server is touched;
 * 2. `swap`: the container is removed and started again from the new image on the same
 *    volume, same name, network and password (apps reconnect; nothing is redeployed);
 * 3. `check`: the new server must answer an authenticated query within the readiness budget,
 *    then report the version it is upgraded to (PostgreSQL `SHOW server_version`, MariaDB
 *    `SELECT VERSION()`, Redis `INFO server`); another version fails the check.
 * A failure at 2 or 3 removes the new container and starts the old image again on the
 * volume (`rolledBack`); the record keeps the old version. Across a release line the data
 * files change format, so that is refused (400): restore a backup into a new service.
 */

type Deps = CoreDeps & { queue: EventQueue };

/** A backup, a swap and a check; an upgrade older than this died with its worker. */
const staleUpgradeMs = 3 * 60 * 60 * 1000;

/** Checks the target version against the engine's catalog; answers the reason it is refused. */
export function checkUpgrade(ds: Pick<DataService, 'engine' | 'version'>, to: string): void {
  const line = releaseLine(ds.engine, ds.version);
  if (releaseLine(ds.engine, to) !== line)
    throw new InvalidInput(
      `version: ${ds.engine} ${ds.version} → ${to} changes the release line (${line} → ${releaseLine(ds.engine, to)}); its data files change format, so it is not an in-place upgrade: back up, create a data service of ${to} and restore the backup into it`,
      { field: 'version', reason: 'major_upgrade' },
    );
  const available = Object.keys(dataEngineImages[ds.engine].versions);
  if (!dataEngineImages[ds.engine].versions[to])
    throw new InvalidInput(
      `version: ${ds.engine} ${to} is not available; available: ${available.join(', ')}`,
      { field: 'version', available },
    );
  if (compareVersions(to, ds.version) <= 0)
    throw new InvalidInput(
      `version: ${to} is not newer than ${ds.version}; an upgrade only moves forward (a downgrade is a restore into a new service)`,
      { field: 'version' },
    );
}

/** Asks for the upgrade (202): the worker backs up, swaps and checks on the service's group. */
export async function requestUpgrade(
  deps: Deps,
  principal: Principal,
  id: string,
  input: { version: string },
  ctx: RequestContext,
): Promise<DataServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const ds = await deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    if (ds.sharedServerId)
      throw new CoreError(
        'conflict',
        'data_service_shared',
        `data service ${ds.name} is a database on shared server ${ds.sharedServerId}: upgrade the server (every database on it follows)`,
      );
    if (ds.status !== 'ready')
      throw new CoreError(
        'conflict',
        'data_service_not_ready',
        `data service ${ds.name} is ${ds.status}; it can be upgraded once it is ready`,
      );
    checkUpgrade(ds, input.version);
    const now = deps.clock.now().toISOString();
    if (
      ds.upgrade?.status === 'upgrading' &&
      Date.parse(now) - Date.parse(ds.upgrade.at) < staleUpgradeMs
    )
      throw new CoreError(
        'conflict',
        'upgrade_in_progress',
        `data service ${ds.name} is already upgrading to ${ds.upgrade.to} (step ${ds.upgrade.step})`,
      );
    const upgrade: DataServiceUpgrade = {
      status: 'upgrading',
      from: ds.version,
      to: input.version,
      step: 'backup',
      backupId: null,
      error: null,
      rolledBack: false,
      at: now,
    };
    await repos.dataServices.update(id, { upgrade, updatedAt: now });
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.upgrade_requested',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, from: ds.version, to: input.version },
    });
    return { ...ds, upgrade };
  });
  const message: DataServiceWorkMessage = { orgId: p.orgId, dataServiceId: id, op: 'upgrade' };
  try {
    await deps.queue.send(dataServiceWorkQueue, message, {
      idempotencyKey: `${id}:upgrade:${deps.ids.newId('upg')}`,
      group: id,
      // Not redelivered: a half-done swap is rolled back and recorded, never re-run blindly.
      maxAttempts: 1,
    });
  } catch (e) {
    await deps.store.withOrg(p.orgId, (repos) => repos.dataServices.update(id, { upgrade: null }));
    throw e;
  }
  return dataServiceView(ds);
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Runs `{op: upgrade}`: backup, swap, check; a failed swap or check rolls back. */
export async function handleUpgrade(deps: DataServiceDeps, ds: DataService): Promise<void> {
  const u = ds.upgrade;
  if (u?.status !== 'upgrading') return;
  const record = (patch: Partial<DataServiceUpgrade>) => {
    Object.assign(u, patch);
    return deps.store.withOrg(ds.orgId, (repos) =>
      repos.dataServices.update(ds.id, { upgrade: { ...u } }),
    );
  };
  let step: NonNullable<DataServiceUpgrade['step']> = 'backup';
  let target: DockerTarget | null = null;
  let password = '';
  let serverVersion = '';
  try {
    const backup = await backupNow(deps, ds, 'pre_upgrade');
    await record({ backupId: backup.id, step: 'swap' });
    step = 'swap';
    const node = await deps.store.withOrg(ds.orgId, (repos) => repos.nodes.get(ds.nodeId));
    if (!node) throw new Error(`node ${ds.nodeId} is gone`);
    target = await openPinnedNodeTarget(deps.vault, node);
    password = await deps.vault.open(ds.sealedPassword, dataServiceSecretContext(ds.orgId, ds.id));
    await swap(deps, target, { ...ds, version: u.to }, password);
    await record({ step: 'check' });
    step = 'check';
    await waitReady(deps, target, { ...ds, version: u.to }, password);
    // Answering is not enough: the server must be the version the record will name (an
    // image catalogued under the wrong version would otherwise be recorded as upgraded).
    serverVersion = await verifyVersion(deps, target, { ...ds, version: u.to }, password);
  } catch (e) {
    const reason = messageOf(e).replaceAll(password || '\0', '***');
    let rolledBack = false;
    let rollbackError: string | null = null;
    if (step !== 'backup' && target) {
      try {
        await swap(deps, target, ds, password);
        await waitReady(deps, target, ds, password);
        rolledBack = true;
      } catch (r) {
        rollbackError = messageOf(r).replaceAll(password || '\0', '***');
      }
    }
    await record({ status: 'failed', step, error: reason, rolledBack });
    await deps.store.withOrg(ds.orgId, async (repos) => {
      if (rollbackError)
        await repos.dataServices.update(ds.id, {
          status: 'failed',
          error: `upgrade to ${u.to} failed (${reason}) and the old image ${u.from} did not come back: ${rollbackError}`,
          updatedAt: deps.clock.now().toISOString(),
        });
      await recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.upgrade_failed',
        targetType: 'data_service',
        targetId: ds.id,
        data: {
          name: ds.name,
          from: u.from,
          to: u.to,
          step,
          reason,
          rolledBack,
          ...(rollbackError ? { rollbackError } : {}),
        },
      });
    });
    return;
  }
  const now = deps.clock.now().toISOString();
  await deps.store.withOrg(ds.orgId, async (repos) => {
    await repos.dataServices.update(ds.id, {
      version: u.to,
      upgrade: { ...u, status: 'upgraded', step: null, error: null, serverVersion },
      updatedAt: now,
    });
    // The databases on a shareable server run on it: their version is the server's.
    if (ds.shareable) {
      let cursor: string | undefined;
      for (let page = 0; page < 50; page++) {
        const { items, nextCursor } = await repos.dataServices.list(
          { limit: 200, ...(cursor ? { cursor } : {}) },
          { projectId: ds.projectId },
        );
        for (const d of items)
          if (d.sharedServerId === ds.id)
            await repos.dataServices.update(d.id, { version: u.to, updatedAt: now });
        if (!nextCursor) break;
        cursor = nextCursor;
      }
    }
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.upgraded',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, from: u.from, to: u.to, backupId: u.backupId, serverVersion },
    });
  });
}

/** The server's container replaced by one of `ds.version`'s image, on the same volume. */
async function swap(
  deps: DataServiceDeps,
  target: DockerTarget,
  ds: DataService,
  password: string,
): Promise<void> {
  // A clean shutdown first (checkpointed, no crash recovery for the next image to do).
  await deps.runtime.stop(target, dataContainerName(ds), 30).catch(() => undefined);
  await deps.runtime.remove(target, dataContainerName(ds));
  await deps.runtime.start(target, planDataContainer(ds, password));
}

/** The version the running server reports, which must be `ds.version` (see `versionMatches`). */
async function verifyVersion(
  deps: DataServiceDeps,
  target: DockerTarget,
  ds: DataService,
  password: string,
): Promise<string> {
  const r = await deps.runtime.runOnce(target, planVersionQuery(ds, password), 15_000);
  const out = r.output.replaceAll(password || '\0', '***');
  const reported = r.exitCode === 0 ? serverVersionOf(ds.engine, out) : null;
  if (!reported)
    throw new Error(
      `the ${ds.engine} server did not say its version after the swap (exit ${r.exitCode}): ${out.trim().split('\n').pop() || 'no output'}`,
    );
  if (!versionMatches(ds.version, reported))
    throw new Error(
      `the server reports ${ds.engine} ${reported} after the swap, not ${ds.version}: image ${dataEngineImages[ds.engine].versions[ds.version] ?? '?'} is not the version it is catalogued as`,
    );
  return reported;
}

/** An authenticated query must answer (one check a second, the readiness budget). */
async function waitReady(
  deps: DataServiceDeps,
  target: DockerTarget,
  ds: DataService,
  password: string,
): Promise<void> {
  const attempts = deps.config.dataReadyAttempts ?? 90;
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const check = await deps.runtime.runOnce(target, planReadinessCheck(ds, password), 15_000);
    if (check.exitCode === 0) return;
    last = check.output.trim().split('\n').pop() ?? '';
    const now = await deps.runtime.inspect(target, dataContainerName(ds));
    // Stricter than a first start: a server that already exited (restarting) on the data it
    // had is the new image failing, and the old one should come back at once.
    if (now && now.state !== 'running')
      throw new Error(
        `the ${ds.engine} ${ds.version} server container is ${now.state}: ${last || 'no output'}`,
      );
    await deps.clock.sleep(1000);
  }
  throw new Error(
    `the ${ds.engine} ${ds.version} server did not answer after ${attempts} checks: ${last || 'no output'}`,
  );
}
