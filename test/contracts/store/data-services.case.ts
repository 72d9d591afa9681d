/** Store contract: data services and their links. */
import { describe, expect, it } from 'vitest';
import {
  aDataService,
  aDataServiceBackup,
  aDataServiceLink,
  aDataServiceMove,
  aNode,
  aService,
  rejectsWith,
} from './builders.ts';
import type { DataServiceMove } from '../../../core/models.ts';
import { store, a, b, inA } from './context.ts';

export function dataServiceCases(): void {
  describe('data services', () => {
    it('finds backups and drills left running past a time, across orgs, ids only', async () => {
      const node = aNode(a.orgId);
      const d = aDataService(a.orgId, a.projectId, node.id);
      const old = '2020-01-01T00:00:00.000Z';
      const stuck = aDataServiceBackup(a.orgId, d.id, { startedAt: old });
      const young = aDataServiceBackup(a.orgId, d.id, { startedAt: '2020-01-01T02:00:00.000Z' });
      const done = aDataServiceBackup(a.orgId, d.id, {
        startedAt: old,
        status: 'failed',
        finishedAt: old,
      });
      const drilling = aDataServiceBackup(a.orgId, d.id, {
        startedAt: old,
        status: 'completed',
        finishedAt: old,
        drillStatus: 'running',
        drilledAt: old,
      });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(d);
        for (const x of [stuck, young, done, drilling]) await r.dataServiceBackups.insert(x);
      });
      const found = await store.backupLookup!.stuckBackups('2020-01-01T01:00:00.000Z', 100);
      const mine = found.filter((f) => f.dataServiceId === d.id);
      expect(mine.sort((x, y) => x.backupId.localeCompare(y.backupId))).toEqual(
        [
          { orgId: a.orgId, dataServiceId: d.id, backupId: stuck.id, kind: 'backup' },
          { orgId: a.orgId, dataServiceId: d.id, backupId: drilling.id, kind: 'drill' },
        ].sort((x, y) => x.backupId.localeCompare(y.backupId)),
      );
      expect(await store.backupLookup!.stuckBackups('2020-01-01T01:00:00.000Z', 0)).toEqual([]);
      await inA((r) => r.dataServices.delete(d.id));
    });

    it('finds moves whose worker stopped beating (or never started), across orgs, ids only', async () => {
      const node = aNode(a.orgId);
      const move = aDataServiceMove;
      const ds = (m: DataServiceMove | null) =>
        aDataService(a.orgId, a.projectId, node.id, { move: m });
      const silent = ds(move({ heartbeatAt: '2020-01-01T00:50:00.000Z' }));
      const beating = ds(move({ heartbeatAt: '2020-01-01T00:58:00.000Z' }));
      const neverStarted = ds(move({ at: '2019-12-31T18:00:00.000Z' }));
      const queued = ds(move({ at: '2020-01-01T00:00:00.000Z' }));
      const failed = ds(move({ status: 'failed', heartbeatAt: '2020-01-01T00:10:00.000Z' }));
      const none = ds(null);
      await inA(async (r) => {
        await r.nodes.insert(node);
        for (const d of [silent, beating, neverStarted, queued, failed, none])
          await r.dataServices.insert(d);
      });
      const found = await store.backupLookup!.staleMoves(
        '2020-01-01T00:55:00.000Z',
        '2019-12-31T19:00:00.000Z',
        100,
      );
      const mine = new Set([silent, beating, neverStarted, queued, failed, none].map((d) => d.id));
      expect(
        found
          .filter((f) => mine.has(f.dataServiceId))
          .sort((x, y) => x.dataServiceId.localeCompare(y.dataServiceId)),
      ).toEqual(
        [silent, neverStarted]
          .map((d) => ({ orgId: a.orgId, dataServiceId: d.id }))
          .sort((x, y) => x.dataServiceId.localeCompare(y.dataServiceId)),
      );
      expect(
        await store.backupLookup!.staleMoves(
          '2020-01-01T00:55:00.000Z',
          '2020-01-01T00:00:00.000Z',
          0,
        ),
      ).toEqual([]);
      await inA(async (r) => {
        for (const d of [silent, beating, neverStarted, queued, failed, none])
          await r.dataServices.delete(d.id);
      });
    });

    it('sets a move only while it is still the one expected (compare-and-set)', async () => {
      const node = aNode(a.orgId);
      const first = aDataServiceMove();
      const d = aDataService(a.orgId, a.projectId, node.id, { move: null });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(d);
      });
      expect(await inA((r) => r.dataServices.setMove(d.id, null, first))).toBe(true);
      // Key order and an undefined key do not matter; any other difference does.
      const { at, ...rest } = first;
      const reordered = { at, ...rest, heartbeatAt: undefined };
      const beat = { ...first, heartbeatAt: '2020-01-01T00:01:00.000Z' };
      expect(await inA((r) => r.dataServices.setMove(d.id, reordered, beat))).toBe(true);
      const failed = { ...beat, status: 'failed' as const, error: 'worker stopped' };
      expect(await inA((r) => r.dataServices.setMove(d.id, first, failed))).toBe(false);
      expect(await inA((r) => r.dataServices.setMove(d.id, null, failed))).toBe(false);
      expect((await inA((r) => r.dataServices.get(d.id)))!.move).toEqual(beat);
      expect(await inA((r) => r.dataServices.setMove(d.id, beat, failed))).toBe(true);
      expect((await inA((r) => r.dataServices.get(d.id)))!.move).toEqual(failed);
      // Another org's row is never set, whatever is expected.
      expect(await store.withOrg(b.orgId, (r) => r.dataServices.setMove(d.id, failed, null))).toBe(
        false,
      );
      expect(await inA((r) => r.dataServices.setMove('dat_missing', null, first))).toBe(false);
      await inA((r) => r.dataServices.delete(d.id));
    });

    it('keeps a database on a shared server with its server, which must exist in the same org', async () => {
      const node = aNode(a.orgId);
      const server = aDataService(a.orgId, a.projectId, node.id, {
        engine: 'mariadb',
        version: '10.11',
        shareable: true,
      });
      const onIt = aDataService(a.orgId, a.projectId, node.id, {
        engine: 'mariadb',
        version: '10.11',
        sharedServerId: server.id,
      });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(server);
        await r.dataServices.insert(onIt);
      });
      expect(await inA((r) => r.dataServices.get(onIt.id))).toMatchObject({
        shareable: false,
        sharedServerId: server.id,
      });
      expect(await inA((r) => r.dataServices.get(server.id))).toMatchObject({ shareable: true });
      await rejectsWith(
        inA((r) =>
          r.dataServices.insert(
            aDataService(a.orgId, a.projectId, node.id, { sharedServerId: 'dat_missing' }),
          ),
        ),
        'data_service_not_found',
      );
      await inA(async (r) => {
        await r.dataServices.delete(onIt.id);
        await r.dataServices.delete(server.id);
      });
    });

    it('keeps backups per data service, oldest first, updates them and drops them with it', async () => {
      const node = aNode(a.orgId);
      const d = aDataService(a.orgId, a.projectId, node.id);
      const b1 = aDataServiceBackup(a.orgId, d.id);
      const b2 = aDataServiceBackup(a.orgId, d.id, { trigger: 'schedule' });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(d);
        await r.dataServiceBackups.insert(b2);
        await r.dataServiceBackups.insert(b1);
      });
      expect(await inA((r) => r.dataServiceBackups.list(d.id))).toEqual([b1, b2]);
      expect(await store.withOrg(b.orgId, (r) => r.dataServiceBackups.list(d.id))).toEqual([]);
      const manifest = {
        format: 1 as const,
        backupId: b1.id,
        dataServiceId: d.id,
        engine: 'redis' as const,
        serverVersion: '7.0.15',
        tool: 'redis BGSAVE + dump.rdb',
        encoding: 'gzip+aes-256-gcm' as const,
        sealedDataKey: 'v1.sealed',
        objectKey: b1.objectKey,
        rawBytes: 5_000_000_000,
        storedBytes: 1234,
        sha256: 'a'.repeat(64),
        rawSha256: 'b'.repeat(64),
        tables: {},
        keys: 3,
        takenAt: b1.startedAt,
      };
      const patch = {
        status: 'completed' as const,
        rawBytes: 5_000_000_000,
        storedBytes: 1234,
        sha256: 'a'.repeat(64),
        manifest,
        drillStatus: 'passed' as const,
        drillRtoMs: 1500,
        drillRpoMs: 20,
      };
      await inA((r) => r.dataServiceBackups.update(b1.id, patch));
      expect(await inA((r) => r.dataServiceBackups.get(b1.id))).toEqual({ ...b1, ...patch });
      expect(await inA((r) => r.dataServiceBackups.delete(b2.id))).toBe(true);
      expect(await inA((r) => r.dataServiceBackups.delete(b2.id))).toBe(false);
      await inA((r) => r.dataServices.delete(d.id));
      expect(await inA((r) => r.dataServiceBackups.get(b1.id))).toBeNull();
    });

    it('inserts, reads, lists by project, updates and deletes, one org only', async () => {
      const node = aNode(a.orgId);
      const d = aDataService(a.orgId, a.projectId, node.id);
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(d);
      });
      expect(await inA((r) => r.dataServices.get(d.id))).toEqual(d);
      expect(await store.withOrg(b.orgId, (r) => r.dataServices.get(d.id))).toBeNull();
      expect(
        (await inA((r) => r.dataServices.list({ limit: 10 }, { projectId: a.projectId }))).items,
      ).toEqual([d]);
      expect(
        (await inA((r) => r.dataServices.list({ limit: 10 }, { projectId: 'prj_other' }))).items,
      ).toEqual([]);
      await inA((r) =>
        r.dataServices.update(d.id, { status: 'ready', settings: { persistence: 'aof' } }),
      );
      expect(await inA((r) => r.dataServices.get(d.id))).toEqual({
        ...d,
        status: 'ready',
        settings: { persistence: 'aof' },
      });
      expect(await store.withOrg(b.orgId, (r) => r.dataServices.delete(d.id))).toBe(false);
      expect(await inA((r) => r.dataServices.delete(d.id))).toBe(true);
      expect(await inA((r) => r.dataServices.get(d.id))).toBeNull();
    });

    it('keeps a drill schedule: every_backup when none is given, weekly once set', async () => {
      const node = aNode(a.orgId);
      const { drillSchedule: _d, ...old } = aDataService(a.orgId, a.projectId, node.id);
      const weekly = aDataService(a.orgId, a.projectId, node.id, { drillSchedule: 'weekly' });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(old);
        await r.dataServices.insert(weekly);
      });
      // A row written before weekly drills existed reads as it behaved: every backup drilled.
      expect((await inA((r) => r.dataServices.get(old.id)))?.drillSchedule).toBe('every_backup');
      expect((await inA((r) => r.dataServices.get(weekly.id)))?.drillSchedule).toBe('weekly');
      await inA((r) => r.dataServices.update(old.id, { drillSchedule: 'weekly' }));
      await inA((r) => r.dataServices.update(weekly.id, { drillSchedule: 'every_backup' }));
      expect(await inA((r) => r.dataServices.get(old.id))).toEqual({
        ...old,
        drillSchedule: 'weekly',
      });
      expect((await inA((r) => r.dataServices.get(weekly.id)))?.drillSchedule).toBe('every_backup');
      await inA(async (r) => {
        await r.dataServices.delete(old.id);
        await r.dataServices.delete(weekly.id);
      });
    });

    it('refuses a second data service of one name in a project, and an unknown project or node', async () => {
      const node = aNode(a.orgId);
      const d = aDataService(a.orgId, a.projectId, node.id, { name: 'cache' });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.dataServices.insert(d);
      });
      const clash = await rejectsWith(
        inA((r) =>
          r.dataServices.insert(aDataService(a.orgId, a.projectId, node.id, { name: 'cache' })),
        ),
        'data_service_exists',
      );
      expect(clash.kind).toBe('conflict');
      await rejectsWith(
        inA((r) => r.dataServices.insert(aDataService(a.orgId, 'prj_missing', node.id))),
        'project_not_found',
      );
    });

    it('links services once per pair and env name; links go with their data service', async () => {
      const node = aNode(a.orgId);
      const d = aDataService(a.orgId, a.projectId, node.id);
      const other = aService(a.orgId, a.projectId, { name: 'other' });
      const l1 = aDataServiceLink(a.orgId, d.id, a.serviceId);
      const l2 = aDataServiceLink(a.orgId, d.id, other.id, { envName: 'CACHE_URL' });
      await inA(async (r) => {
        await r.nodes.insert(node);
        await r.services.insert(other);
        await r.dataServices.insert(d);
        await r.dataServiceLinks.insert(l1);
        await r.dataServiceLinks.insert(l2);
      });
      expect(await inA((r) => r.dataServiceLinks.list({ dataServiceId: d.id }))).toEqual([l1, l2]);
      expect(await inA((r) => r.dataServiceLinks.list({ serviceId: other.id }))).toEqual([l2]);
      expect(await store.withOrg(b.orgId, (r) => r.dataServiceLinks.list({}))).toEqual([]);
      const again = await rejectsWith(
        inA((r) =>
          r.dataServiceLinks.insert(aDataServiceLink(a.orgId, d.id, a.serviceId, { envName: 'X' })),
        ),
        'data_service_link_exists',
      );
      expect(again.kind).toBe('conflict');
      const d2 = aDataService(a.orgId, a.projectId, node.id);
      await inA((r) => r.dataServices.insert(d2));
      const sameEnv = await rejectsWith(
        inA((r) => r.dataServiceLinks.insert(aDataServiceLink(a.orgId, d2.id, a.serviceId))),
        'data_service_link_exists',
      );
      expect(sameEnv.kind).toBe('conflict');
      expect(await inA((r) => r.dataServiceLinks.delete(l2.id))).toBe(true);
      expect(await inA((r) => r.dataServices.delete(d.id))).toBe(true);
      expect(await inA((r) => r.dataServiceLinks.list({}))).toEqual([]);
    });
  });
}
