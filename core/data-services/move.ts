import { CoreError, NotFound, isCoreError } from '../errors.ts';
import type { DataService, DataServiceMove } from '../models.ts';
import type { EventQueue, OrgRepos } from '../ports.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { newRestoreTarget } from './backup-use-cases.ts';
import { backupNow, handleRestore } from './backup-work.ts';
import {
  dataServiceWorkQueue,
  dataWorkerActor,
  type DataServiceDeps,
  type DataServiceWorkMessage,
} from './deps.ts';
import { redeployLinked } from './rotation.ts';
import { deleteDataService, dataServiceView, type DataServiceView } from './use-cases.ts';

/**
 * Moving a database from a shared server to a dedicated one (issue 15), one action:
 * 1. `backup`: a fresh backup of the shared database (recorded like any other);
 * 2. `restore`: into a new dedicated data service (the restore-to-dedicated path: provisioned,
 *    then the backup, checked against its manifest, streamed in);
 * 3. `relink`: every link of the shared one moves to the new one under the same env name, in
 *    one transaction;
 * 4. `redeploy`: the linked services' live releases are redeployed (the normal release path,
 *    so the switch is health-gated: a candidate that fails its checks leaves the old
 *    containers serving, on the shared copy).
 * A failure at steps 1-3 leaves every link on the shared copy (step 3 is one transaction; a
 * failure queueing step 4 puts the links back) and records which step failed. The shared copy
 * stays, unlinked, until `confirm-move` deletes it.
 */

type Deps = CoreDeps & { queue: EventQueue };

/**
 * A move the worker never started (no heartbeat yet: still queued, or its worker died before
 * the first beat): two backup timeouts (a dump and a restore) and an hour for the rest.
 */
export const staleMoveMs = 5 * 60 * 60 * 1000;
/** How often the worker running a move writes `move.heartbeatAt`. */
export const moveHeartbeatMs = 60_000;
/** A move whose heartbeat is older than five beats died with its worker: it may be asked again. */
export const staleHeartbeatMs = 5 * moveHeartbeatMs;

/** Whether a `moving` move is still alive at `now` (its heartbeat, else its start). */
export function moveAlive(move: DataServiceMove, now: string): boolean {
  if (move.heartbeatAt) return Date.parse(now) - Date.parse(move.heartbeatAt) < staleHeartbeatMs;
  return Date.parse(now) - Date.parse(move.at) < staleMoveMs;
}

const conflict = (code: string, message: string) => new CoreError('conflict', code, message);

/** Asks for the move (202): the worker runs the steps in order on the data service's group. */
export async function requestMove(
  deps: Deps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<DataServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const moving: DataServiceMove = {
    status: 'moving',
    targetId: null,
    backupId: null,
    step: 'backup',
    error: null,
    releaseIds: [],
    at: deps.clock.now().toISOString(),
  };
  const ds = await deps.store.withOrg(p.orgId, async (repos) => {
    const ds = await repos.dataServices.get(id);
    if (!ds) throw new NotFound('data_service', id);
    if (!ds.sharedServerId)
      throw conflict(
        'data_service_not_shared',
        `data service ${ds.name} is already dedicated (a server of its own): only a database on a shared server moves`,
      );
    if (ds.status !== 'ready')
      throw conflict(
        'data_service_not_ready',
        `data service ${ds.name} is ${ds.status}; it can be moved once it is ready`,
      );
    // A move is sent once (never redelivered): one whose worker stopped beating (or that
    // never started, after the longest a backup and a restore can take) died with its
    // worker, and may be asked again.
    if (ds.move?.status === 'moving' && moveAlive(ds.move, moving.at))
      throw conflict(
        'move_in_progress',
        `data service ${ds.name} is already moving to a dedicated server (step ${ds.move.step})`,
      );
    if (ds.move?.status === 'moved')
      throw conflict(
        'move_unconfirmed',
        `data service ${ds.name} was already moved to ${ds.move.targetId}: confirm-move drops this copy`,
      );
    await repos.dataServices.update(id, { move: moving, updatedAt: moving.at });
    await recordAudit(deps, repos, p, ctx, {
      action: 'data_service.move_requested',
      targetType: 'data_service',
      targetId: id,
      data: {
        name: ds.name,
        from: ds.sharedServerId,
        // What the dead move left (a half-made dedicated copy to check and delete).
        ...(ds.move?.status === 'moving'
          ? { replacesStale: { step: ds.move.step, targetId: ds.move.targetId } }
          : {}),
      },
    });
    return { ...ds, move: moving };
  });
  const message: DataServiceWorkMessage = { orgId: p.orgId, dataServiceId: id, op: 'move' };
  try {
    await deps.queue.send(dataServiceWorkQueue, message, {
      idempotencyKey: `${id}:move:${deps.ids.newId('mov')}`,
      group: id,
      // Not redelivered: a half-done move is recorded as failed, never re-run blindly.
      maxAttempts: 1,
    });
  } catch (e) {
    // Nothing would pick it up: clear it so a later move is not refused.
    await deps.store.withOrg(p.orgId, (repos) => repos.dataServices.update(id, { move: null }));
    throw e;
  }
  return dataServiceView(ds);
}

/** Drops the shared copy of a moved database (its links are already on the dedicated one). */
export async function confirmMove(
  deps: Deps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<DataServiceView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const ds = await deps.store.withOrg(p.orgId, (repos) => repos.dataServices.get(id));
  if (!ds) throw new NotFound('data_service', id);
  if (ds.move?.status !== 'moved')
    throw conflict(
      'move_not_done',
      ds.move?.status === 'moving'
        ? `data service ${ds.name} is still moving (step ${ds.move.step}): confirm once it has moved`
        : `data service ${ds.name} has no finished move to confirm`,
    );
  // The switch is health-gated: a redeploy that has not completed leaves its old containers
  // serving on this copy, so it is not dropped under them.
  // One that failed counts as done once a later release of its service completed.
  const pending = await deps.store.withOrg(p.orgId, async (repos) => {
    const out = [];
    for (const id of ds.move!.releaseIds) {
      const r = await repos.releases.get(id);
      if (!r || r.status === 'completed') continue;
      const later = await repos.releases.latest(r.serviceId, r.environmentId, ['completed']);
      if (!later || later.createdAt <= r.createdAt) out.push(r);
    }
    return out;
  });
  if (pending.length > 0)
    throw conflict(
      'move_releases_not_completed',
      `the redeploys of the move have not all completed (${pending.map((r) => `${r.id}: ${r.status}`).join(', ')}): their old containers may still use this copy; deploy them again, then confirm`,
    );
  // The usual delete (refused while anything is linked to this copy); the database and user
  // go with it, the shared server stays.
  return deleteDataService(deps, principal, id, { confirm: ds.name, volume: 'remove' }, ctx);
}

/** The steps' real implementations; tests replace them to drive the sequence's failures. */
export interface MoveSteps {
  backup(deps: DataServiceDeps, ds: DataService): Promise<{ id: string }>;
  /** Restores the backup into `target` (already inserted); throws when it is not ready after. */
  restore(
    deps: DataServiceDeps,
    ds: DataService,
    backupId: string,
    target: DataService,
  ): Promise<void>;
  redeploy: typeof redeployLinked;
}

const messageOf = (e: unknown) =>
  isCoreError(e) ? e.message : e instanceof Error ? e.message : String(e);

export function realMoveSteps(
  provision: (deps: DataServiceDeps, ds: DataService) => Promise<void>,
): MoveSteps {
  return {
    backup: backupNow,
    restore: async (deps, ds, backupId, target) => {
      await handleRestore(
        deps,
        ds,
        { orgId: ds.orgId, dataServiceId: ds.id, op: 'restore', backupId, targetId: target.id },
        provision,
      );
      const now = await deps.store.withOrg(ds.orgId, (r) => r.dataServices.get(target.id));
      if (!now || now.status !== 'ready' || now.error)
        throw new Error(now?.error ?? `the new data service is ${now?.status ?? 'gone'}`);
    },
    redeploy: redeployLinked,
  };
}

/** Thrown by a write of a worker whose move is no longer its own (the sweep failed it, or a new one replaced it). */
class MoveTaken extends Error {
  constructor() {
    super("the move is no longer this worker's: the sweep failed it or a new move replaced it");
  }
}

type Save = (
  patch: Partial<DataServiceMove>,
  inSameTransaction?: (repos: OrgRepos) => Promise<void>,
) => Promise<void>;

/** Runs the `move` message on the shared database `ds`. */
export async function handleMove(
  deps: DataServiceDeps,
  ds: DataService,
  provision: (deps: DataServiceDeps, ds: DataService) => Promise<void>,
  steps: MoveSteps = realMoveSteps(provision),
): Promise<void> {
  const move = ds.move;
  if (move?.status !== 'moving') return; // done, failed or never asked
  const state: DataServiceMove = { ...move };
  // Every write is a compare-and-set against the move this worker last wrote: once the sweep
  // has failed it (no beat for five minutes) or a new move replaced it, nothing here undoes that.
  let written: DataServiceMove = move;
  let taken = false;
  // One write at a time, in order: a heartbeat never lands after (and undoes) a later step.
  // Each snapshot is taken when its turn comes, so it carries every step saved before it.
  let writes: Promise<void> = Promise.resolve();
  const write = (
    patch: Partial<DataServiceMove>,
    inSameTransaction?: (repos: OrgRepos) => Promise<void>,
  ) => {
    writes = writes
      .catch(() => undefined)
      .then(async () => {
        if (taken) throw new MoveTaken();
        const next = { ...state, ...patch };
        await deps.store.withOrg(ds.orgId, async (r) => {
          if (!(await r.dataServices.setMove(ds.id, written, next))) {
            taken = true;
            throw new MoveTaken();
          }
          await inSameTransaction?.(r);
        });
        written = next;
        Object.assign(state, patch);
      });
    return writes;
  };
  const beat = () => {
    if (state.status !== 'moving' || taken) return;
    write({ heartbeatAt: deps.clock.now().toISOString() }).catch((e: unknown) =>
      deps.logger.warn({ dataServiceId: ds.id, err: messageOf(e) }, 'move heartbeat failed'),
    );
  };
  beat();
  const heartbeat = setInterval(beat, deps.config.moveHeartbeatMs ?? moveHeartbeatMs);
  try {
    await runMove(deps, ds, steps, state, write, () => taken);
  } finally {
    clearInterval(heartbeat);
    await writes.catch(() => undefined);
  }
}

async function runMove(
  deps: DataServiceDeps,
  ds: DataService,
  steps: MoveSteps,
  state: DataServiceMove,
  save: Save,
  isTaken: () => boolean,
): Promise<void> {
  const links = await deps.store.withOrg(ds.orgId, (r) =>
    r.dataServiceLinks.list({ dataServiceId: ds.id }),
  );
  let target: DataService | null = null;
  let relinked = false;
  try {
    if (ds.status !== 'ready') throw new Error(`the data service is ${ds.status}, not ready`);
    await save({ step: 'backup' });
    const backup = await steps.backup(deps, ds);
    await save({ step: 'restore', backupId: backup.id });
    target = await newRestoreTarget(deps, ds, {
      name: `${ds.name}-dedicated`.slice(0, 63),
      dedicated: true,
    });
    const t = target;
    // The target is recorded in the same transaction that inserts it: a sweep that fails
    // this move later always knows which half-made server to remove.
    await save({ targetId: t.id, at: deps.clock.now().toISOString() }, async (repos) => {
      await repos.dataServices.insert(t);
      await recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.restore_requested',
        targetType: 'data_service',
        targetId: t.id,
        data: { backupId: backup.id, from: ds.id, target: 'new', mode: 'dedicated', move: true },
      });
    });
    await steps.restore(deps, ds, backup.id, t);
    // `at` marks when the links start naming the new server: a release created from then on
    // reads its URL (the sweep's test of whether apps may already write to it).
    await save({ step: 'relink', at: deps.clock.now().toISOString() });
    // The links move in the transaction that records the next step, or not at all.
    await save({ step: 'redeploy' }, (repos) => relinkIn(repos, ds, links, t.id));
    relinked = true;
    const serviceIds = [...new Set(links.map((l) => l.serviceId))];
    const redeployed = await steps.redeploy(
      deps,
      t,
      serviceIds,
      `move of data service ${ds.name} to a dedicated server`,
    );
    await save({
      status: 'moved',
      step: null,
      releaseIds: redeployed.releases.map((r) => r.releaseId),
      at: deps.clock.now().toISOString(),
    });
    await deps.store.withOrg(ds.orgId, (repos) =>
      recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.moved',
        targetType: 'data_service',
        targetId: ds.id,
        data: {
          name: ds.name,
          to: t.id,
          backupId: backup.id,
          links: links.map((l) => l.envName),
          releases: state.releaseIds,
          notRedeployed: redeployed.skipped,
          sharedCopy: 'kept, unlinked, until confirm-move',
        },
      }),
    );
  } catch (e) {
    const step = state.step;
    if (isTaken() || e instanceof MoveTaken) {
      // The sweep (or a new move) owns it now and has put the links where they belong.
      deps.logger.error(
        { dataServiceId: ds.id, step, err: messageOf(e) },
        'move stopped: it was failed by the sweep or replaced while this worker ran it',
      );
      return;
    }
    const reason = `move failed at step ${step}: ${messageOf(e)}`;
    deps.logger.error({ dataServiceId: ds.id, step, reason }, 'move to dedicated failed');
    // The shared copy must stay linked and serving: links that moved come back, in the
    // transaction that records the failure.
    await save(
      { status: 'failed', error: reason, at: deps.clock.now().toISOString() },
      relinked && target ? (repos) => relinkIn(repos, ds, links, ds.id) : undefined,
    ).catch((err: unknown) =>
      deps.logger.error({ dataServiceId: ds.id, err: messageOf(err) }, 'move failure not saved'),
    );
    if (isTaken()) return;
    await deps.store.withOrg(ds.orgId, (repos) =>
      recordAudit(deps, repos, dataWorkerActor, null, {
        action: 'data_service.move_failed',
        targetType: 'data_service',
        targetId: ds.id,
        data: {
          name: ds.name,
          step,
          reason,
          to: target?.id ?? null,
          sharedCopy: 'still linked and serving',
        },
      }),
    );
  }
}

/** Points each of `links` (the shared copy's, as they were) at `to`, inside the caller's transaction. */
export async function relinkIn(
  repos: OrgRepos,
  ds: DataService,
  links: { id: string; serviceId: string; envName: string; createdAt: string }[],
  to: string,
): Promise<void> {
  const now = await repos.dataServiceLinks.list({});
  for (const l of links) {
    const current = now.find((n) => n.serviceId === l.serviceId && n.envName === l.envName);
    if (current) await repos.dataServiceLinks.delete(current.id);
    await repos.dataServiceLinks.insert({
      id: current?.id ?? l.id,
      orgId: ds.orgId,
      dataServiceId: to,
      serviceId: l.serviceId,
      envName: l.envName,
      createdAt: l.createdAt,
    });
  }
}
