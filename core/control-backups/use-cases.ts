/**
 * The operator's side of the control plane's own backups: list them with their drills,
 * back up or drill now, change the schedule and retention, and restore a backup (this
 * install's or another's, with that install's vault key) into a new database. Operators
 * only: the control plane's database holds every org's data.
 */
import { isOperator } from '../auth/use-cases.ts';
import type { Principal } from '../deps.ts';
import { CoreError, InvalidInput, NotFound } from '../errors.ts';
import type { ControlBackup, ControlBackupManifest, ControlBackupSettings } from '../models.ts';
import {
  controlBackupWorkQueue,
  type ControlBackupDeps,
  type ControlBackupWorkMessage,
} from './deps.ts';
import {
  checkDatabaseName,
  checkSettings,
  controlBackupKeyContext,
  defaultControlBackupSettings,
} from './plan.ts';
import {
  compareTables,
  controlBackupsMissing,
  newControlBackup,
  registerControlBackupSchedule,
  verifiedControlDump,
} from './work.ts';
import type { CoreDeps } from '../deps.ts';

type Deps = Pick<CoreDeps, 'store' | 'config'> & { controlBackups?: ControlBackupDeps };

/** A control-plane backup as the API shows it: never its sealed key. */
export type ControlBackupView = Omit<ControlBackup, 'sealedDataKey' | 'manifest'> & {
  tables: Record<string, number> | null;
  serverVersion: string | null;
};

export const controlBackupView = ({
  sealedDataKey: _k,
  manifest,
  ...b
}: ControlBackup): ControlBackupView => ({
  ...b,
  tables: manifest?.tables ?? null,
  serverVersion: manifest?.serverVersion ?? null,
});

async function requireOperator(deps: Deps, principal: Principal): Promise<void> {
  if (!(await isOperator(deps, principal)))
    throw new CoreError(
      'forbidden',
      'forbidden',
      "only an operator of this installation may see or change the control plane's backups (a signed-in person, never an API key)",
    );
}

/** The wired deps, or a 409 saying why this install keeps no control-plane backups. */
function wired(deps: Deps): ControlBackupDeps & Required<Pick<ControlBackupDeps, 'queue'>> {
  const cb = deps.controlBackups;
  const missing = cb ? controlBackupsMissing(cb) : 'control-plane backups are not wired here';
  if (!cb || missing || !cb.queue)
    throw new CoreError(
      'conflict',
      'control_backups_unavailable',
      missing ?? 'no queue to run them',
    );
  return cb as ControlBackupDeps & Required<Pick<ControlBackupDeps, 'queue'>>;
}

async function settingsOf(cb: ControlBackupDeps): Promise<ControlBackupSettings> {
  return (
    (await cb.store.controlBackups!.settings()) ??
    defaultControlBackupSettings(cb.clock.now().toISOString())
  );
}

/** Backups newest first with their drills, the settings, and whether they can run here. */
export async function listControlBackups(
  deps: Deps,
  principal: Principal,
): Promise<{
  available: boolean;
  unavailableReason: string | null;
  settings: ControlBackupSettings | null;
  items: ControlBackupView[];
}> {
  await requireOperator(deps, principal);
  const cb = deps.controlBackups;
  const missing = cb ? controlBackupsMissing(cb) : 'control-plane backups are not wired here';
  if (!cb?.store.controlBackups)
    return { available: false, unavailableReason: missing, settings: null, items: [] };
  const rows = await cb.store.controlBackups.list();
  return {
    available: missing === null,
    unavailableReason: missing,
    settings: await settingsOf(cb),
    items: rows.reverse().map(controlBackupView),
  };
}

export async function getControlBackup(
  deps: Deps,
  principal: Principal,
  id: string,
): Promise<ControlBackupView> {
  await requireOperator(deps, principal);
  const row = await deps.controlBackups?.store.controlBackups?.get(id);
  if (!row) throw new NotFound('control_backup', id);
  return controlBackupView(row);
}

/** Backs up now (202): the worker dumps, stores, writes the manifest, then drills it. */
export async function requestControlBackup(
  deps: Deps,
  principal: Principal,
): Promise<ControlBackupView> {
  await requireOperator(deps, principal);
  const cb = wired(deps);
  const row = await newControlBackup({ ...cb, backupCodec: cb.backupCodec! }, 'manual');
  await cb.store.controlBackups!.insert(row);
  await cb.queue.send(
    controlBackupWorkQueue,
    { op: 'backup', backupId: row.id, trigger: 'manual' } satisfies ControlBackupWorkMessage,
    { idempotencyKey: `${row.id}:backup`, maxAttempts: 1 },
  );
  cb.logger.info({ event: 'backup.requested', backupId: row.id }, 'control-plane backup requested');
  return controlBackupView(row);
}

/** Drills a completed backup again now (202). */
export async function requestControlDrill(
  deps: Deps,
  principal: Principal,
  id: string,
): Promise<ControlBackupView> {
  await requireOperator(deps, principal);
  const cb = wired(deps);
  const row = await cb.store.controlBackups!.get(id);
  if (!row) throw new NotFound('control_backup', id);
  if (row.status !== 'completed')
    throw new CoreError(
      'conflict',
      'control_backup_not_completed',
      `backup ${id} is ${row.status}: only a completed backup (with its manifest) can be drilled`,
    );
  await cb.queue.send(
    controlBackupWorkQueue,
    { op: 'drill', backupId: id } satisfies ControlBackupWorkMessage,
    { idempotencyKey: `${id}:drill:${cb.ids.newId('drl')}`, maxAttempts: 1 },
  );
  return controlBackupView(row);
}

/** Changes the schedule (five-field UTC cron, at most hourly) and retention (0..max per period). */
export async function updateControlBackupSettings(
  deps: Deps,
  principal: Principal,
  input: { schedule?: string | undefined; retention?: unknown },
): Promise<ControlBackupSettings> {
  await requireOperator(deps, principal);
  const cb = wired(deps);
  const next = checkSettings(await settingsOf(cb), input, cb.clock.now().toISOString());
  await cb.store.controlBackups!.saveSettings(next);
  await registerControlBackupSchedule(cb);
  cb.logger.info({ event: 'backup.settings_changed', ...next }, 'control-plane backup settings');
  return next;
}

export interface ControlRestoreInput {
  /** A backup of this install, by id… */
  backupId?: string | undefined;
  /** …or any control-plane manifest in this install's object store (another install's, copied in). */
  manifestKey?: string | undefined;
  /** The other install's vault key (its key file's 44 base64 characters); this install's when absent. */
  vaultKey?: string | undefined;
  /** The new database to restore into, on the same PostgreSQL server; must not exist. */
  database: string;
}

/**
 * Restores a control-plane backup into a NEW database on the same server and checks every
 * table's rows against the manifest; the operator then points DATABASE_URL at it (the live
 * database is never overwritten from inside the running control plane). Runs while the
 * request waits: its answer is the check.
 */
export async function restoreControlBackup(
  deps: Deps,
  principal: Principal,
  input: ControlRestoreInput,
): Promise<{
  backupId: string;
  database: string;
  tables: Record<string, number>;
  matchesManifest: boolean;
  problems: string | null;
}> {
  await requireOperator(deps, principal);
  const cb = wired(deps);
  const database = checkDatabaseName(input.database);
  if ((input.backupId === undefined) === (input.manifestKey === undefined))
    throw new InvalidInput(
      "give exactly one of backupId (this install's) or manifestKey (any in the object store)",
      {
        field: 'backupId',
      },
    );
  let manifestKey = input.manifestKey;
  if (input.backupId !== undefined) {
    const row = await cb.store.controlBackups!.get(input.backupId);
    if (!row) throw new NotFound('control_backup', input.backupId);
    if (row.status !== 'completed')
      throw new CoreError(
        'conflict',
        'control_backup_not_completed',
        `backup ${row.id} is ${row.status}: only a completed backup can be restored`,
      );
    manifestKey = row.manifestKey;
  }
  const manifest = await readManifest(cb, manifestKey!);
  const dataKey = await openDataKey(cb, manifest, input.vaultKey);
  let decoded;
  try {
    decoded = await verifiedControlDump(
      { objects: cb.objects!, backupCodec: cb.backupCodec! },
      manifest,
      dataKey,
    );
  } catch (e) {
    throw new CoreError('conflict', 'backup_corrupted', (e as Error).message);
  }
  const restored = await cb.database!.restore(decoded.output, database, {
    keep: true,
    timeoutMs: cb.config.timeoutMs ?? 2 * 60 * 60_000,
  });
  const problems = compareTables(manifest.tables, restored.tables);
  cb.logger.warn(
    { event: 'control_backup.restored', backupId: manifest.backupId, database, problems },
    'a control-plane backup was restored into a new database',
  );
  return {
    backupId: manifest.backupId,
    database,
    tables: restored.tables,
    matchesManifest: problems === null,
    problems,
  };
}

async function readManifest(cb: ControlBackupDeps, key: string): Promise<ControlBackupManifest> {
  if (!/^control-backups\/[A-Za-z0-9_-]+\/manifest\.json$/.test(key))
    throw new InvalidInput(
      `manifestKey: ${JSON.stringify(key)} is not a control-plane manifest's key (control-backups/<backup id>/manifest.json)`,
      { field: 'manifestKey' },
    );
  const bytes = await cb.objects!.get(key);
  if (!bytes) throw new NotFound('manifest', key);
  let manifest: ControlBackupManifest;
  try {
    manifest = JSON.parse(new TextDecoder().decode(bytes)) as ControlBackupManifest;
  } catch {
    throw new InvalidInput(`manifestKey: ${key} is not JSON`, { field: 'manifestKey' });
  }
  if (manifest.kind !== 'control-plane' || manifest.format !== 1 || !manifest.sealedDataKey)
    throw new InvalidInput(`manifestKey: ${key} is not a control-plane backup's manifest`, {
      field: 'manifestKey',
    });
  return manifest;
}

async function openDataKey(
  cb: ControlBackupDeps,
  manifest: ControlBackupManifest,
  vaultKey: string | undefined,
): Promise<string> {
  const context = controlBackupKeyContext(manifest.backupId);
  if (vaultKey === undefined) {
    try {
      return await cb.vault.open(manifest.sealedDataKey, context);
    } catch {
      throw new CoreError(
        'conflict',
        'backup_key_missing',
        `backup ${manifest.backupId}'s data key does not open with this install's vault key; give the vault key of the install that made it (vaultKey)`,
      );
    }
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(vaultKey.trim()))
    throw new InvalidInput(
      'vaultKey: must be the other install\'s key file: 32 bytes as base64 (44 characters ending in "=")',
      { field: 'vaultKey' },
    );
  if (!cb.backupCodec?.openSealedWith)
    throw new CoreError(
      'conflict',
      'backup_key_missing',
      'this install cannot open keys of another vault',
    );
  try {
    return cb.backupCodec.openSealedWith(manifest.sealedDataKey, context, vaultKey.trim());
  } catch {
    throw new CoreError(
      'conflict',
      'backup_key_mismatch',
      `vaultKey does not open backup ${manifest.backupId}'s data key: it is not the key of the install that made it`,
    );
  }
}
