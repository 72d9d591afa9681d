/**
 * Which completed backups are restore-drilled (`drillDecision`) and the drill schedule's
 * check: pure, tested by equality. A week of nightly backups under `weekly` drills exactly
 * one, a failed drill is retried on the next backup, a data service that took no backup for
 * a week is drilled on its next one, and retention still keeps the newest passed drill.
 */
import { describe, expect, it } from 'vitest';
import {
  backupsToDelete,
  checkDrillSchedule,
  drillDecision,
} from '../../../core/data-services/backups.ts';
import { InvalidInput } from '../../../core/errors.ts';
import type { DataServiceBackup } from '../../../core/models.ts';

type Row = Pick<
  DataServiceBackup,
  'id' | 'trigger' | 'status' | 'startedAt' | 'drillStatus' | 'drilledAt'
>;

/** A completed backup started at `startedAt`, drilled (a minute later) when `drill` is set. */
const row = (
  id: string,
  startedAt: string,
  drill: DataServiceBackup['drillStatus'] = null,
  o: Partial<Row> = {},
): Row => ({
  id,
  trigger: 'schedule',
  status: 'completed',
  startedAt,
  drillStatus: drill,
  drilledAt: drill ? new Date(Date.parse(startedAt) + 60_000).toISOString() : null,
  ...o,
});

describe('checkDrillSchedule', () => {
  it('takes every_backup and weekly', () => {
    expect(checkDrillSchedule('every_backup')).toBe('every_backup');
    expect(checkDrillSchedule('weekly')).toBe('weekly');
  });

  it('names the field and the values it takes for anything else', () => {
    for (const bad of ['week', 'WEEKLY', '', null, 7, undefined]) {
      let err: unknown;
      try {
        checkDrillSchedule(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InvalidInput);
      expect((err as InvalidInput).message).toBe(
        `drillSchedule: must be "every_backup" or "weekly", got ${JSON.stringify(bad)}`,
      );
      expect((err as InvalidInput).details).toEqual({ field: 'drillSchedule' });
    }
  });
});

describe('drillDecision', () => {
  const monday = '2026-11-30T03:00:00.000Z';
  const day = (n: number, time = '03:00:00.000') =>
    new Date(Date.parse(`2026-11-30T${time}Z`) + n * 86_400_000).toISOString();

  it('drills every backup by default and under every_backup, whatever the history', () => {
    const history = [row('bak_1', day(-1), 'passed')];
    const backup = row('bak_2', monday);
    expect(drillDecision(undefined, backup, [...history, backup])).toEqual({
      drill: true,
      reason: 'every backup is drilled',
    });
    expect(drillDecision('every_backup', backup, [...history, backup])).toEqual({
      drill: true,
      reason: 'every backup is drilled',
    });
  });

  it('weekly: drills the first backup ever', () => {
    const backup = row('bak_1', monday);
    expect(drillDecision('weekly', backup, [backup])).toEqual({
      drill: true,
      reason: 'weekly drills: no backup has been drilled yet',
    });
  });

  it('weekly: skips a scheduled backup when one of the last 7 days passed its drill, saying when the next is due', () => {
    const backup = row('bak_3', day(3));
    expect(
      drillDecision('weekly', backup, [
        row('bak_1', monday, 'passed'),
        row('bak_2', day(1)),
        row('bak_2b', day(2), null, { status: 'failed' }),
        backup,
      ]),
    ).toEqual({
      drill: false,
      reason: `weekly drills: the drill of backup bak_1 (started ${monday}) passed; the next drill is of the first backup started from 2026-12-07T02:00:00.000Z`,
    });
  });

  it('weekly: a drill still running covers the week too (its failure drills the next backup)', () => {
    const backup = row('bak_2', day(1));
    expect(drillDecision('weekly', backup, [row('bak_1', monday, 'running'), backup])).toEqual({
      drill: false,
      reason: `weekly drills: the drill of backup bak_1 (started ${monday}) is running; the next drill is of the first backup started from 2026-12-07T02:00:00.000Z`,
    });
  });

  it('weekly: of a week of nightly backups exactly one is drilled, on the same night each week', () => {
    const history: Row[] = [];
    const drilled: string[] = [];
    // Seconds of jitter on each start, as a real schedule has: never a slip to the next night.
    for (let n = 0; n < 21; n++) {
      const backup = row(
        `bak_${String(n).padStart(2, '0')}`,
        day(n, `03:00:${n % 2 ? '07' : '00'}.000`),
      );
      history.push(backup);
      const d = drillDecision('weekly', backup, history);
      if (d.drill) {
        drilled.push(backup.startedAt.slice(0, 10));
        Object.assign(backup, row(backup.id, backup.startedAt, 'passed'));
      }
    }
    expect(drilled).toEqual(['2026-11-30', '2026-12-07', '2026-12-14']);
  });

  it('weekly: drills once the newest passed drill is of a backup 7 days old (less the hour of slack)', () => {
    const passed = row('bak_1', monday, 'passed');
    const justBefore = row('bak_2', '2026-12-07T01:59:59.000Z');
    const onTime = row('bak_3', '2026-12-07T02:00:00.000Z');
    expect(drillDecision('weekly', justBefore, [passed, justBefore]).drill).toBe(false);
    expect(drillDecision('weekly', onTime, [passed, onTime])).toEqual({
      drill: true,
      reason: 'weekly drills: no backup started in the last 7 days has a drill that passed',
    });
  });

  it('weekly: a data service with no backup for weeks is drilled on its next one, never covered by the old drill', () => {
    const backup = row('bak_2', day(30));
    expect(drillDecision('weekly', backup, [row('bak_1', monday, 'passed'), backup])).toEqual({
      drill: true,
      reason: 'weekly drills: no backup started in the last 7 days has a drill that passed',
    });
  });

  it('weekly: the newest drill failed, so the next backup is drilled at once, not a week later', () => {
    const backup = row('bak_3', day(2));
    expect(
      drillDecision('weekly', backup, [
        row('bak_1', monday, 'passed'),
        row('bak_2', day(1), 'failed'),
        backup,
      ]),
    ).toEqual({
      drill: true,
      reason:
        'the newest drill (of backup bak_2) failed: this backup is drilled rather than a week later',
    });
    // Also when the failed one was the week's only drill.
    const next = row('bak_2', day(1));
    expect(drillDecision('weekly', next, [row('bak_1', monday, 'failed'), next]).drill).toBe(true);
  });

  it('weekly: the newest drill decides, by when it ran: a pass after a failure covers the week again', () => {
    const backup = row('bak_4', day(3));
    expect(
      drillDecision('weekly', backup, [
        row('bak_1', monday, 'failed'),
        row('bak_2', day(1), 'passed'),
        row('bak_3', day(2)),
        backup,
      ]).drill,
    ).toBe(false);
  });

  it('weekly: a backup a person asked for (or any not scheduled) is always drilled', () => {
    const history = [row('bak_1', monday, 'passed')];
    for (const trigger of ['manual', 'import', 'pre_upgrade'] as const) {
      const backup = row('bak_2', day(1), null, { trigger });
      expect(drillDecision('weekly', backup, [...history, backup])).toEqual({
        drill: true,
        reason: `a ${trigger} backup is always drilled`,
      });
    }
  });

  it('weekly: its own row (already in the history) never covers it', () => {
    const backup = row('bak_1', monday, 'running');
    expect(drillDecision('weekly', backup, [backup]).drill).toBe(true);
  });
});

describe('retention under weekly drills', () => {
  it('never deletes the newest backup whose drill passed, however many undrilled ones follow', () => {
    const rows = [
      row('bak_01', '2026-11-02T03:00:00.000Z', 'passed'),
      row('bak_02', '2026-11-09T03:00:00.000Z', 'failed'),
      ...Array.from({ length: 9 }, (_, i) =>
        row(`bak_1${i}`, `2026-11-${String(10 + i).padStart(2, '0')}T03:00:00.000Z`),
      ),
    ];
    const doomed = backupsToDelete(rows, { daily: 2, weekly: 0, monthly: 0 });
    expect(doomed).not.toContain('bak_01');
    expect(doomed).toEqual([
      'bak_02',
      'bak_10',
      'bak_11',
      'bak_12',
      'bak_13',
      'bak_14',
      'bak_15',
      'bak_16',
    ]);
  });
});
