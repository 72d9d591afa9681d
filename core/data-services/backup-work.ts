import { recordAudit } from '../deps.ts';
import type { BackupManifest, DataService, DataServiceBackup } from '../models.ts';
import { openPinnedNodeTarget } from '../nodes/credentials.ts';
import type { CodedTotals, DockerTarget, PipedRun } from '../ports.ts';
import {
  backupKeyContext,
  backupKeys,
  backupsToDelete,
  compareWithManifest,
  drillDecision,
  dumpTools,
  type DrillDecision,
  parseCounts,
  parseDrillPhases,
  planDrill,
  planDump,
  planRestore,
} from './backups.ts';
import {
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import {
  checkLinkedApps,
  drillApps,
  drillNetworkName,
  drillServerName,
  type DrillApp,
} from './drill-app.ts';
import { dataContainerName, dataServiceSecretContext, planDataContainer } from './plan.ts';
import { defaultBackupTimeoutMs } from './sweep.ts';

/**
 * The worker's side of backups, drills and restores (queue `data-service-work`, both modes).
 * The dump streams from a one-off next to the server through the codec (gzip, AES-256-GCM
 * under the backup's own data key) into the ObjectStore; the manifest is written last. A
 * failure is recorded once, loudly (`backup.failed`, `drill.failed`), not retried: the next
 * scheduled backup comes anyway, and a person can ask again.
 */

type Needs = Required<Pick<DataServiceDeps, 'objects' | 'backupCodec'>> & DataServiceDeps;

function needs(deps: DataServiceDeps): Needs {
  if (!deps.objects || !deps.backupCodec)
    throw new Error('this worker has no object store configured: backups cannot run');
  if (!deps.runtime.runPiped)
    throw new Error('this container runtime cannot stream dumps: backups cannot run');
  return deps as Needs;
}

const timeoutOf = (deps: DataServiceDeps) => deps.config.backupTimeoutMs ?? defaultBackupTimeoutMs;
const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function targetOf(deps: DataServiceDeps, ds: DataService): Promise<DockerTarget> {
  const node = await deps.store.withOrg(ds.orgId, (repos) => repos.nodes.get(ds.nodeId));
  if (!node) throw new Error(`node ${ds.nodeId} is gone`);
  return openPinnedNodeTarget(deps.vault, node);
}

const passwordOf = (deps: DataServiceDeps, ds: DataService) =>
  deps.vault.open(ds.sealedPassword, dataServiceSecretContext(ds.orgId, ds.id));

/** stdout, then a throw naming the exit when the one-off did not end with 0. */
async function* checked(run: PipedRun, what: string): AsyncGenerator<Uint8Array> {
  yield* run.stdout;
  const r = await run.result;
  if (r.timedOut) throw new Error(`${what} did not finish in time: ${lastLines(r.output)}`);
  if (r.exitCode !== 0)
    throw new Error(`${what} exited with ${r.exitCode}: ${lastLines(r.output) || 'no output'}`);
}

const lastLines = (text: string) => text.trim().split('\n').slice(-3).join(' | ').slice(0, 600);

async function collectText(stream: AsyncIterable<Uint8Array>, max = 256 * 1024): Promise<string> {
  const decoder = new TextDecoder();
  let out = '';
  for await (const chunk of stream) {
    if (out.length < max) out += decoder.decode(chunk, { stream: true });
  }
  return out + decoder.decode();
}

/** Creates a backup row in `running` with its keys and a fresh sealed data key. */
export async function newBackupRow(
  deps: Pick<DataServiceDeps, 'ids' | 'clock' | 'vault'> & { backupCodec: Needs['backupCodec'] },
  ds: Pick<DataService, 'orgId' | 'id'>,
  trigger: DataServiceBackup['trigger'],
): Promise<DataServiceBackup> {
  const id = deps.ids.newId('bak');
  const keys = backupKeys({ orgId: ds.orgId, dataServiceId: ds.id, id });
  const sealedDataKey = await deps.vault.seal(
    deps.backupCodec.newDataKey(),
    backupKeyContext(ds.orgId, id),
  );
  return {
    id,
    orgId: ds.orgId,
    dataServiceId: ds.id,
    trigger,
    status: 'running',
    error: null,
    ...keys,
    sealedDataKey,
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

/** Runs the `backup` message: the named row, or a new one when a schedule fired it. */
export async function handleBackup(
  deps: DataServiceDeps,
  ds: DataService,
  m: DataServiceWorkMessage,
): Promise<void> {
  let row: DataServiceBackup | null = null;
  try {
    const d = needs(deps);
    if (m.backupId) {
      row = await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.get(m.backupId!));
      if (!row || row.status !== 'running') return; // done (or given up) by an earlier delivery
    } else {
      const fresh = await newBackupRow(d, ds, 'schedule');
      await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.insert(fresh));
      row = fresh;
    }
    if (ds.status !== 'ready') throw new Error(`the data service is ${ds.status}, not ready`);
    await takeBackup(d, ds, row);
  } catch (e) {
    if (row) await backupFailed(deps, ds, row, messageOf(e));
    else deps.logger.error({ dataServiceId: ds.id, err: messageOf(e) }, 'backup failed');
    return;
  }
  await afterBackup(deps, ds, row);
}

/**
 * After a backup the worker took on a schedule or on demand: its drill queued, unless the
 * data service drills `weekly` and one is not due (`drillDecision`). A skipped drill is in
 * the audit trail (`drill.skipped`, with why and when the next is due), and retention runs
 * now, as it otherwise does after each drill and would wait a week.
 */
export async function afterBackup(
  deps: DataServiceDeps,
  ds: DataService,
  row: Pick<DataServiceBackup, 'id' | 'trigger' | 'startedAt'>,
): Promise<DrillDecision> {
  let decision: DrillDecision;
  try {
    const history = await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.list(ds.id));
    decision = drillDecision(ds.drillSchedule, row, history);
  } catch (e) {
    // Never a silent skip: a history that cannot be read is no proof of a recent drill.
    decision = { drill: true, reason: `the drill history was not readable: ${messageOf(e)}` };
  }
  if (decision.drill) {
    await sendDrill(deps, ds, row.id);
    return decision;
  }
  // Not thrown: a redelivered scheduled message would take another backup for an audit row.
  await deps.store
    .withOrg(ds.orgId, (repos) =>
      recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'drill.skipped',
        targetType: 'data_service',
        targetId: ds.id,
        data: { name: ds.name, backupId: row.id, reason: decision.reason },
      }),
    )
    .catch((e: unknown) =>
      deps.logger.warn({ dataServiceId: ds.id, err: messageOf(e) }, 'drill.skipped not audited'),
    );
  deps.logger.info(
    { dataServiceId: ds.id, backupId: row.id, reason: decision.reason },
    'drill skipped',
  );
  await applyRetention(deps, ds).catch((e: unknown) =>
    deps.logger.warn({ dataServiceId: ds.id, err: messageOf(e) }, 'retention did not run'),
  );
  return decision;
}

/**
 * A backup taken by the worker itself (what a move starts with): recorded like any other,
 * its failure recorded as `backup.failed` and thrown. Returns the completed row.
 */
export async function backupNow(
  deps: DataServiceDeps,
  ds: DataService,
  trigger: DataServiceBackup['trigger'] = 'manual',
): Promise<DataServiceBackup> {
  const d = needs(deps);
  const row = await newBackupRow(d, ds, trigger);
  await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.insert(row));
  let done: DataServiceBackup;
  try {
    done = await takeBackup(d, ds, row);
  } catch (e) {
    await backupFailed(deps, ds, row, messageOf(e));
    throw e;
  }
  // Proven like any other backup (an upgrade's safety copy most of all).
  if (trigger === 'pre_upgrade') await sendDrill(deps, ds, done.id);
  return done;
}

/** Queues the drill of a stored backup (after a backup, or an import's upload). */
export async function sendDrill(
  deps: Pick<DataServiceDeps, 'queue'>,
  ds: Pick<DataService, 'orgId' | 'id'>,
  backupId: string,
) {
  const message: DataServiceWorkMessage = {
    orgId: ds.orgId,
    dataServiceId: ds.id,
    op: 'drill',
    backupId,
  };
  await deps.queue?.send(dataServiceWorkQueue, message, {
    idempotencyKey: `${backupId}:drill`,
    group: ds.id,
    maxAttempts: 3,
  });
}

/**
 * Dumps, encodes and stores; then the manifest, last. Throws on any failure, having removed
 * what it stored (the row says why; the caller records it).
 */
export async function takeBackup(
  deps: Needs,
  ds: DataService,
  row: DataServiceBackup,
): Promise<DataServiceBackup> {
  const target = await targetOf(deps, ds);
  const password = await passwordOf(deps, ds);
  const dataKey = await deps.vault.open(row.sealedDataKey, backupKeyContext(ds.orgId, row.id));
  // The data is read from here on (MariaDB's rows are counted from the dump itself,
  // PostgreSQL's rows and Redis' keys just before it).
  const takenAt = deps.clock.now().toISOString();
  const run = await deps.runtime.runPiped!(target, planDump(ds, password, row.id), {
    timeoutMs: timeoutOf(deps),
  });
  const coded = deps.backupCodec.encode(checked(run, 'the dump'), dataKey, { compressed: true });
  try {
    await deps.objects.putStream(row.objectKey, coded.output, {
      contentType: 'application/octet-stream',
    });
  } catch (e) {
    // The dump may still be waiting on its stdout: let it end, then say why.
    await run.result.catch(() => undefined);
    await deps.objects.delete(row.objectKey).catch(() => undefined);
    throw new Error(`storing the backup failed: ${messageOf(e).replaceAll(password, '***')}`, {
      cause: e,
    });
  }
  const { output } = await run.result;
  const counts = parseCounts(output);
  if (!counts.serverVersion || counts.rawBytes === null) {
    // The version comes first on stderr; a tail that lost it cannot vouch for the counts.
    await deps.objects.delete(row.objectKey).catch(() => undefined);
    throw new Error(
      `the dump one-off did not report ${counts.serverVersion ? "the dump's size" : 'the server version and counts'}: ${lastLines(output).replaceAll(password, '***') || 'no output'}`,
    );
  }
  const totals = coded.totals();
  const manifest: BackupManifest = {
    format: 2,
    backupId: row.id,
    dataServiceId: ds.id,
    engine: ds.engine,
    serverVersion: counts.serverVersion,
    tool: dumpTools[ds.engine],
    encoding: 'gzip+aes-256-gcm',
    sealedDataKey: row.sealedDataKey,
    objectKey: row.objectKey,
    rawBytes: counts.rawBytes,
    storedBytes: totals.outBytes,
    sha256: totals.outSha256,
    rawSha256: null,
    gzipSha256: totals.gzipSha256,
    gzipBytes: totals.gzipBytes,
    tables: counts.tables,
    keys: ds.engine === 'redis' ? counts.keys : null,
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
    rawBytes: manifest.rawBytes,
    storedBytes: totals.outBytes,
    sha256: totals.outSha256,
    manifest,
    finishedAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(ds.orgId, async (repos) => {
    await repos.dataServiceBackups.update(row.id, patch);
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'backup.completed',
      targetType: 'data_service',
      targetId: ds.id,
      data: {
        name: ds.name,
        backupId: row.id,
        trigger: row.trigger,
        rawBytes: manifest.rawBytes,
        storedBytes: totals.outBytes,
      },
    });
  });
  return { ...row, ...patch };
}

export async function backupFailed(
  deps: DataServiceDeps,
  ds: DataService,
  row: DataServiceBackup,
  reason: string,
): Promise<void> {
  deps.logger.warn({ dataServiceId: ds.id, backupId: row.id, reason }, 'backup failed');
  await deps.store.withOrg(ds.orgId, async (repos) => {
    await repos.dataServiceBackups.update(row.id, {
      status: 'failed',
      error: reason,
      finishedAt: deps.clock.now().toISOString(),
    });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: 'backup.failed',
      targetType: 'data_service',
      targetId: ds.id,
      data: { name: ds.name, backupId: row.id, trigger: row.trigger, reason },
    });
  });
}

/** Reads the manifest back and checks it is this backup's; throws naming what is wrong. */
async function manifestOf(deps: Needs, row: DataServiceBackup): Promise<BackupManifest> {
  if (row.status !== 'completed')
    throw new Error(`backup ${row.id} is ${row.status}: only a completed backup has a manifest`);
  const bytes = await deps.objects.get(row.manifestKey);
  if (!bytes) throw new Error(`backup ${row.id} has no manifest in the object store`);
  const manifest = JSON.parse(new TextDecoder().decode(bytes)) as BackupManifest;
  if (manifest.backupId !== row.id || manifest.sha256 !== row.sha256)
    throw new Error(`the manifest of backup ${row.id} does not match its record`);
  return manifest;
}

/**
 * Reads the stored object once to check its SHA-256 against the manifest before a byte of it
 * is restored anywhere; answers the dump's decoded stream (a second read) and its totals.
 */
async function verifiedDump(
  deps: Needs,
  row: DataServiceBackup,
  manifest: BackupManifest,
  options: { decompress?: boolean } = {},
) {
  const first = await deps.objects.getStream(row.objectKey);
  if (!first) throw new Error(`backup ${row.id}: the dump is missing from the object store`);
  const { sha256: hash, bytes } = await deps.backupCodec.sha256(first);
  if (hash !== manifest.sha256 || bytes !== manifest.storedBytes)
    throw new Error(
      `backup ${row.id} is corrupted: the stored dump's SHA-256 is ${hash} (${bytes} bytes), the manifest says ${manifest.sha256} (${manifest.storedBytes} bytes)`,
    );
  const again = await deps.objects.getStream(row.objectKey);
  if (!again) throw new Error(`backup ${row.id}: the dump vanished from the object store`);
  return deps.backupCodec.decode(again, await keyOf(deps, row), options);
}

/**
 * Why a dump read back to its end is not the one the manifest describes, or null: format 1
 * names the dump's SHA-256; format 2 the gzip stream's SHA-256 and length, and the dump's
 * length (gunzip has checked the dump's CRC-32 on the way).
 */
export function decodedMismatch(
  manifest: Pick<BackupManifest, 'format' | 'rawSha256' | 'gzipSha256' | 'gzipBytes' | 'rawBytes'>,
  totals: CodedTotals,
): string | null {
  if (manifest.format === 1)
    return totals.outSha256 === manifest.rawSha256
      ? null
      : `the decrypted dump's SHA-256 ${totals.outSha256} is not the manifest's ${manifest.rawSha256}`;
  if (totals.gzipSha256 !== manifest.gzipSha256 || totals.gzipBytes !== manifest.gzipBytes)
    return `the decrypted gzip stream's SHA-256 ${totals.gzipSha256} (${totals.gzipBytes} bytes) is not the manifest's ${manifest.gzipSha256} (${manifest.gzipBytes} bytes)`;
  if (totals.outBytes !== manifest.rawBytes)
    return `the decompressed dump is ${totals.outBytes} bytes, the manifest says ${manifest.rawBytes}`;
  return null;
}

/**
 * `decodedMismatch` for what a container received: when it gunzipped the stream itself
 * (`gunzipped`, its output), the dump's length is the `rawbytes` it printed.
 */
function receivedMismatch(
  manifest: BackupManifest,
  totals: CodedTotals,
  gunzipped: string | null,
  what: 'drill' | 'restore',
): string | null {
  if (gunzipped === null) return decodedMismatch(manifest, totals);
  const rawBytes = parseCounts(gunzipped).rawBytes;
  if (rawBytes === null) return `the ${what} container did not report the dump's length`;
  return decodedMismatch(manifest, { ...totals, outBytes: rawBytes });
}

async function keyOf(deps: Needs, row: DataServiceBackup): Promise<string> {
  try {
    return await deps.vault.open(row.sealedDataKey, backupKeyContext(row.orgId, row.id));
  } catch (e) {
    throw new Error(
      `the data key of backup ${row.id} does not open with this install's vault: ${messageOf(e)}`,
      { cause: e },
    );
  }
}

/**
 * Where a drill's time went, in ms (recorded in `drill.passed` / `drill.failed` as `phases`):
 * reading the manifest; the object's SHA-256 pass (it overlaps the container's start and its
 * server's initialisation); creating and starting the container; inside it, until its
 * server answered (`ready`), the restore, the counts; the linked apps' health checks; and
 * removing what the drill started. Absent: not reached.
 */
export interface DrillPhases {
  manifestMs?: number;
  verifyMs?: number;
  startMs?: number;
  readyMs?: number;
  restoreMs?: number;
  countMs?: number;
  appsMs?: number;
  teardownMs?: number;
}

type Decoded = { output: AsyncIterable<Uint8Array>; totals(): CodedTotals };

/**
 * The drill's stdin: the dump decoded, but only once the stored object's SHA-256 matched
 * the manifest. The container is started meanwhile (its server initialises while the object
 * is read); a backup that does not verify throws from here before a byte of it is written,
 * and the runtime kills the container.
 */
function verifiedStdin(
  deps: Needs,
  row: DataServiceBackup,
  manifest: BackupManifest,
  phases: DrillPhases,
  since: () => number,
) {
  const holder: { decoded: Decoded | null } = { decoded: null };
  // Format 2 names the gzip stream's checksum and the dump's length: the container gunzips
  // and counts (a sixth of the bytes through the engine's attach stream). Format 1 names
  // the dump's own SHA-256, so it is decompressed and hashed here as before.
  const gzipped = manifest.format !== 1;
  const verifying = verifiedDump(deps, row, manifest, { decompress: !gzipped }).then((decoded) => {
    phases.verifyMs = since();
    return decoded;
  });
  // Awaited by the stdin below once the container reads it; never left unhandled meanwhile.
  verifying.catch(() => undefined);
  async function* stdin(): AsyncGenerator<Uint8Array> {
    holder.decoded = await verifying;
    yield* holder.decoded.output;
  }
  return {
    stdin: stdin(),
    gzipped,
    /** Why what the container received is not the manifest's dump, or null. */
    mismatch(containerOutput: string): string | null {
      if (!holder.decoded) return 'the drill never read the backup';
      return receivedMismatch(
        manifest,
        holder.decoded.totals(),
        gzipped ? containerOutput : null,
        'drill',
      );
    },
  };
}

/** Runs the `drill` message: restore into a container with no network, compare, record. */
export async function handleDrill(
  deps: DataServiceDeps,
  ds: DataService,
  m: DataServiceWorkMessage,
): Promise<void> {
  const row = await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.get(m.backupId!));
  // A drill may run again (redelivered, or asked again): it only reads the backup.
  if (!row || row.status !== 'completed') return;
  const started = deps.clock.now();
  await deps.store.withOrg(ds.orgId, (r) =>
    r.dataServiceBackups.update(row.id, {
      drillStatus: 'running',
      drillError: null,
      drilledAt: started.toISOString(),
    }),
  );
  let failure: string | null = null;
  let manifest: BackupManifest | null = null;
  let appNames: string[] = [];
  const phases: DrillPhases = {};
  const now = () => deps.clock.now().getTime();
  try {
    const d = needs(deps);
    let t = now();
    manifest = await manifestOf(d, row);
    phases.manifestMs = now() - t;
    const target = await targetOf(deps, ds);
    const drillPassword = deps.ids.newSecret(18).replace(/[^A-Za-z0-9]/g, 'x');
    const apps = await drillApps(deps.store, ds);
    appNames = apps.map((a) => a.service.name);
    t = now();
    const input = verifiedStdin(d, row, manifest, phases, () => now() - t);
    if (apps.length === 0) {
      const spec = planDrill(ds, drillPassword, row.id, undefined, { gzipped: input.gzipped });
      const run = await deps.runtime.runPiped!(target, spec, {
        timeoutMs: timeoutOf(deps),
        stdin: input.stdin,
      });
      phases.startMs = now() - t;
      const out = await collectText(run.stdout);
      t = now();
      const result = await run.result;
      phases.teardownMs = now() - t;
      Object.assign(phases, inContainer(out));
      if (result.exitCode !== 0)
        throw new Error(
          `the restore into the drill container ${result.timedOut ? 'timed out' : `exited with ${result.exitCode}`}: ${lastLines(result.output) || 'no output'}`,
        );
      const mismatch = input.mismatch(out);
      if (mismatch) throw new Error(mismatch);
      failure = compareWithManifest(manifest, parseCounts(out));
    } else {
      failure = await drillWithApps(
        d,
        target,
        ds,
        row,
        manifest,
        input,
        drillPassword,
        apps,
        phases,
        t,
      );
    }
  } catch (e) {
    failure = messageOf(e);
  }
  const ended = deps.clock.now();
  const rtoMs = ended.getTime() - started.getTime();
  const rpoMs = manifest ? started.getTime() - new Date(manifest.takenAt).getTime() : null;
  await deps.store.withOrg(ds.orgId, async (repos) => {
    await repos.dataServiceBackups.update(row.id, {
      drillStatus: failure ? 'failed' : 'passed',
      drillError: failure,
      drillRtoMs: rtoMs,
      drillRpoMs: rpoMs,
    });
    await recordAudit(deps, repos, dataWorkerActor, null, {
      action: failure ? 'drill.failed' : 'drill.passed',
      targetType: 'data_service',
      targetId: ds.id,
      data: {
        name: ds.name,
        backupId: row.id,
        rtoMs,
        rpoMs,
        // The linked apps the drill started against the restored copy (none: data only).
        apps: appNames,
        phases,
        ...(failure ? { reason: failure } : {}),
      },
    });
  });
  if (failure)
    deps.logger.error({ dataServiceId: ds.id, backupId: row.id, reason: failure }, 'drill failed');
  await applyRetention(deps, ds).catch((e: unknown) =>
    deps.logger.warn({ dataServiceId: ds.id, err: messageOf(e) }, 'retention did not run'),
  );
}

/** The container's own phases (ms since its script began) as durations of each step. */
function inContainer(out: string): DrillPhases {
  const p = parseDrillPhases(out);
  const phases: DrillPhases = {};
  if (p.ready !== undefined) phases.readyMs = p.ready;
  if (p.ready !== undefined && p.restored !== undefined) phases.restoreMs = p.restored - p.ready;
  if (p.restored !== undefined && p.counted !== undefined) phases.countMs = p.counted - p.restored;
  return phases;
}

/**
 * The drill of a linked data service: the restored copy serves on the drill's own internal
 * network, checked against the manifest first; then each linked app starts against it and
 * must pass its health check. Everything the drill started is removed, network last.
 */
async function drillWithApps(
  deps: Needs,
  target: DockerTarget,
  ds: DataService,
  row: DataServiceBackup,
  manifest: BackupManifest,
  input: ReturnType<typeof verifiedStdin>,
  drillPassword: string,
  apps: DrillApp[],
  phases: DrillPhases,
  since: number,
): Promise<string | null> {
  const now = () => deps.clock.now().getTime();
  const network = drillNetworkName(row.id);
  const spec = planDrill(ds, drillPassword, row.id, network, { gzipped: input.gzipped });
  const run = await deps.runtime.runPiped!(target, spec, {
    timeoutMs: timeoutOf(deps),
    stdin: input.stdin,
  });
  phases.startMs = now() - since;
  try {
    const out = await textUntil(run.stdout, 'drill\tready');
    Object.assign(phases, inContainer(out.text));
    if (!out.ready) {
      const result = await run.result;
      throw new Error(
        `the restore into the drill container ${result.timedOut ? 'timed out' : `exited with ${result.exitCode}`}: ${lastLines(result.output) || 'no output'}`,
      );
    }
    const mismatch = input.mismatch(out.text);
    if (mismatch) return mismatch;
    const counted = compareWithManifest(manifest, parseCounts(out.text));
    if (counted) return counted;
    const t = now();
    try {
      return await checkLinkedApps(deps, target, ds, apps, drillPassword, row.id);
    } finally {
      phases.appsMs = now() - t;
    }
  } finally {
    const t = now();
    await deps.runtime.remove(target, drillServerName(ds, row.id)).catch(() => undefined);
    await run.result.catch(() => undefined);
    await deps.runtime
      .removeNetwork?.(target, network)
      .catch((e: unknown) =>
        deps.logger.warn({ network, err: messageOf(e) }, 'the drill network was not removed'),
      );
    phases.teardownMs = now() - t;
  }
}

/**
 * Reads text until a line equal to `marker` (the drill server stays up after it) or the end;
 * bounded like collectText.
 */
async function textUntil(
  stream: AsyncIterable<Uint8Array>,
  marker: string,
  max = 256 * 1024,
): Promise<{ text: string; ready: boolean }> {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stream) {
    if (text.length < max) text += decoder.decode(chunk, { stream: true });
    if (text.split('\n').some((l) => l.replace(/\r$/, '') === marker)) return { text, ready: true };
  }
  return { text: text + decoder.decode(), ready: false };
}

/** Deletes what retention lets go: the manifest first (so it stops counting), then the dump. */
export async function applyRetention(deps: DataServiceDeps, ds: DataService): Promise<string[]> {
  if (!deps.objects) return [];
  const objects = deps.objects;
  const rows = await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.list(ds.id));
  const doomed = backupsToDelete(rows, ds.backupRetention ?? undefined);
  for (const id of doomed) {
    const row = rows.find((r) => r.id === id)!;
    await objects.delete(row.manifestKey);
    await objects.delete(row.objectKey);
    await deps.store.withOrg(ds.orgId, (r) => r.dataServiceBackups.delete(id));
  }
  return doomed;
}

/**
 * Runs the `restore` message. In place: a backup of the current state first (a failure
 * there stops everything, nothing touched). A new target: provisioned first. Then the
 * backup, checked against its manifest, streams into the target's server.
 */
export async function handleRestore(
  deps: DataServiceDeps,
  source: DataService,
  m: DataServiceWorkMessage,
  provision: (deps: DataServiceDeps, ds: DataService) => Promise<void>,
): Promise<void> {
  const targetId = m.targetId ?? source.id;
  const inPlace = targetId === source.id;
  let target = await deps.store.withOrg(source.orgId, (r) => r.dataServices.get(targetId));
  if (!target) return;
  try {
    const d = needs(deps);
    const row = await deps.store.withOrg(source.orgId, (r) =>
      r.dataServiceBackups.get(m.backupId!),
    );
    if (!row) throw new Error(`backup ${m.backupId} is gone`);
    const manifest = await manifestOf(d, row);
    if (!inPlace && target.status === 'provisioning') {
      await provision(deps, target);
      target = await deps.store.withOrg(source.orgId, (r) => r.dataServices.get(targetId));
      if (!target || target.status !== 'ready')
        throw new Error(`the new data service did not become ready: ${target?.error ?? 'gone'}`);
    }
    if (inPlace) {
      const safety = await newBackupRow(d, source, 'pre_restore');
      await deps.store.withOrg(source.orgId, (r) => r.dataServiceBackups.insert(safety));
      try {
        await takeBackup(d, source, safety);
      } catch (e) {
        await backupFailed(deps, source, safety, messageOf(e));
        throw new Error(
          `the backup of the current state failed, so nothing was restored: ${messageOf(e)}`,
          { cause: e },
        );
      }
    }
    // The restore alone (not the new server's start, nor the in-place safety backup): what
    // a drill's `restore` phase predicts, kept with the event for the RTO a restore really had.
    const restoreStarted = deps.clock.now().getTime();
    await restoreInto(d, target, row, manifest, { fresh: !inPlace });
    const restoreMs = deps.clock.now().getTime() - restoreStarted;
    await deps.store.withOrg(source.orgId, async (repos) => {
      await repos.dataServices.update(target!.id, {
        error: null,
        updatedAt: deps.clock.now().toISOString(),
      });
      await recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.restored',
        targetType: 'data_service',
        targetId: target!.id,
        data: { backupId: row.id, from: source.id, inPlace, restoreMs },
      });
    });
  } catch (e) {
    const reason = `restore of backup ${m.backupId} failed: ${messageOf(e)}`;
    deps.logger.error({ dataServiceId: targetId, reason }, 'restore failed');
    await deps.store.withOrg(source.orgId, async (repos) => {
      await repos.dataServices.update(targetId, {
        ...(inPlace ? {} : { status: 'failed' as const }),
        error: reason,
        updatedAt: deps.clock.now().toISOString(),
      });
      await recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.restore_failed',
        targetType: 'data_service',
        targetId,
        data: { backupId: m.backupId, from: source.id, inPlace, reason },
      });
    });
  }
}

async function restoreInto(
  deps: Needs,
  target: DataService,
  row: DataServiceBackup,
  manifest: BackupManifest,
  options: { fresh: boolean },
): Promise<void> {
  const docker = await targetOf(deps, target);
  const password = await passwordOf(deps, target);
  // Format 2: the gzip stream, gunzipped and counted beside the server (`planRestore`).
  const gzipped = manifest.format !== 1;
  const decoded = await verifiedDump(deps, row, manifest, { decompress: !gzipped });
  if (target.engine === 'redis') await deps.runtime.stop(docker, dataContainerName(target), 10);
  try {
    const run = await deps.runtime.runPiped!(
      docker,
      planRestore(target, password, row.id, { ...options, gzipped }),
      {
        timeoutMs: timeoutOf(deps),
        stdin: decoded.output,
      },
    );
    const out = await collectText(run.stdout, 4096);
    const result = await run.result;
    if (result.exitCode !== 0)
      throw new Error(
        `the restore ${result.timedOut ? 'timed out' : `exited with ${result.exitCode}`}: ${lastLines(result.output).replaceAll(password, '***')}`,
      );
    const mismatch = receivedMismatch(manifest, decoded.totals(), gzipped ? out : null, 'restore');
    if (mismatch) throw new Error(mismatch);
  } finally {
    if (target.engine === 'redis')
      await deps.runtime.start(docker, planDataContainer(target, password));
  }
}
