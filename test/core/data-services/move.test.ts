/**
 * Moving a shared database to a dedicated server, on the in-memory store, vault and queue:
 * what the API refuses, the worker's sequence (backup → restore → re-link → redeploy) and
 * that a failure at each step leaves the shared copy linked and names the step, and what the
 * backup sweep does with a move whose worker died at each step. The steps
 * that need Docker (dump, restore, releases) are replaced here; the integration test runs them.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { DataServiceDeps } from '../../../core/data-services/deps.ts';
import {
  confirmMove,
  handleMove,
  requestMove,
  type MoveSteps,
} from '../../../core/data-services/move.ts';
import { dataServiceSecretContext } from '../../../core/data-services/plan.ts';
import { sweepStaleMoves } from '../../../core/data-services/sweep.ts';
import type { Principal } from '../../../core/deps.ts';
import { isCoreError } from '../../../core/errors.ts';
import type { DataService } from '../../../core/models.ts';
import type { EventQueue, SendOptions } from '../../../core/ports.ts';
import {
  aDataService,
  aDataServiceLink,
  aNode,
  aProject,
  aRelease,
  aService,
  anEnvironment,
  anOrg,
} from '../../contracts/store/builders.ts';

const ctx = { requestId: null, ip: null };
let store: MemoryStore;
let sent: { queue: string; payload: unknown; options?: SendOptions | undefined }[];
let deps: Parameters<typeof requestMove>[0] & DataServiceDeps;
let orgId: string;
let server: DataService;
let shared: DataService;
let dedicated: DataService;
let serviceIds: string[];
let projectId: string;

const owner = (): Principal => ({
  actorType: 'user',
  actorId: 'usr_1',
  userId: 'usr_1',
  orgId,
  role: 'owner',
});

const noProvision = async () => undefined;

/** Steps that succeed, recording the order they ran in; `fail` makes one throw. */
function steps(order: string[], fail?: 'backup' | 'restore' | 'redeploy'): MoveSteps {
  const step = (name: string) => {
    order.push(name);
    if (fail === name.split(':')[0]) throw new Error(`${fail} broke`);
  };
  return {
    backup: async () => (step('backup'), { id: 'bak_1' }),
    restore: async (_d, _ds, backupId, target) => {
      step(`restore:${backupId}`);
      await store.withOrg(orgId, (r) => r.dataServices.update(target.id, { status: 'ready' }));
    },
    redeploy: async (_d, target, ids) => {
      // What the new containers would read: the links already name the new data service.
      const linked = await store.withOrg(orgId, (r) =>
        r.dataServiceLinks.list({ dataServiceId: target.id }),
      );
      step(`redeploy:${ids.length}:${linked.length}`);
      return {
        releases: ids.map((serviceId, i) => ({ serviceId, releaseId: `rel_${i}` })),
        skipped: [],
      };
    },
  };
}

const links = (dataServiceId: string) =>
  store.withOrg(orgId, (r) => r.dataServiceLinks.list({ dataServiceId }));
const get = (id: string) => store.withOrg(orgId, (r) => r.dataServices.get(id));
const audits = (action: string) =>
  store.withOrg(orgId, async (r) => (await r.audit.list({ limit: 50 }, { action })).items);

async function run(s: MoveSteps): Promise<DataService> {
  await handleMove(deps, (await get(shared.id))!, noProvision, s);
  return (await get(shared.id))!;
}

beforeEach(async () => {
  store = new MemoryStore();
  const vault = new MemoryKeyVault();
  sent = [];
  const queue: EventQueue = {
    send: async (queue, payload, options) => {
      sent.push({ queue, payload, options });
      return `m${sent.length}`;
    },
    consume: async () => async () => undefined,
    ping: async () => undefined,
  };
  const org = anOrg();
  orgId = org.id;
  const project = aProject(orgId);
  projectId = project.id;
  const node = aNode(orgId);
  const mariadb = {
    engine: 'mariadb' as const,
    version: '10.11',
    status: 'ready' as const,
    settings: {},
  };
  server = aDataService(orgId, project.id, node.id, { ...mariadb, name: 'main', shareable: true });
  shared = aDataService(orgId, project.id, node.id, {
    ...mariadb,
    name: 'shop-db',
    sharedServerId: server.id,
  });
  shared.sealedPassword = await vault.seal('pw', dataServiceSecretContext(orgId, shared.id));
  dedicated = aDataService(orgId, project.id, node.id, { ...mariadb, name: 'own' });
  const services = [aService(orgId, project.id), aService(orgId, project.id)];
  serviceIds = services.map((s) => s.id);
  await store.withOrg(orgId, async (r) => {
    await r.orgs.insert(org);
    await r.projects.insert(project);
    await r.nodes.insert(node);
    for (const s of services) await r.services.insert(s);
    for (const d of [server, shared, dedicated]) await r.dataServices.insert(d);
    await r.dataServiceLinks.insert(
      aDataServiceLink(orgId, shared.id, services[0]!.id, { envName: 'DATABASE_URL' }),
    );
    await r.dataServiceLinks.insert(
      aDataServiceLink(orgId, shared.id, services[1]!.id, { envName: 'SHOP_DB' }),
    );
  });
  deps = {
    store,
    vault,
    queue,
    ids: new SequenceIds(),
    clock: new ManualClock(),
    logger: new MemoryLogger(),
    runtime: {},
    config: { maxStepAttempts: 3 },
  } as unknown as typeof deps;
});

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isCoreError(e)) return `${e.kind}:${e.code}`;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('requestMove', () => {
  it('marks the shared database moving, queues one move not redelivered, and audits', async () => {
    const view = await requestMove(deps, owner(), shared.id, ctx);
    expect(view.move).toMatchObject({ status: 'moving', step: 'backup', targetId: null });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.payload).toEqual({ orgId, dataServiceId: shared.id, op: 'move' });
    expect(sent[0]!.options).toMatchObject({ group: shared.id, maxAttempts: 1 });
    expect(await audits('data_service.move_requested')).toHaveLength(1);
  });

  it('refuses a dedicated service, the shared server, a move in progress or unconfirmed, and an unknown id', async () => {
    expect(await refused(requestMove(deps, owner(), dedicated.id, ctx))).toBe(
      'conflict:data_service_not_shared',
    );
    expect(await refused(requestMove(deps, owner(), server.id, ctx))).toBe(
      'conflict:data_service_not_shared',
    );
    await requestMove(deps, owner(), shared.id, ctx);
    expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_in_progress',
    );
    await run(steps([]));
    expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_unconfirmed',
    );
    expect(await refused(requestMove(deps, owner(), 'dat_nope', ctx))).toBe(
      'not_found:data_service_not_found',
    );
    expect(sent).toHaveLength(1);
  });

  it('accepts a new move when one has been moving for over five hours (its worker died)', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    (deps.clock as ManualClock).advance(4 * 60 * 60 * 1000);
    expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_in_progress',
    );
    (deps.clock as ManualClock).advance(2 * 60 * 60 * 1000);
    expect((await requestMove(deps, owner(), shared.id, ctx)).move?.status).toBe('moving');
    expect(sent).toHaveLength(2);
  });

  it('accepts a new move five minutes after the running one stopped beating (its worker died)', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    const clock = deps.clock as ManualClock;
    const moving = (await get(shared.id))!.move!;
    // The worker beat once, then died.
    await store.withOrg(orgId, (r) =>
      r.dataServices.update(shared.id, {
        move: {
          ...moving,
          step: 'restore',
          targetId: 'dat_half',
          heartbeatAt: clock.now().toISOString(),
        },
      }),
    );
    clock.advance(4 * 60 * 1000);
    expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_in_progress',
    );
    clock.advance(61 * 1000);
    expect((await requestMove(deps, owner(), shared.id, ctx)).move).toMatchObject({
      status: 'moving',
      step: 'backup',
      targetId: null,
    });
    expect(sent).toHaveLength(2);
    // The audit names what the dead move left behind.
    const requested = await audits('data_service.move_requested');
    expect(requested.map((a) => a.data)).toContainEqual(
      expect.objectContaining({ replacesStale: { step: 'restore', targetId: 'dat_half' } }),
    );
  });

  it('refuses a shared database that is not ready, and viewers', async () => {
    await store.withOrg(orgId, (r) => r.dataServices.update(shared.id, { status: 'provisioning' }));
    expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:data_service_not_ready',
    );
    expect(
      await refused(requestMove(deps, { ...owner(), role: 'viewer' }, shared.id, ctx)),
    ).toMatch(/^forbidden:/);
  });
});

describe('handleMove', () => {
  it('beats while a step runs, so a live move is never taken for a dead one', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    deps.config.moveHeartbeatMs = 5;
    const clock = deps.clock as ManualClock;
    const beats: (string | null | undefined)[] = [];
    const slow = steps([]);
    const after = await run({
      ...slow,
      backup: async (d, ds) => {
        // A long dump: ten minutes pass while it runs.
        for (let i = 0; i < 10; i++) {
          clock.advance(60_000);
          await new Promise((r) => setTimeout(r, 20));
          beats.push((await get(shared.id))!.move!.heartbeatAt);
          // Meanwhile another request sees a live move.
          if (i === 9)
            expect(await refused(requestMove(deps, owner(), shared.id, ctx))).toBe(
              'conflict:move_in_progress',
            );
        }
        return slow.backup(d, ds);
      },
    });
    expect(after.move?.status).toBe('moved');
    // Each beat wrote the clock's time of that minute, and never undid the step.
    expect(beats.at(-1)).toBe(clock.now().toISOString());
    expect(new Set(beats).size).toBeGreaterThanOrEqual(8);
    expect(sent).toHaveLength(1);
  });

  it('backs up, restores into a new dedicated service, re-links under the same names, then redeploys', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    const order: string[] = [];
    const after = await run(steps(order));
    // Both links already point at the new one when the redeploy starts.
    expect(order).toEqual(['backup', 'restore:bak_1', 'redeploy:2:2']);
    expect(after.move).toMatchObject({
      status: 'moved',
      backupId: 'bak_1',
      error: null,
      releaseIds: ['rel_0', 'rel_1'],
    });
    const target = (await get(after.move!.targetId!))!;
    expect(target).toMatchObject({
      sharedServerId: null,
      engine: 'mariadb',
      status: 'ready',
      name: 'shop-db-dedicated',
    });
    expect(target.sealedPassword).not.toBe(shared.sealedPassword);
    expect(await links(shared.id)).toEqual([]);
    const moved = await links(target.id);
    expect(moved.map((l) => [l.serviceId, l.envName]).sort()).toEqual(
      [
        [serviceIds[0], 'DATABASE_URL'],
        [serviceIds[1], 'SHOP_DB'],
      ].sort(),
    );
    // The shared copy is kept (ready, unlinked) until confirmed.
    expect(after.status).toBe('ready');
    const [audit] = await audits('data_service.moved');
    expect(audit!.data).toMatchObject({ to: target.id, backupId: 'bak_1' });
  });

  for (const step of ['backup', 'restore', 'redeploy'] as const)
    it(`a failure at ${step} leaves the shared copy linked, and says so`, async () => {
      await requestMove(deps, owner(), shared.id, ctx);
      const after = await run(steps([], step));
      expect(after.move).toMatchObject({ status: 'failed', step });
      expect(after.move!.error).toMatch(new RegExp(`^move failed at step ${step}: ${step} broke`));
      expect((await links(shared.id)).map((l) => l.envName).sort()).toEqual([
        'DATABASE_URL',
        'SHOP_DB',
      ]);
      if (after.move!.targetId) expect(await links(after.move!.targetId)).toEqual([]);
      const [audit] = await audits('data_service.move_failed');
      expect(audit!.data).toMatchObject({ step, sharedCopy: 'still linked and serving' });
      // A failed move may be asked again.
      await requestMove(deps, owner(), shared.id, ctx);
    });

  it('a restore that leaves the new service unready fails at restore (real steps check it)', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    const s = steps([]);
    const after = await run({
      ...s,
      restore: async () => {
        throw new Error('the new data service is failed');
      },
    });
    expect(after.move).toMatchObject({ status: 'failed', step: 'restore' });
    expect(after.move!.targetId).not.toBeNull();
  });

  it('does nothing for a move that is not in progress (done, failed, never asked)', async () => {
    const order: string[] = [];
    await run(steps(order));
    expect(order).toEqual([]);
    expect((await get(shared.id))!.move ?? null).toBeNull();
  });
});

describe('confirmMove', () => {
  it('deletes the unlinked shared copy once moved, and refuses before', async () => {
    expect(await refused(confirmMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_not_done',
    );
    await requestMove(deps, owner(), shared.id, ctx);
    expect(await refused(confirmMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:move_not_done',
    );
    await run(steps([]));
    const view = await confirmMove(deps, owner(), shared.id, ctx);
    expect(view.status).toBe('deleting');
    expect(sent.at(-1)!.payload).toEqual({ orgId, dataServiceId: shared.id, op: 'delete' });
  });

  it('refuses while a redeploy of the move has not completed (its old containers use the shared copy)', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    await run(steps([]));
    const env = anEnvironment(orgId, projectId);
    await store.withOrg(orgId, async (r) => {
      await r.environments.insert(env);
      await r.releases.insert(
        aRelease(orgId, serviceIds[0]!, env.id, { id: 'rel_0', status: 'failed' }),
      );
      await r.releases.insert(
        aRelease(orgId, serviceIds[1]!, env.id, { id: 'rel_1', status: 'completed' }),
      );
    });
    const why = await confirmMove(deps, owner(), shared.id, ctx).catch((e: Error) => e.message);
    expect(why).toMatch(/have not all completed \(rel_0: failed\)/);
    // Deployed again and healthy: the shared copy is no longer served from.
    await store.withOrg(orgId, (r) =>
      r.releases.insert(
        aRelease(orgId, serviceIds[0]!, env.id, {
          id: 'rel_0b',
          status: 'completed',
          createdAt: '2099-01-01T00:00:00.000Z',
        }),
      ),
    );
    expect((await confirmMove(deps, owner(), shared.id, ctx)).status).toBe('deleting');
  });

  it('refuses while something was linked to the shared copy again', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    await run(steps([]));
    await store.withOrg(orgId, (r) =>
      r.dataServiceLinks.insert(
        aDataServiceLink(orgId, shared.id, serviceIds[0]!, { envName: 'OLD' }),
      ),
    );
    expect(await refused(confirmMove(deps, owner(), shared.id, ctx))).toBe(
      'conflict:data_service_linked',
    );
  });
});

describe('sweepStaleMoves (the backup sweep fails a move whose worker died)', () => {
  const clock = () => deps.clock as ManualClock;
  const sweep = () => sweepStaleMoves(deps);
  const deletes = () =>
    sent.filter((m) => (m.payload as { op?: string }).op === 'delete').map((m) => m.payload);

  /**
   * Runs a move whose worker "dies" inside `step`: the step does not return until `resume`,
   * and no heartbeat follows the first one. `before` runs as the step starts.
   */
  async function dieAt(
    step: 'backup' | 'restore' | 'redeploy',
    before?: () => Promise<void>,
  ): Promise<{ worker: Promise<DataService>; resume: () => void }> {
    await requestMove(deps, owner(), shared.id, ctx);
    deps.config.moveHeartbeatMs = 2_000_000_000;
    let resume!: () => void;
    const hang = new Promise<void>((r) => (resume = r));
    let entered!: () => void;
    const inStep = new Promise<void>((r) => (entered = r));
    const hold = async () => {
      await before?.();
      entered();
      await hang;
    };
    const s = steps([]);
    const worker = run({
      backup: async (...a) => (step === 'backup' ? await hold() : undefined, s.backup(...a)),
      restore: async (...a) => (step === 'restore' ? await hold() : undefined, s.restore(...a)),
      redeploy: async (...a) => (step === 'redeploy' ? await hold() : undefined, s.redeploy(...a)),
    });
    await inStep;
    return { worker, resume };
  }

  it('fails a move never started once five hours passed, and leaves a younger one alone', async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    const askedAt = clock().now().toISOString();
    clock().advance(4 * 60 * 60 * 1000);
    expect(await sweep()).toBe(0);
    expect((await get(shared.id))!.move!.status).toBe('moving');
    clock().advance(61 * 60 * 1000);
    expect(await sweep()).toBe(1);
    const after = (await get(shared.id))!;
    expect(after.move).toMatchObject({ status: 'failed', step: 'backup', targetId: null });
    expect(after.move!.error).toBe(
      `move failed at step backup: worker stopped (no heartbeat since ${askedAt}, when it was asked); marked failed by the sweep`,
    );
    const [audit] = await audits('data_service.move_failed');
    expect(audit!.data).toMatchObject({ step: 'backup', swept: true, removed: null });
    expect(deletes()).toEqual([]);
    // Settled once: a second sweep finds nothing, and a new move may be asked.
    expect(await sweep()).toBe(0);
    expect(await audits('data_service.move_failed')).toHaveLength(1);
    expect((await requestMove(deps, owner(), shared.id, ctx)).move?.status).toBe('moving');
  });

  for (const step of ['backup', 'restore'] as const)
    it(`a worker dead at ${step}: failed five minutes after its last beat, the half-made server removed, and the worker never undoes it`, async () => {
      const { worker, resume } = await dieAt(step);
      const lastBeat = (await get(shared.id))!.move!.heartbeatAt!;
      clock().advance(4 * 60 * 1000);
      expect(await sweep()).toBe(0); // still within five beats: alive
      clock().advance(61 * 1000);
      expect(await sweep()).toBe(1);
      const after = (await get(shared.id))!;
      expect(after.move).toMatchObject({ status: 'failed', step });
      expect(after.move!.error).toBe(
        `move failed at step ${step}: worker stopped (no heartbeat since ${lastBeat}); marked failed by the sweep`,
      );
      expect((await links(shared.id)).map((l) => l.envName).sort()).toEqual([
        'DATABASE_URL',
        'SHOP_DB',
      ]);
      const [audit] = await audits('data_service.move_failed');
      if (step === 'restore') {
        // The target was recorded with its insert: it goes, with its volume.
        const target = (await get(after.move!.targetId!))!;
        expect(target).toMatchObject({ status: 'deleting', removeVolume: true });
        expect(deletes()).toEqual([{ orgId, dataServiceId: target.id, op: 'delete' }]);
        expect(audit!.data).toMatchObject({
          removed: { id: target.id, name: 'shop-db-dedicated' },
        });
      } else {
        expect(after.move!.targetId).toBeNull();
        expect(deletes()).toEqual([]);
      }
      // The worker was only slow after all: it comes back, but the move is no longer its own.
      resume();
      const end = await worker;
      expect(end.move).toEqual(after.move);
      expect((await links(shared.id)).map((l) => l.envName).sort()).toEqual([
        'DATABASE_URL',
        'SHOP_DB',
      ]);
      expect(await audits('data_service.moved')).toEqual([]);
      expect(await audits('data_service.move_failed')).toHaveLength(1);
    });

  it('a worker dead at redeploy before any release: the links come back to the shared copy and the new server goes', async () => {
    const { worker, resume } = await dieAt('redeploy');
    const moving = (await get(shared.id))!.move!;
    expect(await links(shared.id)).toEqual([]); // re-linked before it died
    clock().advance(6 * 60 * 1000);
    expect(await sweep()).toBe(1);
    const after = (await get(shared.id))!;
    expect(after.move).toMatchObject({ status: 'failed', step: 'redeploy' });
    const back = await links(shared.id);
    expect(back.map((l) => [l.serviceId, l.envName]).sort()).toEqual(
      [
        [serviceIds[0], 'DATABASE_URL'],
        [serviceIds[1], 'SHOP_DB'],
      ].sort(),
    );
    expect(await links(moving.targetId!)).toEqual([]);
    expect((await get(moving.targetId!))!.status).toBe('deleting');
    const [audit] = await audits('data_service.move_failed');
    expect(audit!.data).toMatchObject({ linksRestored: expect.arrayContaining(['SHOP_DB']) });
    resume();
    expect((await worker).move).toEqual(after.move);
    expect(await links(moving.targetId!)).toEqual([]);
  });

  it('a worker dead at redeploy after a release read the new server: finished, never undone under it', async () => {
    const env = anEnvironment(orgId, projectId);
    let started = '';
    const { resume, worker } = await dieAt('redeploy', async () => {
      // The dead worker had queued the first service's redeploy: its candidate reads the new URL.
      clock().advance(1000);
      const rel = aRelease(orgId, serviceIds[0]!, env.id, {
        status: 'completed',
        createdAt: clock().now().toISOString(),
      });
      started = rel.id;
      await store.withOrg(orgId, async (r) => {
        await r.environments.insert(env);
        await r.releases.insert(rel);
      });
    });
    const targetId = (await get(shared.id))!.move!.targetId!;
    clock().advance(6 * 60 * 1000);
    expect(await sweep()).toBe(1);
    const after = (await get(shared.id))!;
    expect(after.move).toMatchObject({ status: 'moved', step: null, releaseIds: [started] });
    expect((await links(targetId)).map((l) => l.envName).sort()).toEqual([
      'DATABASE_URL',
      'SHOP_DB',
    ]);
    expect((await get(targetId))!.status).toBe('ready');
    expect(deletes()).toEqual([]);
    expect(await audits('data_service.move_failed')).toEqual([]);
    const [audit] = await audits('data_service.moved');
    expect(audit!.data).toMatchObject({ to: targetId, releases: [started] });
    expect(audit!.data.swept).toMatch(
      /^worker stopped \(no heartbeat since .*\) during step redeploy; releases reading the new server had started/,
    );
    // The second service was not redeployed by the dead worker; this engine cannot deploy, so it is named.
    expect(audit!.data.notRedeployed).toEqual([`${serviceIds[1]}: cannot deploy here`]);
    resume();
    expect((await worker).move).toEqual(after.move);
  });

  it("a live worker wins: a beat landing between the sweep's read and its write keeps the move", async () => {
    await requestMove(deps, owner(), shared.id, ctx);
    const moving = (await get(shared.id))!.move!;
    await store.withOrg(orgId, (r) =>
      r.dataServices.update(shared.id, {
        move: { ...moving, heartbeatAt: clock().now().toISOString() },
      }),
    );
    clock().advance(6 * 60 * 1000);
    let calls = 0;
    const racing = Object.create(store) as MemoryStore;
    racing.withOrg = async (o, fn) => {
      const out = await store.withOrg(o, fn);
      // Right after the sweep read the move, its worker beats.
      if (++calls === 1) {
        const m = (await get(shared.id))!.move!;
        await store.withOrg(orgId, (r) =>
          r.dataServices.update(shared.id, {
            move: { ...m, heartbeatAt: clock().now().toISOString() },
          }),
        );
      }
      return out;
    };
    expect(await sweepStaleMoves({ ...deps, store: racing })).toBe(0);
    expect((await get(shared.id))!.move).toMatchObject({ status: 'moving', error: null });
    expect(await audits('data_service.move_failed')).toEqual([]);
  });
});
