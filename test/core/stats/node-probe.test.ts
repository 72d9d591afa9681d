import { describe, expect, it } from 'vitest';
import { cpuRatioBetween, parseNodeProbe, planNodeProbe } from '../../../core/stats/node-probe.ts';
import { RestartHistory } from '../../../core/stats/crash-loop.ts';
import { backupFailuresInARow, replicaIndexOf } from '../../../core/stats/collect.ts';

describe('the node probe', () => {
  it('is a one-off with no network that reads the engine’s data-root read-only', () => {
    expect(
      planNodeProbe({
        image: 'selfdevop/debian:bookworm',
        dataRoot: '/var/lib/docker',
        name: 'p1',
      }),
    ).toEqual({
      name: 'p1',
      image: 'selfdevop/debian:bookworm',
      env: {},
      labels: { 'selfdevop.role': 'node-probe' },
      entrypoint: ['/bin/sh', '-c'],
      cmd: [
        "head -n 1 /proc/stat; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; df -P -k /sdo-data-root | tail -n 1",
      ],
      binds: ['/var/lib/docker:/sdo-data-root:ro'],
      noNetwork: true,
      restartPolicy: 'no',
      memoryMb: 32,
      logRotation: { maxSizeMb: 1, maxFiles: 1 },
    });
  });

  it('reads CPU counters, memory in use and the disk’s use from its output', () => {
    const r = parseNodeProbe(
      [
        'cpu  100 0 50 800 50 0 0 0 0 0',
        'MemTotal:       16000000 kB',
        'MemAvailable:    4000000 kB',
        '/dev/sda1 100000 60000 20000 75% /sdo-data-root',
        '',
      ].join('\n'),
    );
    expect(r).toEqual({
      cpu: { busy: 150, total: 1000 },
      memoryUsedRatio: 0.75,
      diskUsedRatio: 0.75,
    });
  });

  it('leaves out what it cannot find instead of guessing', () => {
    expect(parseNodeProbe('df: /sdo-data-root: No such file or directory\n')).toEqual({
      cpu: null,
      memoryUsedRatio: null,
      diskUsedRatio: null,
    });
  });

  it('gives the host’s busy share between two readings, and none when they do not compare', () => {
    expect(cpuRatioBetween({ busy: 150, total: 1000 }, { busy: 400, total: 2000 })).toBe(0.25);
    expect(cpuRatioBetween({ busy: 150, total: 1000 }, { busy: 150, total: 1000 })).toBeNull();
    // The host rebooted between the two: its counters started again.
    expect(cpuRatioBetween({ busy: 150, total: 1000 }, { busy: 10, total: 90 })).toBeNull();
  });
});

describe('restart history (the crash-loop rule’s window)', () => {
  const minute = 60_000;

  it('counts restarts within the window from the first reading on', () => {
    const h = new RestartHistory(15 * minute);
    expect(h.observe('c1', 5, 0)).toBe(0);
    expect(h.observe('c1', 6, minute)).toBe(1);
    expect(h.observe('c1', 9, 2 * minute)).toBe(4);
  });

  it('forgets restarts older than the window', () => {
    const h = new RestartHistory(15 * minute);
    h.observe('c1', 0, 0);
    h.observe('c1', 3, minute);
    h.observe('c1', 3, 10 * minute);
    // The reading at 10 min is the newest before the window (from 16 min on) starts.
    expect(h.observe('c1', 3, 26 * minute)).toBe(0);
    expect(h.observe('c1', 4, 27 * minute)).toBe(1);
  });

  it('starts again when the count goes down (another container run)', () => {
    const h = new RestartHistory(15 * minute);
    h.observe('c1', 7, 0);
    expect(h.observe('c1', 1, minute)).toBe(0);
    expect(h.observe('c1', 2, 2 * minute)).toBe(1);
  });

  it('drops containers that were not seen', () => {
    const h = new RestartHistory(15 * minute);
    h.observe('gone', 0, 0);
    h.keepOnly(new Set(['other']));
    expect(h.observe('gone', 4, minute)).toBe(0);
  });

  it('names replicas by their container names', () => {
    expect(replicaIndexOf('sdo-svc-env-rel_1')).toBe('0');
    expect(replicaIndexOf('sdo-svc-env-rel_1-r3')).toBe('3');
  });
});

describe('failed backups in a row (the backup_failed rule’s count)', () => {
  const b = (
    status: 'running' | 'completed' | 'failed',
    drillStatus: 'passed' | 'failed' | null = null,
  ) => ({
    status,
    drillStatus,
  });

  it('counts failed backups and failed drills from the newest back to the first good one', () => {
    // Oldest first, as the store lists them.
    expect(
      backupFailuresInARow([
        b('failed'),
        b('completed', 'passed'),
        b('failed'),
        b('completed', 'failed'),
      ]),
    ).toBe(2);
  });

  it('skips one still running and stops at a completed backup not yet drilled', () => {
    expect(backupFailuresInARow([b('failed'), b('completed'), b('failed'), b('running')])).toBe(1);
  });

  it('is 0 for a data service without backups or whose newest passed', () => {
    expect(backupFailuresInARow([])).toBe(0);
    expect(backupFailuresInARow([b('failed'), b('completed', 'passed')])).toBe(0);
  });
});
