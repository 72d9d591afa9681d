import { CoreError, InvalidInput, NotFound, Unavailable } from '../errors.ts';
import type { BackupRetention, DataService, DataServiceBackup, DrillSchedule } from '../models.ts';
import type { BackupCodec, EventQueue, ObjectStore, Scheduler } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type OrgPrincipal,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { newBackupRow } from './backup-work.ts';
import {
  backupKeyContext,
  checkBackupSchedule,
  checkDrillSchedule,
  checkRetention,
  defaultDrillSchedule,
  defaultRetention,
} from './backups.ts';
import { dataServiceWorkQueue, type DataServiceWorkMessage } from './deps.ts';
import { dataServiceSecretContext } from './plan.ts';
import { dataServiceView, type DataServiceView } from './use-cases.ts';
import { registerBackupSchedule } from './work.ts';

type Deps = CoreDeps & {
  queue: EventQueue;
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  scheduler?: Scheduler;
};

/** A backup as the API shows it: its manifest and its newest drill, never its sealed key. */
export type BackupView = Omit<DataServiceBackup, 'sealedDataKey' | 'manifest'> & {
  tables: Record<string, number> | null;
  keys: number | null;
  serverVersion: string | null;
};

export const backupView = ({
  sealedDataKey: _k,
  manifest,
  ...b
}: DataServiceBackup): BackupView => ({
  ...b,
  tables: manifest?.tables ?? null,
  keys: manifest?.keys ?? null,
  serverVersion: manifest?.serverVersion ?? null,
});

export interface DrillView {
  backupId: string;
  status: NonNullable<DataServiceBackup['drillStatus']>;
  error: string | null;
  rtoMs: number | null;
  rpoMs: number | null;
  at: string | null;
}

function codecOf(deps: Deps): BackupCodec {
  if (!deps.backupCodec || !deps.objects)
    throw new Unavailable('object_store', 'no object store is configured for backups');
  return deps.backupCodec;
}

async function send(deps: Deps, m: DataServiceWorkMessage, key: string): Promise<void> {
  await deps.queue.send(dataServiceWorkQueue, m, { idempotencyKey: key, group: m.dataServiceId });
}

async function readyService(deps: Deps, orgId: string, id: string): Promise<DataService> {
  const ds = await deps.store.withOrg(orgId, (r) => r.dataServices.get(id));
  if (!ds) throw new NotFound('data_service', id);
  if (ds.status !== 'ready')
    throw new CoreError(
      'conflict',
      'data_service_not_ready',
      `data service ${ds.name} is ${ds.status}; backups and restores need it ready`,
    );
  return ds;
}

/** Takes a backup now (202): the worker dumps, stores, writes the manifest, then drills it. */
export async function requestBackup(
  deps: Deps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<BackupView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const codec = codecOf(deps);
  const ds = await readyService(deps, p.orgId, id);
  const row = await newBackupRow({ ...deps, backupCodec: codec }, ds, 'manual');
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.dataServiceBackups.insert(row);
    await recordAudit(deps, repos, p, ctx, {
      action: 'backup.requested',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, backupId: row.id },
    });
  });
  await send(
    deps,
    { orgId: p.orgId, dataServiceId: id, op: 'backup', backupId: row.id, trigger: 'manual' },
    `${row.id}:backup`,
  );
  return backupView(row);
}

export async function listBackups(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<{
  items: BackupView[];
  backupSchedule: string;
  backupRetention: BackupRetention;
  drillSchedule: DrillSchedule;
}> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    const rows = await repos.dataServiceBackups.list(id);
    return {
      items: rows.reverse().map(backupView),
      backupSchedule: ds.backupSchedule,
      backupRetention: ds.backupRetention ?? { ...defaultRetention },
      drillSchedule: ds.drillSchedule ?? defaultDrillSchedule,
    };
  });
}

/** Restore drills, newest first: each backup's newest drill with its RTO and RPO. */
export async function listDrills(
  deps: CoreDeps,
  principal: Principal,
  id: string,
): Promise<{ items: DrillView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.dataServices.get(id))) throw new NotFound('data_service', id);
    const rows = await repos.dataServiceBackups.list(id);
    return {
      items: rows
        .reverse()
        .filter((b) => b.drillStatus !== null)
        .map((b) => ({
          backupId: b.id,
          status: b.drillStatus!,
          error: b.drillError,
          rtoMs: b.drillRtoMs,
          rpoMs: b.drillRpoMs,
          at: b.drilledAt,
        })),
    };
  });
}

/**
 * One backup setting of a data service, changed by a person: the row read in the org (404
 * when absent), `next` given it to say the value before and after, the row updated with its
 * time and the change audited as `action`. The caller has checked the role and the input.
 */
async function changeBackupSetting<
  K extends 'backupSchedule' | 'backupRetention' | 'drillSchedule',
>(
  deps: CoreDeps,
  p: OrgPrincipal,
  id: string,
  ctx: RequestContext,
  action: string,
  key: K,
  next: (ds: DataService) => { from: unknown; to: DataService[K] },
): Promise<DataService> {
  return deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    const { from, to } = next(ds);
    const patch = { [key]: to } as Pick<DataService, K>;
    await repos.dataServices.update(id, { ...patch, updatedAt: deps.clock.now().toISOString() });
    await recordAudit(deps, repos, p, ctx, {
      action,
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, from, to },
    });
    return { ...ds, ...patch };
  });
}

/** Changes when scheduled backups run (five-field UTC cron, at most hourly). */
export async function setBackupSchedule(
  deps: Deps,
  principal: Principal,
  id: string,
  input: { cron: string },
  ctx: RequestContext,
): Promise<{ backupSchedule: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const cron = checkBackupSchedule(input.cron);
  const ds = await changeBackupSetting(
    deps,
    p,
    id,
    ctx,
    'backup.schedule_changed',
    'backupSchedule',
    (ds) => ({ from: ds.backupSchedule, to: cron }),
  );
  if (ds.status === 'ready') await registerBackupSchedule(deps, ds);
  return { backupSchedule: cron };
}

/**
 * Changes which backups are restore-drilled: every one, or `weekly` (one a week, the next
 * backup after a failed drill, and every backup a person asks for; `drillDecision`). Read
 * by the worker when a backup completes, so nothing is scheduled: both modes alike.
 */
export async function setDrillSchedule(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  input: { drillSchedule: unknown },
  ctx: RequestContext,
): Promise<{ drillSchedule: DrillSchedule }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const to = checkDrillSchedule(input.drillSchedule);
  await changeBackupSetting(deps, p, id, ctx, 'drill.schedule_changed', 'drillSchedule', (ds) => ({
    from: ds.drillSchedule ?? defaultDrillSchedule,
    to,
  }));
  return { drillSchedule: to };
}

/**
 * Changes how many backups retention keeps (the newest of each of the last N days, ISO
 * weeks and months; periods left out keep their current value); applied after each drill.
 */
export async function setBackupRetention(
  deps: Deps,
  principal: Principal,
  id: string,
  input: Partial<BackupRetention>,
  ctx: RequestContext,
): Promise<{ backupRetention: BackupRetention }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  checkRetention(input, 'backupRetention');
  const ds = await changeBackupSetting(
    deps,
    p,
    id,
    ctx,
    'backup.retention_changed',
    'backupRetention',
    (ds) => {
      const from = ds.backupRetention ?? { ...defaultRetention };
      return { from, to: checkRetention({ ...from, ...input }, 'backupRetention') };
    },
  );
  return { backupRetention: ds.backupRetention! };
}

/**
 * Restores a completed backup: into a new data service of the same engine (previewed before
 * anything switches to it), or in place (the name typed again; the worker backs up the
 * current state first). Refused up front when the backup's key does not open here.
 */
export async function restoreBackup(
  deps: Deps,
  principal: Principal,
  id: string,
  input: {
    backupId: string;
    target: 'new' | 'in_place';
    confirm?: string | undefined;
    name?: string | undefined;
    dedicated?: boolean | undefined;
  },
  ctx: RequestContext,
): Promise<{ backupId: string; target: 'new' | 'in_place'; dataService: DataServiceView }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  codecOf(deps);
  const ds = await readyService(deps, p.orgId, id);
  const backup = await deps.store.withOrg(p.orgId, (r) => r.dataServiceBackups.get(input.backupId));
  if (!backup || backup.dataServiceId !== id) throw new NotFound('backup', input.backupId);
  if (backup.status !== 'completed')
    throw new InvalidInput(
      `backupId: backup ${backup.id} is ${backup.status}; only a completed backup (with its manifest) can be restored`,
      { field: 'backupId' },
    );
  try {
    await deps.vault.open(backup.sealedDataKey, backupKeyContext(p.orgId, backup.id));
  } catch {
    throw new CoreError(
      'conflict',
      'backup_key_missing',
      `backup ${backup.id}'s data key does not open with this install's vault key; restore it where that key is`,
    );
  }
  if (input.target === 'in_place' && input.confirm !== ds.name)
    throw new InvalidInput(
      `confirm: type the data service's name (${ds.name}) to overwrite its data with backup ${backup.id}; its current state is backed up first`,
      { field: 'confirm' },
    );
  if (input.dedicated && input.target !== 'new')
    throw new InvalidInput('dedicated: applies to target new (a new server of its own)', {
      field: 'dedicated',
    });
  const target =
    input.target === 'new'
      ? await newRestoreTarget(deps, ds, {
          name: input.name ?? `${ds.name}-restored-${backup.id.slice(-6).toLowerCase()}`,
          dedicated: input.dedicated ?? false,
        })
      : ds;
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (input.target === 'new') await repos.dataServices.insert(target);
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.restore_requested',
      targetType: 'data_service',
      targetId: target.id,
      data: {
        backupId: backup.id,
        from: ds.id,
        target: input.target,
        ...(input.target === 'new' ? { mode: target.sharedServerId ? 'shared' : 'dedicated' } : {}),
      },
    });
  });
  await send(
    deps,
    {
      orgId: p.orgId,
      dataServiceId: id,
      op: 'restore',
      backupId: backup.id,
      targetId: target.id,
    },
    `${backup.id}:restore:${target.id}:${deps.ids.newId('rst')}`,
  );
  return { backupId: backup.id, target: input.target, dataService: dataServiceView(target) };
}

/**
 * The record of a new data service a backup of `ds` restores into (provisioned by the
 * restore): same engine, version, node and settings, its own id and sealed password. A
 * database on a shared server restores beside it on the same server, or (`dedicated`, what
 * moving it out does) into a server of its own.
 */
export async function newRestoreTarget(
  deps: Pick<CoreDeps, 'ids' | 'clock' | 'vault'>,
  ds: DataService,
  opts: { name: string; dedicated: boolean },
): Promise<DataService> {
  const newId = deps.ids.newId('dat');
  const password = deps.ids.newSecret(24).replace(/[^A-Za-z0-9]/g, 'x');
  const now = deps.clock.now().toISOString();
  return {
    ...ds,
    id: newId,
    name: opts.name,
    status: 'provisioning',
    error: null,
    sealedPassword: await deps.vault.seal(password, dataServiceSecretContext(ds.orgId, newId)),
    removeVolume: false,
    pendingSealedPassword: null,
    passwordRotatedAt: null,
    sharedServerId: opts.dedicated ? null : (ds.sharedServerId ?? null),
    move: null,
    createdAt: now,
    updatedAt: now,
  };
}

export const extensions: Record<DataService['engine'], string> = {
  mariadb: 'sql',
  postgres: 'pgdump',
  redis: 'rdb',
};

/**
 * A backup's dump, decrypted and decompressed as it streams (`.sql`, pg_restore's custom
 * format, or an RDB file). The stored object's checksum is checked first, so a corrupted
 * backup is a 409, not a broken file.
 */
export async function downloadBackup(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
  ctx: RequestContext,
  options: { maxResponseBytes?: number } = {},
): Promise<{ filename: string; body: AsyncIterable<Uint8Array> }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const codec = codecOf(deps);
  const objects = deps.objects!;
  const { ds, backup } = await deps.store.withOrg(p.orgId, async (r) => ({
    ds: await r.dataServices.get(id),
    backup: await r.dataServiceBackups.get(backupId),
  }));
  if (!ds) throw new NotFound('data_service', id);
  if (!backup || backup.dataServiceId !== id) throw new NotFound('backup', backupId);
  if (backup.status !== 'completed' || !backup.manifest)
    throw new InvalidInput(`backup ${backupId} is ${backup.status}: nothing to download`, {
      field: 'backupId',
    });
  // An API that answers a bounded body (the cloud's Lambda) would cut the stream midway; a
  // clear refusal, naming what does carry it, beats a truncated file or a gateway's 502.
  const max = options.maxResponseBytes;
  if (max !== undefined && backup.manifest.rawBytes > max)
    throw new CoreError(
      'conflict',
      'download_too_large',
      `backup ${backupId}'s dump is ${backup.manifest.rawBytes} bytes and this API answers at most ${max}: ` +
        (objects.direct
          ? `POST /api/data-services/${id}/backups/${backupId}/download-url gives the store's URL and the data key, and the CLI (data-services download) and the dashboard decrypt as they download`
          : 'restore it into a new data service, or export it'),
    );
  const first = await objects.getStream(backup.objectKey);
  if (!first) throw backupMissing(backupId);
  const seen = await codec.sha256(first);
  if (seen.sha256 !== backup.manifest.sha256)
    throw new CoreError(
      'conflict',
      'backup_corrupted',
      `backup ${backupId} is corrupted: its SHA-256 does not match its manifest`,
    );
  const key = await openDataKey(deps, p.orgId, backup);
  const again = await objects.getStream(backup.objectKey);
  if (!again)
    throw new CoreError('conflict', 'backup_missing', `backup ${backupId}'s dump vanished`);
  await auditDownload(deps, p, ctx, ds, backup.id, false);
  return {
    filename: `${ds.name}-${backup.id}.${extensions[ds.engine]}`,
    body: codec.decode(again, key).output,
  };
}

/** The object of a backup whose row says it is stored is not in the store: a 409. */
export const backupMissing = (backupId: string) =>
  new CoreError(
    'conflict',
    'backup_missing',
    `backup ${backupId}'s dump is missing from the object store`,
  );

/** A completed backup's data key, opened by this install's vault; a 409 where it does not open. */
export async function openDataKey(
  deps: Pick<Deps, 'vault'>,
  orgId: string,
  backup: Pick<DataServiceBackup, 'id' | 'sealedDataKey'>,
): Promise<string> {
  try {
    return await deps.vault.open(backup.sealedDataKey, backupKeyContext(orgId, backup.id));
  } catch {
    throw new CoreError(
      'conflict',
      'backup_key_missing',
      `backup ${backup.id}'s data key does not open with this install's vault key`,
    );
  }
}

/**
 * A dump of a tenant's data leaving the platform, streamed or handed to the client with its
 * key (`direct`): who took it is worth a line.
 */
export function auditDownload(
  deps: Deps,
  p: OrgPrincipal,
  ctx: RequestContext,
  ds: Pick<DataService, 'id' | 'name'>,
  backupId: string,
  direct: boolean,
): Promise<void> {
  return deps.store.withOrg(p.orgId, (repos) =>
    recordAudit(deps, repos, p, ctx, {
      action: 'backup.downloaded',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, backupId, direct },
    }),
  );
}
