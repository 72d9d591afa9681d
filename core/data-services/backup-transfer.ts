import { CoreError, InvalidInput, NotFound, Unavailable } from '../errors.ts';
import type { BackupManifest, DataService, DataServiceBackup } from '../models.ts';
import type { BackupCodec, EventQueue, ObjectStore } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type OrgPrincipal,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import {
  auditDownload,
  backupMissing,
  backupView,
  extensions,
  openDataKey,
  type BackupView,
} from './backup-use-cases.ts';
import { sendDrill } from './backup-work.ts';
import { backupKeyContext, backupKeys } from './backups.ts';

/**
 * Backups that move between installs (each with its own vault): an export is the backup's
 * manifest and its data key wrapped under a passphrase the person chooses, beside the stored
 * object as it is (still encrypted under that data key). Another install imports the bundle
 * with the passphrase, reseals the data key with its own KeyVault, takes the object as a
 * stream, and drills it; from there it is a backup like any other of its data service.
 */

type Deps = CoreDeps & { queue: EventQueue; objects?: ObjectStore; backupCodec?: BackupCodec };

/** The export's JSON: what the importing install needs beside the object and the passphrase. */
export interface BackupExport {
  kind: 'selfdevop-data-backup';
  format: 1;
  /** The data key, wrapped under the passphrase (bound to the manifest's object checksum). */
  wrappedKey: string;
  exportedAt: string;
  manifest: Omit<BackupManifest, 'sealedDataKey' | 'objectKey' | 'importedFrom'>;
}

/**
 * What the wrapped key is bound to: a bundle whose manifest names another object (checksum,
 * size, engine, backup) does not open with the right passphrase either.
 */
export const exportKeyContext = (m: BackupExport['manifest']): string =>
  [
    'selfdevop-data-backup:1',
    m.backupId,
    m.engine,
    m.sha256,
    m.storedBytes,
    m.gzipSha256 ?? m.rawSha256 ?? '',
  ].join(':');

function transferCodec(deps: Deps): Required<Pick<BackupCodec, 'wrapKey' | 'unwrapKey'>> {
  const codec = deps.backupCodec;
  if (!codec || !deps.objects)
    throw new Unavailable('object_store', 'no object store is configured for backups');
  if (!codec.wrapKey || !codec.unwrapKey)
    throw new Unavailable('backup_export', 'this backup codec cannot wrap keys');
  return {
    wrapKey: codec.wrapKey.bind(codec),
    unwrapKey: codec.unwrapKey.bind(codec),
  };
}

async function completedBackup(
  deps: Deps,
  orgId: string,
  id: string,
  backupId: string,
): Promise<{ ds: DataService; backup: DataServiceBackup & { manifest: BackupManifest } }> {
  const { ds, backup } = await deps.store.withOrg(orgId, async (r) => ({
    ds: await r.dataServices.get(id),
    backup: await r.dataServiceBackups.get(backupId),
  }));
  if (!ds) throw new NotFound('data_service', id);
  if (!backup || backup.dataServiceId !== id) throw new NotFound('backup', backupId);
  if (backup.status !== 'completed' || !backup.manifest)
    throw new InvalidInput(
      `backupId: backup ${backupId} is ${backup.status}; only a completed backup (with its manifest) can leave this install`,
      { field: 'backupId' },
    );
  return { ds, backup: backup as DataServiceBackup & { manifest: BackupManifest } };
}

/**
 * The export of a completed backup: its manifest without this install's sealed key, and its
 * data key wrapped under `passphrase`. The object itself goes as it is (`backupObject`).
 */
export async function exportBackup(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
  input: { passphrase: string },
  ctx: RequestContext,
): Promise<BackupExport> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const codec = transferCodec(deps);
  const { ds, backup } = await completedBackup(deps, p.orgId, id, backupId);
  const dataKey = await openDataKey(deps, p.orgId, backup);
  const {
    sealedDataKey: _sealed,
    objectKey: _key,
    importedFrom: _from,
    ...manifest
  } = backup.manifest;
  const wrappedKey = codec.wrapKey(dataKey, input.passphrase, exportKeyContext(manifest));
  await deps.store.withOrg(p.orgId, (repos) =>
    recordAudit(deps, repos, p, ctx, {
      action: 'backup.exported',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, backupId: backup.id },
    }),
  );
  return {
    kind: 'selfdevop-data-backup',
    format: 1,
    wrappedKey,
    exportedAt: deps.clock.now().toISOString(),
    manifest,
  };
}

/** The stored object as it is (IV | AES-256-GCM ciphertext | tag): what an import uploads. */
export async function backupObject(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
): Promise<
  { filename: string; bytes: number } & (
    { body: AsyncIterable<Uint8Array> } | { url: string; expiresSeconds: number }
  )
> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  transferCodec(deps);
  const { ds, backup } = await completedBackup(deps, p.orgId, id, backupId);
  const filename = `${ds.name}-${backup.id}.gz.enc`;
  const direct = deps.objects!.direct;
  if (direct) {
    // Past the API: the store serves the bytes (the cloud's API cannot carry them).
    if ((await direct.size(backup.objectKey)) === null) throw backupMissing(backupId);
    return {
      filename,
      bytes: backup.manifest.storedBytes,
      url: await direct.url(backup.objectKey, 'GET', {
        expiresSeconds: downloadUrlSeconds,
        filename,
      }),
      expiresSeconds: downloadUrlSeconds,
    };
  }
  const body = await deps.objects!.getStream(backup.objectKey);
  if (!body) throw backupMissing(backupId);
  return { filename, bytes: backup.manifest.storedBytes, body };
}

/**
 * What a client needs to download a backup's dump past the API (the cloud's, which answers
 * at most 6 MB): a short-lived URL to the stored object, and the data key that opens it.
 * The client checks the object's SHA-256, decrypts (AES-256-GCM: the 12-byte IV first, the
 * 16-byte tag last) and gunzips, which is what `GET …/download` does for it elsewhere.
 */
export interface DirectDownload {
  method: 'GET';
  url: string;
  expiresAt: string;
  /** The decrypted dump's file name (`.sql`, `.pgdump` or `.rdb`), as `…/download` names it. */
  filename: string;
  encoding: BackupManifest['encoding'];
  /**
   * This backup's own data key (base64, 32 bytes). Handing it out gives nothing the caller
   * could not download decrypted anyway: it opens this one object, and no other backup's.
   */
  dataKey: string;
  storedBytes: number;
  /** SHA-256 (hex) of the stored object: a client compares it before it trusts the dump. */
  sha256: string;
  rawBytes: number;
}

/**
 * A direct download of a completed backup's dump (`POST …/download-url`), where the store
 * serves objects itself; a 409 `no_direct_download` naming `GET …/download` elsewhere.
 * Audited as `backup.downloaded`, as the streamed download is.
 */
export async function backupDownloadUrl(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
  ctx: RequestContext,
): Promise<DirectDownload> {
  const { p, direct } = directCaller(
    deps,
    principal,
    () =>
      new CoreError(
        'conflict',
        'no_direct_download',
        `this install's object store serves no direct download: GET /api/data-services/${id}/backups/${backupId}/download streams the dump`,
      ),
  );
  const { ds, backup } = await completedBackup(deps, p.orgId, id, backupId);
  if ((await direct.size(backup.objectKey)) === null) throw backupMissing(backupId);
  const dataKey = await openDataKey(deps, p.orgId, backup);
  await auditDownload(deps, p, ctx, ds, backup.id, true);
  const m = backup.manifest;
  return {
    method: 'GET',
    url: await direct.url(backup.objectKey, 'GET', {
      expiresSeconds: downloadUrlSeconds,
      filename: `${ds.name}-${backup.id}.gz.enc`,
    }),
    expiresAt: new Date(deps.clock.now().getTime() + downloadUrlSeconds * 1000).toISOString(),
    filename: `${ds.name}-${backup.id}.${extensions[ds.engine]}`,
    encoding: m.encoding,
    dataKey,
    storedBytes: m.storedBytes,
    sha256: m.sha256,
    rawBytes: m.rawBytes,
  };
}

/** How long a direct download's URL works: long enough to start it, too short to share. */
const downloadUrlSeconds = 15 * 60;
/** How long a direct upload's URL works: a large object over a slow link, started within it. */
const uploadUrlSeconds = 60 * 60;

/** Where a client PUTs an import's object itself, when the store takes it directly. */
export interface DirectUpload {
  method: 'PUT';
  url: string;
  /** Headers the PUT must carry as they are (the URL's signature covers them). */
  headers: Record<string, string>;
  expiresAt: string;
  /** POSTed once the PUT answered 200: the API checks the object and queues its drill. */
  completePath: string;
}

async function directUpload(
  deps: Deps,
  direct: NonNullable<ObjectStore['direct']>,
  row: Pick<DataServiceBackup, 'id' | 'dataServiceId' | 'objectKey'>,
  bytes: number,
): Promise<DirectUpload> {
  const url = await direct.url(row.objectKey, 'PUT', { expiresSeconds: uploadUrlSeconds, bytes });
  return {
    method: 'PUT',
    url,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes) },
    expiresAt: new Date(deps.clock.now().getTime() + uploadUrlSeconds * 1000).toISOString(),
    completePath: `/api/data-services/${row.dataServiceId}/backups/${row.id}/object/complete`,
  };
}

/**
 * Step one of an import into data service `id` (same engine): the passphrase opens the data
 * key (a 400 naming `passphrase` otherwise), this install's vault reseals it, and a backup
 * row `running` (trigger `import`) waits for its object (`uploadBackupObject`). A row whose
 * object never comes is failed by the backup sweep like any stuck backup.
 */
export async function importBackup(
  deps: Deps,
  principal: Principal,
  id: string,
  input: { bundle: BackupExport; passphrase: string },
  ctx: RequestContext,
): Promise<{ backup: BackupView; uploadPath: string; upload?: DirectUpload }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const codec = transferCodec(deps);
  const ds = await deps.store.withOrg(p.orgId, (r) => r.dataServices.get(id));
  if (!ds) throw new NotFound('data_service', id);
  if (ds.status !== 'ready')
    throw new CoreError(
      'conflict',
      'data_service_not_ready',
      `data service ${ds.name} is ${ds.status}; imports are drilled against it, so it must be ready`,
    );
  const m = input.bundle.manifest;
  if (m.engine !== ds.engine)
    throw new InvalidInput(
      `bundle.manifest.engine: the backup is of ${m.engine}, data service ${ds.name} is ${ds.engine}`,
      { field: 'bundle.manifest.engine' },
    );
  let dataKey: string;
  try {
    dataKey = codec.unwrapKey(input.bundle.wrappedKey, input.passphrase, exportKeyContext(m));
  } catch {
    throw new InvalidInput(
      "passphrase: it does not open this backup's key (a wrong passphrase, or a bundle whose manifest was changed)",
      { field: 'passphrase' },
    );
  }
  const backupId = deps.ids.newId('bak');
  const keys = backupKeys({ orgId: p.orgId, dataServiceId: ds.id, id: backupId });
  const sealedDataKey = await deps.vault.seal(dataKey, backupKeyContext(p.orgId, backupId));
  const manifest: BackupManifest = {
    ...m,
    backupId,
    dataServiceId: ds.id,
    sealedDataKey,
    objectKey: keys.objectKey,
    importedFrom: {
      backupId: m.backupId,
      dataServiceId: m.dataServiceId,
      exportedAt: input.bundle.exportedAt,
    },
  };
  const row: DataServiceBackup = {
    id: backupId,
    orgId: p.orgId,
    dataServiceId: ds.id,
    trigger: 'import',
    status: 'running',
    error: null,
    ...keys,
    sealedDataKey,
    rawBytes: null,
    storedBytes: null,
    sha256: null,
    // Held on the row until the object arrives; it is written to the store only then.
    manifest,
    startedAt: deps.clock.now().toISOString(),
    finishedAt: null,
    drillStatus: null,
    drillError: null,
    drillRtoMs: null,
    drillRpoMs: null,
    drilledAt: null,
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.dataServiceBackups.insert(row);
    await recordAudit(deps, repos, p, ctx, {
      action: 'backup.import_started',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, backupId, from: manifest.importedFrom },
    });
  });
  const direct = deps.objects!.direct;
  return {
    backup: backupView(row),
    uploadPath: `/api/data-services/${ds.id}/backups/${backupId}/object`,
    // Where the API cannot carry the object (the cloud), the client PUTs it to the store.
    ...(direct ? { upload: await directUpload(deps, direct, row, m.storedBytes) } : {}),
  };
}

/** Counts what passes; throws (so nothing is stored) once the body is longer than expected. */
async function* bounded(
  body: AsyncIterable<Uint8Array>,
  max: number,
  seen: { bytes: number },
): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    seen.bytes += chunk.byteLength;
    if (seen.bytes > max) throw new TooLong();
    yield chunk;
  }
}
class TooLong extends Error {}

/**
 * Step two: the object, streamed into the store (never held whole; longer or shorter than
 * the manifest says is a 400 and nothing stays), then the manifest, last; the row becomes
 * `completed` and its drill is queued. The drill checks the object's SHA-256 against the
 * manifest before a byte is restored: a tampered object fails it, loudly.
 */
export async function uploadBackupObject(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
  body: AsyncIterable<Uint8Array> | null,
  ctx: RequestContext,
): Promise<BackupView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  transferCodec(deps);
  const objects = deps.objects!;
  const { ds, row, manifest } = await awaitingImport(deps, p.orgId, id, backupId);
  if (!body) throw new InvalidInput('body: the backup object (application/octet-stream)');
  const seen = { bytes: 0 };
  try {
    await objects.putStream(row.objectKey, bounded(body, manifest.storedBytes, seen), {
      contentType: 'application/octet-stream',
    });
  } catch (e) {
    if (e instanceof TooLong)
      throw new InvalidInput(
        `body: the object is longer than the manifest's ${manifest.storedBytes} bytes; is it this backup's?`,
        { field: 'body' },
      );
    throw e;
  }
  if (seen.bytes !== manifest.storedBytes) {
    await objects.delete(row.objectKey).catch(() => undefined);
    throw new InvalidInput(
      `body: the object has ${seen.bytes} bytes, the manifest says ${manifest.storedBytes}; send the whole object again`,
      { field: 'body' },
    );
  }
  return finishImport(deps, p, ds, row, manifest, seen.bytes, ctx);
}

/** A backup row of an import that waits for its object, with its data service. */
async function awaitingImport(
  deps: Deps,
  orgId: string,
  id: string,
  backupId: string,
): Promise<{ ds: DataService; row: DataServiceBackup; manifest: BackupManifest }> {
  const { ds, row } = await deps.store.withOrg(orgId, async (r) => ({
    ds: await r.dataServices.get(id),
    row: await r.dataServiceBackups.get(backupId),
  }));
  if (!ds) throw new NotFound('data_service', id);
  if (!row || row.dataServiceId !== id) throw new NotFound('backup', backupId);
  if (row.trigger !== 'import' || row.status !== 'running' || !row.manifest)
    throw new CoreError(
      'conflict',
      'backup_not_awaiting_object',
      `backup ${backupId} is ${row.status === 'running' ? 'being taken here' : row.status}; only an import waiting for its object takes one`,
    );
  return { ds, row, manifest: row.manifest };
}

/**
 * A direct upload's end (`POST …/object/complete`): the client PUT the object to the store
 * through `DirectUpload.url`. The store signed its size, so a shorter or longer object never
 * landed; what is there is checked again here (nothing, or another size, is a 400 naming
 * it and nothing stays), then it goes on as an upload through the API does: manifest last,
 * `completed`, drill queued, the drill checking the SHA-256 before a byte is restored.
 */
export async function completeBackupUpload(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
  ctx: RequestContext,
): Promise<BackupView> {
  const { p, direct } = directCaller(deps, principal, noDirectUpload(id, backupId));
  const { ds, row, manifest } = await awaitingImport(deps, p.orgId, id, backupId);
  const bytes = await direct.size(row.objectKey);
  if (bytes === null)
    throw new InvalidInput(
      `backupId: backup ${backupId}'s object is not in the store: PUT it to the upload URL first (a fresh one: POST …/object/upload-url)`,
      { field: 'backupId' },
    );
  if (bytes !== manifest.storedBytes) {
    await deps.objects!.delete(row.objectKey).catch(() => undefined);
    throw new InvalidInput(
      `body: the object has ${bytes} bytes, the manifest says ${manifest.storedBytes}; send the whole object again`,
      { field: 'body' },
    );
  }
  return finishImport(deps, p, ds, row, manifest, bytes, ctx);
}

/** The caller and the store's direct transfers, or `refusal` (a 409 naming the route instead). */
function directCaller(deps: Deps, principal: Principal, refusal: () => CoreError) {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  transferCodec(deps);
  const direct = deps.objects!.direct;
  if (!direct) throw refusal();
  return { p, direct };
}

const noDirectUpload = (id: string, backupId: string) => () =>
  new CoreError(
    'conflict',
    'no_direct_upload',
    `this install's object store takes no direct upload: PUT the object to /api/data-services/${id}/backups/${backupId}/object`,
  );

/** A fresh direct upload for an import that still waits for its object (a URL expired). */
export async function backupUploadUrl(
  deps: Deps,
  principal: Principal,
  id: string,
  backupId: string,
): Promise<DirectUpload> {
  const { p, direct } = directCaller(deps, principal, noDirectUpload(id, backupId));
  const { row, manifest } = await awaitingImport(deps, p.orgId, id, backupId);
  return directUpload(deps, direct, row, manifest.storedBytes);
}

/** The object is stored whole: manifest last, the row `completed`, audited, drill queued. */
async function finishImport(
  deps: Deps,
  p: OrgPrincipal,
  ds: DataService,
  row: DataServiceBackup,
  manifest: BackupManifest,
  bytes: number,
  ctx: RequestContext,
): Promise<BackupView> {
  const id = ds.id;
  const backupId = row.id;
  await deps.objects!.put(row.manifestKey, JSON.stringify(manifest, null, 2), {
    contentType: 'application/json',
  });
  const patch = {
    status: 'completed' as const,
    rawBytes: manifest.rawBytes,
    storedBytes: manifest.storedBytes,
    sha256: manifest.sha256,
    finishedAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.dataServiceBackups.update(row.id, patch);
    await recordAudit(deps, repos, p, ctx, {
      action: 'backup.imported',
      targetType: 'data_service',
      targetId: id,
      data: { name: ds.name, backupId, bytes, from: manifest.importedFrom ?? null },
    });
  });
  await sendDrill(deps, ds, row.id);
  return backupView({ ...row, ...patch });
}
