import { recordAudit } from '../deps.ts';
import type {
  DataService,
  DataServiceBackup,
  DataServiceLink,
  DataServiceMove,
  Release,
} from '../models.ts';
import {
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import { moveAlive, relinkIn, staleHeartbeatMs, staleMoveMs } from './move.ts';
import { redeployLinked } from './rotation.ts';

/** The sweep's scheduled job (core/queues.ts), every five minutes in both modes. */
export const backupSweepSchedule = 'backup-sweep';
export const backupSweepCron = '*/5 * * * *';

/** A dump, drill or restore may run this long unless the mode says otherwise. */
export const defaultBackupTimeoutMs = 2 * 60 * 60_000;

/**
 * Past the job's own timeout, how long before a `running` row counts as left by a dead
 * worker: a live worker has by then killed its one-off at the timeout and recorded why.
 */
export const stuckBackupGraceMs = 10 * 60_000;

/** Rows failed per sweep at most; the rest on the next sweep. */
const perSweep = 200;

/**
 * Fails backups and drills a worker left `running` when it died (a crash mid-dump, a killed
 * Lambda): the queue does not redeliver them (a backup is never retried), so without this
 * they would stay `running` for ever and never count as failed. A row is stuck once its
 * start plus the job's timeout plus `stuckBackupGraceMs` has passed. A backup's partial
 * object is removed from the ObjectStore (the temporary file or multipart upload, and
 * whatever reached its keys), then the row moves `running → failed` only if it still is
 * (compare-and-set: a slow worker that finished meanwhile wins) and `backup.failed` /
 * `drill.failed` is recorded like any other failure, so alerts and notifications see it.
 * Returns how many rows it failed.
 */
export async function sweepStuckBackups(
  deps: Pick<
    DataServiceDeps,
    'store' | 'objects' | 'clock' | 'ids' | 'logger' | 'events' | 'config'
  >,
): Promise<number> {
  const lookup = deps.store.backupLookup;
  if (!lookup) return 0;
  const timeoutMs = deps.config.backupTimeoutMs ?? defaultBackupTimeoutMs;
  const now = deps.clock.now();
  const before = new Date(now.getTime() - timeoutMs - stuckBackupGraceMs).toISOString();
  const stuck = await lookup.stuckBackups(before, perSweep);
  let failed = 0;
  for (const s of stuck) {
    try {
      if (await failStuck(deps, s, timeoutMs)) failed++;
    } catch (e) {
      // One row that cannot be failed now (an unreachable store) must not keep the others.
      deps.logger.warn(
        { orgId: s.orgId, backupId: s.backupId, err: e instanceof Error ? e.message : String(e) },
        'a stuck backup could not be swept; the next sweep tries again',
      );
    }
  }
  return failed;
}

const minutes = (ms: number) => `${Math.round(ms / 60_000)} min`;

async function failStuck(
  deps: Pick<DataServiceDeps, 'store' | 'objects' | 'clock' | 'ids' | 'logger' | 'events'>,
  s: { orgId: string; dataServiceId: string; backupId: string; kind: 'backup' | 'drill' },
  timeoutMs: number,
): Promise<boolean> {
  const row = await deps.store.withOrg(s.orgId, (r) => r.dataServiceBackups.get(s.backupId));
  if (!row) return false;
  if (s.kind === 'backup') {
    if (row.status !== 'running') return false;
    // The partial dump first: a row marked failed with its object still there would leak it.
    if (deps.objects) {
      // Some S3-compatible stores cannot list multipart uploads (s3rver answers NotImplemented):
      // that must not leave the row `running` for ever. The deletes below still throw when
      // the store is unreachable, so such a row waits for the next sweep as before.
      await deps.objects.discardPartial?.(row.objectKey).catch((e: unknown) =>
        deps.logger.warn(
          {
            backupId: row.id,
            key: row.objectKey,
            err: e instanceof Error ? e.message : String(e),
          },
          "the stuck backup's unfinished upload could not be discarded; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes its parts",
        ),
      );
      await deps.objects.delete(row.manifestKey);
      await deps.objects.delete(row.objectKey);
    }
  } else if (row.status !== 'completed' || row.drillStatus !== 'running') return false;
  const since = s.kind === 'backup' ? row.startedAt : row.drilledAt!;
  const reason = `the worker running this ${s.kind} stopped (it was still running ${minutes(
    deps.clock.now().getTime() - Date.parse(since),
  )} after it started, past its ${minutes(timeoutMs)} timeout); marked failed by the backup sweep`;
  return deps.store.withOrg(s.orgId, async (repos) => {
    const now = await repos.dataServiceBackups.get(row.id);
    const still =
      s.kind === 'backup'
        ? now?.status === 'running'
        : now?.status === 'completed' && now.drillStatus === 'running';
    if (!now || !still) return false;
    const ds = await repos.dataServices.get(row.dataServiceId);
    const patch: Partial<DataServiceBackup> =
      s.kind === 'backup'
        ? { status: 'failed', error: reason, finishedAt: deps.clock.now().toISOString() }
        : { drillStatus: 'failed', drillError: reason };
    await repos.dataServiceBackups.update(row.id, patch);
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: s.kind === 'backup' ? 'backup.failed' : 'drill.failed',
      targetType: 'data_service',
      targetId: row.dataServiceId,
      data: {
        name: ds?.name ?? row.dataServiceId,
        backupId: row.id,
        ...(s.kind === 'backup'
          ? { trigger: row.trigger }
          : { rtoMs: null, rpoMs: null, apps: [] }),
        reason,
        swept: true,
      },
    });
    deps.logger.error(
      { orgId: s.orgId, dataServiceId: row.dataServiceId, backupId: row.id, kind: s.kind },
      `a stuck ${s.kind} was marked failed`,
    );
    return true;
  });
}

/** Moves failed (or finished) per sweep at most; the rest on the next sweep. */
const movesPerSweep = 100;

/**
 * Moves whose worker died (issue 15). A move is sent once and never redelivered, so one whose
 * worker stopped beating would stay `moving` until a person asked again. The sweep settles it
 * like the worker's own failure would: by compare-and-set on the move it read (a live worker's
 * beat since then wins), in one transaction with putting the links back on the shared copy,
 * then removes the half-made dedicated server (the usual delete, volume removed) and records
 * `data_service.move_failed` (webhooks, notifications) naming the step and the stopped worker.
 *
 * One exception, so that no write is lost: once the links were on the new server and a
 * release of a linked service was created since (the dead worker had started the redeploys),
 * that release's containers may already write to the new server. Putting the links back and
 * removing it would drop those writes, so the sweep finishes the move instead (redeploys the
 * linked services that have no release yet; `moved`, `confirm-move` as usual) and says why.
 * Returns how many moves it settled.
 */
export async function sweepStaleMoves(deps: DataServiceDeps): Promise<number> {
  const lookup = deps.store.backupLookup;
  if (!lookup) return 0;
  const now = deps.clock.now().getTime();
  const stale = await lookup.staleMoves(
    new Date(now - staleHeartbeatMs).toISOString(),
    new Date(now - staleMoveMs).toISOString(),
    movesPerSweep,
  );
  let settled = 0;
  for (const s of stale) {
    try {
      if (await settleStaleMove(deps, s.orgId, s.dataServiceId)) settled++;
    } catch (e) {
      deps.logger.warn(
        {
          orgId: s.orgId,
          dataServiceId: s.dataServiceId,
          err: e instanceof Error ? e.message : String(e),
        },
        'a stale move could not be swept; the next sweep tries again',
      );
    }
  }
  return settled;
}

async function settleStaleMove(deps: DataServiceDeps, orgId: string, id: string): Promise<boolean> {
  const nowIso = deps.clock.now().toISOString();
  const seen = await deps.store.withOrg(orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds?.move || ds.move.status !== 'moving' || moveAlive(ds.move, nowIso)) return null;
    const target = ds.move.targetId ? await repos.dataServices.get(ds.move.targetId) : null;
    const onTarget = target ? await repos.dataServiceLinks.list({ dataServiceId: target.id }) : [];
    // Releases that read the new server's URL: created since the links started naming it.
    const since = ds.move.at;
    const releases = [];
    for (const serviceId of new Set(onTarget.map((l) => l.serviceId))) {
      const page = await repos.releases.list({ limit: 200 }, { serviceId });
      releases.push(...page.items.filter((r) => r.createdAt >= since));
    }
    return { ds, move: ds.move, target, onTarget, releases };
  });
  if (!seen) return false;
  const { ds, move, target, onTarget, releases } = seen;
  const stopped = `worker stopped (no heartbeat since ${move.heartbeatAt ?? `${move.at}, when it was asked`})`;
  if (target && onTarget.length > 0 && releases.length > 0)
    return finishStaleMove(deps, ds, move, target, onTarget, releases, stopped);

  const reason = `move failed at step ${move.step}: ${stopped}; marked failed by the sweep`;
  const failed: DataServiceMove = { ...move, status: 'failed', error: reason, at: nowIso };
  const removing = target && target.status !== 'deleting' ? target : null;
  const won = await deps.store.withOrg(orgId, async (repos) => {
    if (!(await repos.dataServices.setMove(id, move, failed))) return false;
    // The links that had moved come back to the shared copy, under the same names.
    if (onTarget.length > 0) await relinkIn(repos, ds, onTarget, ds.id);
    if (removing)
      await repos.dataServices.update(removing.id, {
        status: 'deleting',
        removeVolume: true,
        updatedAt: nowIso,
      });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.move_failed',
      targetType: 'data_service',
      targetId: id,
      data: {
        name: ds.name,
        step: move.step,
        reason,
        to: move.targetId,
        linksRestored: onTarget.map((l) => l.envName),
        removed: removing ? { id: removing.id, name: removing.name } : null,
        sharedCopy: 'still linked and serving',
        swept: true,
      },
    });
    return true;
  });
  if (!won) return false; // its worker beat meanwhile: alive after all
  deps.logger.error(
    { orgId, dataServiceId: id, step: move.step },
    'a stale move was marked failed',
  );
  if (removing) await sendDelete(deps, removing);
  return true;
}

/** The dead worker had started the redeploys: the move is finished, never undone under them. */
async function finishStaleMove(
  deps: DataServiceDeps,
  ds: DataService,
  move: DataServiceMove,
  target: DataService,
  onTarget: DataServiceLink[],
  releases: Release[],
  stopped: string,
): Promise<boolean> {
  const nowIso = deps.clock.now().toISOString();
  const moved: DataServiceMove = {
    ...move,
    status: 'moved',
    step: null,
    error: null,
    releaseIds: releases.map((r) => r.id),
    at: nowIso,
  };
  const won = await deps.store.withOrg(ds.orgId, (repos) =>
    repos.dataServices.setMove(ds.id, move, moved),
  );
  if (!won) return false;
  // The services the dead worker had not redeployed yet still run on the shared copy.
  const started = new Set(releases.map((r) => r.serviceId));
  const missing = [...new Set(onTarget.map((l) => l.serviceId))].filter((s) => !started.has(s));
  const redeployed = await redeployLinked(
    deps,
    target,
    missing,
    `move of data service ${ds.name} to a dedicated server (finished by the sweep)`,
  );
  const releaseIds = [...moved.releaseIds, ...redeployed.releases.map((r) => r.releaseId)];
  await deps.store.withOrg(ds.orgId, async (repos) => {
    if (redeployed.releases.length > 0)
      await repos.dataServices.setMove(ds.id, moved, { ...moved, releaseIds });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'data_service.moved',
      targetType: 'data_service',
      targetId: ds.id,
      data: {
        name: ds.name,
        to: target.id,
        backupId: move.backupId,
        links: onTarget.map((l) => l.envName),
        releases: releaseIds,
        notRedeployed: redeployed.skipped,
        sharedCopy: 'kept, unlinked, until confirm-move',
        swept: `${stopped} during step ${move.step}; releases reading the new server had started, so the sweep finished the move instead of undoing it`,
      },
    });
  });
  deps.logger.error(
    { orgId: ds.orgId, dataServiceId: ds.id, step: move.step },
    'a stale move had started its redeploys; the sweep finished it',
  );
  return true;
}

/** Queues the removal of the half-made server (container, volume, row), as a delete does. */
async function sendDelete(deps: DataServiceDeps, target: DataService): Promise<void> {
  const message: DataServiceWorkMessage = {
    orgId: target.orgId,
    dataServiceId: target.id,
    op: 'delete',
  };
  try {
    if (!deps.queue) throw new Error('this process has no queue');
    await deps.queue.send(dataServiceWorkQueue, message, {
      idempotencyKey: `${target.id}:delete`,
      group: target.id,
      maxAttempts: 10,
    });
  } catch (e) {
    const reason = `could not queue the removal of the half-made server: ${e instanceof Error ? e.message : String(e)}`;
    deps.logger.error({ dataServiceId: target.id, reason }, 'stale move: removal not queued');
    await deps.store.withOrg(target.orgId, (repos) =>
      repos.dataServices.update(target.id, {
        status: 'failed',
        error: reason,
        updatedAt: deps.clock.now().toISOString(),
      }),
    );
  }
}
