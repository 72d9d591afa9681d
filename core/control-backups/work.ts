/**
 * The worker's side of the control plane's own backups (queue `control-backup-work`): the
 * database read in one snapshot, `pg_dump -Fc` streamed through the backup codec (gzip,
 * AES-256-GCM under a per-backup data key sealed by the KeyVault) into the ObjectStore,
 * the manifest last; then a drill into a scratch database on the same server, its row
 * counts compared with the manifest, and retention. A failure is recorded once, loudly
 * (`backup.failed`, `drill.failed`), never retried: the next schedule comes anyway.
 */
import { backupsToDelete } from '../data-services/backups.ts';
import type { ControlBackup, ControlBackupManifest } from '../models.ts';
import type { ControlBackupRepo, MessageHandler } from '../ports.ts';
import {
  controlBackupScheduleName,
  controlBackupWorkQueue,
  type ControlBackupDeps,
  type ControlBackupEvent,
  type ControlBackupWorkMessage,
} from './deps.ts';
import {
  controlBackupKeyContext,
  controlBackupKeys,
  defaultControlBackupSettings,
  drillDatabaseName,
} from './plan.ts';

type Ready = ControlBackupDeps &
  Required<Pick<ControlBackupDeps, 'database' | 'objects' | 'backupCodec'>> & {
    repo: ControlBackupRepo;
  };

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
const timeoutOf = (deps: ControlBackupDeps) => deps.config.timeoutMs ?? 2 * 60 * 60_000;

/** What is missing for control-plane backups to run here, or null when nothing is. */
export function controlBackupsMissing(deps: ControlBackupDeps): string | null {
  if (deps.config.unavailableReason) return deps.config.unavailableReason;
  if (!deps.store.controlBackups) return 'this store keeps no control-plane backups';
  if (!deps.objects || !deps.backupCodec) return 'no object store is configured for backups';
  if (!deps.database)
    return 'this process has no PostgreSQL client tools configured (CONTROL_BACKUP_DATABASE_URL, PG_BIN_DIR)';
  return null;
}

function ready(deps: ControlBackupDeps): Ready {
  const missing = controlBackupsMissing(deps);
  if (missing) throw new Error(`control-plane backups cannot run: ${missing}`);
  return { ...(deps as Ready), repo: deps.store.controlBackups! };
}

function emit(deps: ControlBackupDeps, event: ControlBackupEvent, data: Record<string, unknown>) {
  const failed = event.endsWith('.failed');
  deps.logger[failed ? 'error' : 'info'](
    { event, subject: 'control-plane', ...data },
    `control-plane ${event}`,
  );
  deps.onEvent?.(event, data);
}

/** A new backup row in `running`, with its keys and a fresh data key sealed by the vault. */
export async function newControlBackup(
  deps: Pick<ControlBackupDeps, 'ids' | 'clock' | 'vault'> & {
    backupCodec: NonNullable<ControlBackupDeps['backupCodec']>;
  },
  trigger: ControlBackup['trigger'],
): Promise<ControlBackup> {
  const id = deps.ids.newId('cbk');
  return {
    id,
    trigger,
    status: 'running',
    error: null,
    ...controlBackupKeys(id),
    sealedDataKey: await deps.vault.seal(
      deps.backupCodec.newDataKey(),
      controlBackupKeyContext(id),
    ),
    rawBytes: null,
    storedBytes: null,
    sha256: null,
    manifest: null,
    startedAt: deps.clock.now().toISOString(),
    finishedAt: null,
    drillStatus: null,
    drillError: null,
    drillRtoMs: null,
    drillRpoMs: null,
    drilledAt: null,
  };
}

/** The handler of `control-backup-work`. */
export function handleControlBackupWork(
  deps: ControlBackupDeps,
): MessageHandler<ControlBackupWorkMessage> {
  return async (m) => {
    if (m.payload.op === 'backup') await runControlBackup(deps, m.payload);
    else if (m.payload.op === 'drill' && m.payload.backupId)
      await runControlDrill(deps, m.payload.backupId);
  };
}

/**
 * Runs one backup: the named row, or a new one when the schedule fired. Answers the row as
 * it ended (completed or failed), or null when there was nothing to do.
 */
export async function runControlBackup(
  deps: ControlBackupDeps,
  m: ControlBackupWorkMessage,
): Promise<ControlBackup | null> {
  const repo = deps.store.controlBackups;
  let row: ControlBackup | null = null;
  try {
    if (!repo) throw new Error('this store keeps no control-plane backups');
    if (m.backupId) {
      row = await repo.get(m.backupId);
      if (!row || row.status !== 'running') return null; // done (or given up) earlier
    } else if (deps.backupCodec) {
      row = await newControlBackup({ ...deps, backupCodec: deps.backupCodec }, 'schedule');
      await repo.insert(row);
    }
    const d = ready(deps);
    row = await takeControlBackup(d, row!);
  } catch (e) {
    const reason = messageOf(e);
    if (row && repo) {
      const patch = { status: 'failed' as const, error: reason, finishedAt: now(deps) };
      await repo.update(row.id, patch);
      row = { ...row, ...patch };
    }
    emit(deps, 'backup.failed', { backupId: row?.id ?? null, reason });
    return row;
  }
  await deps.queue?.send(
    controlBackupWorkQueue,
    { op: 'drill', backupId: row.id } satisfies ControlBackupWorkMessage,
    { idempotencyKey: `${row.id}:drill`, maxAttempts: 1 },
  );
  return row;
}

const now = (deps: Pick<ControlBackupDeps, 'clock'>) => deps.clock.now().toISOString();

async function takeControlBackup(deps: Ready, row: ControlBackup): Promise<ControlBackup> {
  const dataKey = await deps.vault.open(row.sealedDataKey, controlBackupKeyContext(row.id));
  const takenAt = now(deps);
  const dump = await deps.database.dump({ timeoutMs: timeoutOf(deps) });
  const coded = deps.backupCodec.encode(dump.stdout, dataKey);
  try {
    await deps.objects.putStream(row.objectKey, coded.output, {
      contentType: 'application/octet-stream',
    });
  } catch (e) {
    // An object store that failed early leaves pg_dump waiting on its stdout: stop it.
    dump.abort();
    await deps.objects.delete(row.objectKey).catch(() => undefined);
    throw new Error(`storing the backup failed: ${messageOf(e)}`, { cause: e });
  }
  const totals = coded.totals();
  const manifest: ControlBackupManifest = {
    format: 1,
    kind: 'control-plane',
    backupId: row.id,
    serverVersion: dump.serverVersion,
    tool: 'pg_dump -Fc',
    encoding: 'gzip+aes-256-gcm',
    sealedDataKey: row.sealedDataKey,
    objectKey: row.objectKey,
    rawBytes: totals.inBytes,
    storedBytes: totals.outBytes,
    sha256: totals.outSha256,
    rawSha256: totals.inSha256,
    tables: dump.tables,
    takenAt,
  };
  try {
    await deps.objects.put(row.manifestKey, JSON.stringify(manifest, null, 2), {
      contentType: 'application/json',
    });
  } catch (e) {
    await deps.objects.delete(row.objectKey).catch(() => undefined);
    throw new Error(`storing the manifest failed: ${messageOf(e)}`, { cause: e });
  }
  const patch = {
    status: 'completed' as const,
    rawBytes: totals.inBytes,
    storedBytes: totals.outBytes,
    sha256: totals.outSha256,
    manifest,
    finishedAt: now(deps),
  };
  await deps.repo.update(row.id, patch);
  emit(deps, 'backup.completed', {
    backupId: row.id,
    trigger: row.trigger,
    rawBytes: totals.inBytes,
    storedBytes: totals.outBytes,
  });
  return { ...row, ...patch };
}

/** Reads the manifest back from the store and checks it is this backup's. */
async function manifestOf(deps: Ready, row: ControlBackup): Promise<ControlBackupManifest> {
  if (row.status !== 'completed')
    throw new Error(`backup ${row.id} is ${row.status}: only a completed backup has a manifest`);
  const bytes = await deps.objects.get(row.manifestKey);
  if (!bytes) throw new Error(`backup ${row.id} has no manifest in the object store`);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as ControlBackupManifest;
  if (manifest.backupId !== row.id || manifest.sha256 !== row.sha256)
    throw new Error(`the manifest of backup ${row.id} does not match its record`);
  return manifest;
}

/**
 * The stored dump, its SHA-256 checked against the manifest first (one read), then decoded
 * as it streams (a second read) with `dataKey`.
 */
export async function verifiedControlDump(
  deps: Pick<Ready, 'objects' | 'backupCodec'>,
  manifest: Pick<ControlBackupManifest, 'backupId' | 'objectKey' | 'sha256' | 'storedBytes'>,
  dataKey: string,
) {
  const first = await deps.objects.getStream(manifest.objectKey);
  if (!first)
    throw new Error(`backup ${manifest.backupId}: the dump is missing from the object store`);
  const { sha256, bytes } = await deps.backupCodec.sha256(first);
  if (sha256 !== manifest.sha256 || bytes !== manifest.storedBytes)
    throw new Error(
      `backup ${manifest.backupId} is corrupted: the stored dump's SHA-256 is ${sha256} (${bytes} bytes), the manifest says ${manifest.sha256} (${manifest.storedBytes} bytes)`,
    );
  const again = await deps.objects.getStream(manifest.objectKey);
  if (!again)
    throw new Error(`backup ${manifest.backupId}: the dump vanished from the object store`);
  return deps.backupCodec.decode(again, dataKey);
}

/** Why restored counts differ from the manifest's, or null when every table matches. */
export function compareTables(
  want: Record<string, number>,
  got: Record<string, number>,
): string | null {
  const problems: string[] = [];
  for (const t of [...new Set([...Object.keys(want), ...Object.keys(got)])].sort()) {
    if (want[t] !== got[t])
      problems.push(
        `table ${t}: ${want[t] === undefined ? 'not in the backup' : `${want[t]} rows in the manifest`}, ${got[t] === undefined ? 'missing after restore' : `${got[t]} restored`}`,
      );
  }
  return problems.length ? problems.join('; ') : null;
}

/**
 * Restores a completed backup into a scratch database on the same server, compares every
 * table's rows with the manifest, drops it; records pass or fail, then applies retention.
 */
export async function runControlDrill(
  deps: ControlBackupDeps,
  backupId: string,
): Promise<ControlBackup | null> {
  const repo = deps.store.controlBackups;
  const row = await repo?.get(backupId);
  if (!repo || !row || row.status !== 'completed') return null;
  const started = deps.clock.now();
  await repo.update(row.id, {
    drillStatus: 'running',
    drillError: null,
    drilledAt: started.toISOString(),
  });
  let failure: string | null;
  let manifest: ControlBackupManifest | null = null;
  try {
    const d = ready(deps);
    manifest = await manifestOf(d, row);
    const key = await deps.vault.open(row.sealedDataKey, controlBackupKeyContext(row.id));
    const decoded = await verifiedControlDump(d, manifest, key);
    const restored = await d.database.restore(decoded.output, drillDatabaseName(row.id), {
      keep: false,
      timeoutMs: timeoutOf(deps),
    });
    if (decoded.totals().outSha256 !== manifest.rawSha256)
      throw new Error(
        `the decrypted dump's SHA-256 ${decoded.totals().outSha256} is not the manifest's ${manifest.rawSha256}`,
      );
    failure = compareTables(manifest.tables, restored.tables);
  } catch (e) {
    failure = messageOf(e);
  }
  const rtoMs = deps.clock.now().getTime() - started.getTime();
  const rpoMs = manifest ? started.getTime() - new Date(manifest.takenAt).getTime() : null;
  const patch = {
    drillStatus: failure ? ('failed' as const) : ('passed' as const),
    drillError: failure,
    drillRtoMs: rtoMs,
    drillRpoMs: rpoMs,
  };
  await repo.update(row.id, patch);
  emit(deps, failure ? 'drill.failed' : 'drill.passed', {
    backupId: row.id,
    rtoMs,
    rpoMs,
    ...(failure ? { reason: failure } : {}),
  });
  await applyControlRetention(deps).catch((e: unknown) =>
    deps.logger.warn({ err: messageOf(e) }, 'control-plane backup retention did not run'),
  );
  return { ...row, ...patch };
}

/** Deletes what retention lets go: the manifest first (so it stops counting), then the dump. */
export async function applyControlRetention(deps: ControlBackupDeps): Promise<string[]> {
  const repo = deps.store.controlBackups;
  if (!repo || !deps.objects) return [];
  const settings = (await repo.settings()) ?? defaultControlBackupSettings(now(deps));
  const rows = await repo.list();
  const doomed = backupsToDelete(rows, settings.retention);
  for (const id of doomed) {
    const row = rows.find((r) => r.id === id)!;
    await deps.objects.delete(row.manifestKey);
    await deps.objects.delete(row.objectKey);
    await repo.delete(id);
  }
  return doomed;
}

/**
 * Registers the control plane's schedule with the Scheduler (at worker start and when the
 * settings change); a no-op where control-plane backups cannot run (the cloud).
 */
export async function registerControlBackupSchedule(deps: ControlBackupDeps): Promise<void> {
  if (!deps.scheduler || controlBackupsMissing(deps)) return;
  const settings =
    (await deps.store.controlBackups!.settings()) ?? defaultControlBackupSettings(now(deps));
  const message: ControlBackupWorkMessage = { op: 'backup', trigger: 'schedule' };
  await deps.scheduler.schedule(
    controlBackupScheduleName,
    settings.schedule,
    controlBackupWorkQueue,
    message,
  );
}
