/**
 * Control-plane backups in the core, with the memory twins: the manifest written last and
 * matching the counts, a drill that compares, a damaged object that fails its drill,
 * retention by the stored settings that keeps the newest passed drill, and the checks of
 * settings and retention. The real PostgreSQL runs in test/integration/control-backups.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { NodeBackupCodec } from '../../../adapters/backup/node-codec.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryControlDatabase } from '../../../adapters/control-database/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryObjectStore } from '../../../adapters/objects/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { ControlBackupDeps } from '../../../core/control-backups/deps.ts';
import {
  checkDatabaseName,
  checkSettings,
  defaultControlBackupSettings,
} from '../../../core/control-backups/plan.ts';
import {
  applyControlRetention,
  controlBackupsMissing,
  runControlBackup,
  runControlDrill,
} from '../../../core/control-backups/work.ts';
import { checkRetention } from '../../../core/data-services/backups.ts';
import { InvalidInput } from '../../../core/errors.ts';

function setup() {
  const events: string[] = [];
  const database = new MemoryControlDatabase({ 'public.orgs': 2, 'public.users': 3 });
  const objects = new MemoryObjectStore();
  const clock = new ManualClock('2026-03-01T02:00:00.000Z');
  const deps: ControlBackupDeps = {
    store: new MemoryStore(),
    vault: new MemoryKeyVault(),
    clock,
    ids: new SequenceIds(),
    logger: new MemoryLogger(),
    database,
    objects,
    backupCodec: new NodeBackupCodec(),
    onEvent: (e) => void events.push(e),
    config: {},
  };
  return { deps, events, database, objects, clock };
}

describe('control-plane backups (core)', () => {
  it('stores the dump and then its manifest with the snapshot counts, and its drill passes', async () => {
    const { deps, events, objects } = setup();
    const row = await runControlBackup(deps, { op: 'backup', trigger: 'schedule' });
    expect(row).toMatchObject({ status: 'completed', trigger: 'schedule', error: null });
    expect(await objects.list(`control-backups/${row!.id}/`)).toEqual([
      `control-backups/${row!.id}/dump.gz.enc`,
      `control-backups/${row!.id}/manifest.json`,
    ]);
    const manifest = JSON.parse(new TextDecoder().decode((await objects.get(row!.manifestKey))!));
    expect(manifest).toMatchObject({
      kind: 'control-plane',
      backupId: row!.id,
      tables: { 'public.orgs': 2, 'public.users': 3 },
      serverVersion: '15.0',
      sha256: row!.sha256,
    });
    const drilled = await runControlDrill(deps, row!.id);
    expect(drilled).toMatchObject({ drillStatus: 'passed', drillError: null });
    expect(events).toEqual(['backup.completed', 'drill.passed']);
  });

  it('fails the drill of a stored object with a flipped byte, naming the checksum', async () => {
    const { deps, events, objects } = setup();
    const row = (await runControlBackup(deps, { op: 'backup', trigger: 'manual' }))!;
    const bytes = (await objects.get(row.objectKey))!;
    const flipped = new Uint8Array(bytes);
    flipped[10]! ^= 0xff;
    await objects.put(row.objectKey, flipped);
    const drilled = await runControlDrill(deps, row.id);
    expect(drilled!.drillStatus).toBe('failed');
    expect(drilled!.drillError).toMatch(/is corrupted: the stored dump's SHA-256/);
    expect(events).toEqual(['backup.completed', 'drill.failed']);
  });

  it('fails the backup (not retried, nothing stored) when the dump fails midway', async () => {
    const { deps, events, objects, database } = setup();
    database.failNextDump = 'pg_dump exited with 1: out of disk';
    const row = await runControlBackup(deps, { op: 'backup', trigger: 'schedule' });
    expect(row).toMatchObject({ status: 'failed' });
    expect(row!.error).toMatch(/pg_dump exited with 1: out of disk/);
    expect(await objects.list('control-backups/')).toEqual([]);
    expect(events).toEqual(['backup.failed']);
  });

  it('says why it cannot run, and records the failure, where there is no database tool (the cloud)', async () => {
    const { deps, events } = setup();
    const cloud = { ...deps, database: undefined, config: { unavailableReason: 'RDS does' } };
    expect(controlBackupsMissing(cloud)).toBe('RDS does');
    const row = await runControlBackup(cloud, { op: 'backup', trigger: 'schedule' });
    expect(row).toMatchObject({
      status: 'failed',
      error: 'control-plane backups cannot run: RDS does',
    });
    expect(events).toEqual(['backup.failed']);
  });

  it('applies the stored retention after each drill, never deleting the newest passed drill', async () => {
    const { deps, clock, objects } = setup();
    await deps.store.controlBackups!.saveSettings({
      ...defaultControlBackupSettings(clock.now().toISOString()),
      retention: { daily: 2, weekly: 0, monthly: 0 },
    });
    const ids: string[] = [];
    for (let day = 0; day < 4; day++) {
      const row = (await runControlBackup(deps, { op: 'backup', trigger: 'schedule' }))!;
      ids.push(row.id);
      // Only the first one's drill passes: the others find a damaged object.
      if (day > 0) await objects.put(row.objectKey, new Uint8Array([1, 2, 3]));
      await runControlDrill(deps, row.id);
      clock.advance(86_400_000);
    }
    const left = (await deps.store.controlBackups!.list()).map((b) => b.id);
    // The two newest days, and the oldest: the newest (only) backup whose drill passed.
    expect(left).toEqual([ids[0], ids[2], ids[3]]);
    expect(await objects.get(`control-backups/${ids[1]}/manifest.json`)).toBeNull();
    expect(await applyControlRetention(deps)).toEqual([]);
  });

  it('checks settings: schedule at most hourly, retention whole numbers, not all zero', () => {
    const current = defaultControlBackupSettings('2026-01-01T00:00:00.000Z');
    const now = '2026-01-02T00:00:00.000Z';
    expect(checkSettings(current, { retention: { weekly: 4 } }, now)).toEqual({
      schedule: '0 2 * * *',
      retention: { daily: 14, weekly: 4, monthly: 6 },
      updatedAt: now,
    });
    expect(checkSettings(current, { schedule: '15 */6 * * *' }, now).schedule).toBe('15 */6 * * *');
    for (const [input, field] of [
      [{ schedule: '* * * * *' }, 'schedule'],
      [{ schedule: '0 3 * *' }, 'schedule'],
      [{ retention: { daily: -1 } }, 'retention.daily'],
      [{ retention: { weekly: 1.5 } }, 'retention.weekly'],
      [{ retention: { monthly: 121 } }, 'retention.monthly'],
      [{ retention: { hourly: 1 } }, 'retention.hourly'],
      [{ retention: { daily: 0, weekly: 0, monthly: 0 } }, 'retention'],
      [{ retention: 'lots' }, 'retention'],
    ] as const) {
      let thrown: unknown;
      try {
        checkSettings(current, input as never, now);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, JSON.stringify(input)).toBeInstanceOf(InvalidInput);
      expect((thrown as InvalidInput).details, JSON.stringify(input)).toEqual({ field });
    }
    expect(checkRetention({ daily: 3 })).toEqual({ daily: 3, weekly: 8, monthly: 6 });
  });

  it('accepts only plain lowercase database names to restore into', () => {
    expect(checkDatabaseName('selfdevop_restored')).toBe('selfdevop_restored');
    for (const bad of ['Selfdevop', 'a-b', '1abc', 'x'.repeat(64), 'a;drop', ''])
      expect(() => checkDatabaseName(bad), bad).toThrow(InvalidInput);
  });
});
