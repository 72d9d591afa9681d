import { recordAudit } from '../deps.ts';
import type { DataServiceBackup } from '../models.ts';
import { dataWorkerActor, type DataServiceDeps } from './deps.ts';

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
