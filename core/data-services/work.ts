import { openPinnedNodeTarget } from '../nodes/credentials.ts';
import type { DataService } from '../models.ts';
import type { MessageHandler } from '../ports.ts';
import { recordAudit } from '../deps.ts';
import { handleBackup, handleDrill, handleRestore } from './backup-work.ts';
import { handleMove } from './move.ts';
import { handleUpgrade } from './upgrade.ts';
import { handleRotation } from './rotation.ts';
import {
  backupScheduleName,
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import {
  dataContainerName,
  dataEndpoint,
  dataServiceSecretContext,
  planSharedDatabase,
  dataVolumeName,
  planDataContainer,
  planReadinessCheck,
} from './plan.ts';

/**
 * Runs a data service's long work: `provision` starts the server and waits until an
 * authenticated query answers on the project network (→ ready); `delete` removes the
 * container, the volume when asked, then the record. Both are idempotent: a redelivered
 * message finds what the first run made (the container is named after the data service).
 */
export function handleDataServiceWork(
  deps: DataServiceDeps,
): MessageHandler<DataServiceWorkMessage> {
  return async (message) => {
    const { orgId, dataServiceId, op } = message.payload;
    const ds = await deps.store.withOrg(orgId, (repos) => repos.dataServices.get(dataServiceId));
    if (!ds) return; // deleted meanwhile: nothing left to do
    // Backups, drills and restores record their own failures (once, loudly); never retried.
    if (op === 'backup') return handleBackup(deps, ds, message.payload);
    if (op === 'drill') return handleDrill(deps, ds, message.payload);
    if (op === 'restore') return handleRestore(deps, ds, message.payload, provision);
    // Rotations record their own failures and put the engine back; never retried blindly.
    if (op === 'rotate' || op === 'rotate-finish') return handleRotation(deps, ds, message.payload);
    // A move records which step failed and leaves the shared copy linked; never retried.
    if (op === 'move') return handleMove(deps, ds, provision);
    // An upgrade records the step that failed and rolls back; never retried.
    if (op === 'upgrade') return handleUpgrade(deps, ds);
    try {
      if (op === 'provision' && ds.status === 'provisioning') await provision(deps, ds);
      if (op === 'delete' && ds.status === 'deleting') await remove(deps, ds);
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      deps.logger.warn(
        { dataServiceId, op, attempt: message.attempt, reason },
        'data service work failed',
      );
      if (message.attempt < deps.config.maxStepAttempts) throw e; // the queue delivers it again
      await finish(deps, ds, op === 'provision' ? 'provisioning' : 'deleting', 'failed', reason);
    }
  };
}

async function provision(deps: DataServiceDeps, ds: DataService): Promise<void> {
  await startServer(deps, ds);
  await registerBackupSchedule(deps, ds);
}

/** Registers (or replaces) the data service's backup schedule; logged, never fatal. */
export async function registerBackupSchedule(
  deps: Pick<DataServiceDeps, 'scheduler' | 'logger'>,
  ds: DataService,
): Promise<void> {
  if (!deps.scheduler) return;
  const message: DataServiceWorkMessage = {
    orgId: ds.orgId,
    dataServiceId: ds.id,
    op: 'backup',
    trigger: 'schedule',
  };
  await deps.scheduler
    .schedule(backupScheduleName(ds.id), ds.backupSchedule, dataServiceWorkQueue, message)
    .catch((e: unknown) =>
      deps.logger.error(
        { dataServiceId: ds.id, err: e instanceof Error ? e.message : String(e) },
        'the backup schedule could not be registered',
      ),
    );
}

/** The shareable server a shared data service's database lives on, and its admin password. */
export async function sharedServerOf(
  deps: Pick<DataServiceDeps, 'store' | 'vault'>,
  ds: DataService,
): Promise<{ server: DataService; password: string }> {
  const server = await deps.store.withOrg(ds.orgId, (repos) =>
    repos.dataServices.get(ds.sharedServerId!),
  );
  if (!server) throw new Error(`shared server ${ds.sharedServerId} is gone`);
  const password = await deps.vault.open(
    server.sealedPassword,
    dataServiceSecretContext(server.orgId, server.id),
  );
  return { server, password };
}

/** Runs one admin statement batch on a shared server; a failure throws with its last line. */
async function runSharedAdmin(
  deps: DataServiceDeps,
  target: Awaited<ReturnType<typeof openPinnedNodeTarget>>,
  ds: DataService,
  action: 'create' | 'drop' | 'disable',
  password?: string,
): Promise<void> {
  const { server, password: serverPassword } = await sharedServerOf(deps, ds);
  const r = await deps.runtime.runOnce(
    target,
    planSharedDatabase(server, ds, serverPassword, action, password),
    60_000,
  );
  if (r.exitCode !== 0) {
    let last = r.output.trim().split('\n').pop() ?? '';
    for (const secret of [serverPassword, password ?? ''])
      if (secret) last = last.replaceAll(secret, '***');
    throw new Error(
      `${action} of database ${dataEndpoint(ds).database} on ${server.name} failed: ${last || `exit ${r.exitCode}`}`,
    );
  }
}

async function startServer(deps: DataServiceDeps, ds: DataService): Promise<void> {
  const node = await deps.store.withOrg(ds.orgId, (repos) => repos.nodes.get(ds.nodeId));
  if (!node) return finish(deps, ds, 'provisioning', 'failed', `node ${ds.nodeId} is gone`);
  const target = await openPinnedNodeTarget(deps.vault, node);
  const password = await deps.vault.open(
    ds.sealedPassword,
    dataServiceSecretContext(ds.orgId, ds.id),
  );
  // On a shared server: its database and user, made by the server's admin; the readiness
  // check below then logs in as the new user, so a wrong grant fails here, not in an app.
  const info = ds.sharedServerId
    ? await runSharedAdmin(deps, target, ds, 'create', password).then(() =>
        deps.runtime.inspect(target, dataEndpoint(ds).host),
      )
    : await deps.runtime.start(target, planDataContainer(ds, password));
  const attempts = deps.config.dataReadyAttempts ?? 90;
  let last = '';
  for (let i = 0; i < attempts; i++) {
    const check = await deps.runtime.runOnce(target, planReadinessCheck(ds, password), 15_000);
    if (check.exitCode === 0) return finish(deps, ds, 'provisioning', 'ready', null);
    last = (check.output.trim().split('\n').pop() ?? '').replaceAll(password, '***');
    const now = info && (await deps.runtime.inspect(target, info.id));
    if (now && now.state !== 'running' && now.state !== 'restarting')
      return finish(deps, ds, 'provisioning', 'failed', `the server container is ${now.state}`);
    await deps.clock.sleep(1000);
  }
  await finish(
    deps,
    ds,
    'provisioning',
    'failed',
    `the server did not answer after ${attempts} checks: ${last || 'no output'}`,
  );
}

async function remove(deps: DataServiceDeps, ds: DataService): Promise<void> {
  const node = await deps.store.withOrg(ds.orgId, (repos) => repos.nodes.get(ds.nodeId));
  if (node && ds.sharedServerId) {
    // Only its database and user go (`volume=remove`), or only its login (`keep`): the
    // server and the other apps' databases on it are untouched.
    const target = await openPinnedNodeTarget(deps.vault, node);
    await runSharedAdmin(deps, target, ds, ds.removeVolume ? 'drop' : 'disable');
    await deps.scheduler?.unschedule(backupScheduleName(ds.id)).catch(() => undefined);
  } else if (node) {
    const target = await openPinnedNodeTarget(deps.vault, node);
    await deps.runtime.remove(target, dataContainerName(ds));
    await deps.scheduler?.unschedule(backupScheduleName(ds.id)).catch(() => undefined);
    if (ds.removeVolume) {
      if (!deps.runtime.removeVolume)
        throw new Error('this runtime cannot remove volumes; the volume was kept');
      await deps.runtime.removeVolume(target, dataVolumeName(ds));
    }
  }
  await deps.store.withOrg(ds.orgId, async (repos) => {
    if (!(await repos.dataServices.delete(ds.id))) return;
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.deleted',
      targetType: 'data_service',
      targetId: ds.id,
      data: {
        name: ds.name,
        volume: ds.removeVolume ? 'removed' : 'kept',
        ...(ds.sharedServerId
          ? {
              sharedServerId: ds.sharedServerId,
              database: dataEndpoint(ds).database,
              databaseDropped: ds.removeVolume,
            }
          : { volumeName: dataVolumeName(ds) }),
      },
    });
  });
}

/** Moves the data service on only from `from`, so a late duplicate cannot undo a newer state. */
async function finish(
  deps: DataServiceDeps,
  ds: DataService,
  from: DataService['status'],
  to: 'ready' | 'failed',
  error: string | null,
): Promise<void> {
  await deps.store.withOrg(ds.orgId, async (repos) => {
    const now = await repos.dataServices.get(ds.id);
    if (!now || now.status !== from) return;
    await repos.dataServices.update(ds.id, {
      status: to,
      error,
      updatedAt: deps.clock.now().toISOString(),
    });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: to === 'ready' ? 'data_service.ready' : 'data_service.failed',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, engine: ds.engine, ...(error ? { reason: error } : {}) },
    });
  });
}
