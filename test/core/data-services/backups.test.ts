import { describe, expect, it } from 'vitest';
import {
  backupKeys,
  backupsToDelete,
  checkBackupSchedule,
  compareWithManifest,
  drillServerFlags,
  mariadbRestoreSplitter,
  mariadbRowCounter,
  parseCounts,
  parseDrillPhases,
  planDrill,
  planDump,
  planRestore,
} from '../../../core/data-services/backups.ts';
import { InvalidInput } from '../../../core/errors.ts';
import type { DataService, DataServiceBackup } from '../../../core/models.ts';

const ds: DataService = {
  id: 'dat_1',
  orgId: 'org_1',
  projectId: 'prj_1',
  name: 'orders',
  engine: 'mariadb',
  version: '10.11',
  nodeId: 'nod_1',
  status: 'ready',
  error: null,
  settings: {},
  sealedPassword: 'sealed',
  removeVolume: false,
  backupSchedule: '0 3 * * *',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

type B = Pick<DataServiceBackup, 'id' | 'status' | 'startedAt' | 'drillStatus'>;
const b = (id: string, startedAt: string, o: Partial<B> = {}): B => ({
  id,
  status: 'completed',
  startedAt,
  drillStatus: 'passed',
  ...o,
});

/** One backup a day at 03:00 UTC for `days` days ending on 2026-12-02, ids b000 (oldest)… */
const nightly = (days: number, o: (i: number) => Partial<B> = () => ({})) =>
  Array.from({ length: days }, (_, i) => {
    const d = new Date(Date.UTC(2026, 11, 2 - (days - 1 - i), 3));
    return b(`b${String(i).padStart(3, '0')}`, d.toISOString(), o(i));
  });

describe('retention (14 daily, 8 weekly, 6 monthly)', () => {
  it('keeps everything while there are fewer than 14 days of backups', () => {
    expect(backupsToDelete(nightly(14))).toEqual([]);
  });

  it('keeps the newest of each of the last 14 days, 8 ISO weeks and 6 months, and deletes the rest', () => {
    const all = nightly(400);
    const kept = new Set(all.map((x) => x.id));
    for (const id of backupsToDelete(all)) kept.delete(id);
    const days = [...kept].map((id) => all.find((x) => x.id === id)!.startedAt.slice(0, 10));
    expect(days).toEqual([
      // Monthly: the newest of each of the 6 newest months (Dec's is today's).
      '2026-07-31',
      '2026-08-31',
      '2026-09-30',
      // Weekly: the newest of each of the 8 newest ISO weeks (Sundays, and today's week).
      '2026-10-18',
      '2026-10-25',
      '2026-10-31',
      '2026-11-01',
      // Daily: the 14 newest days.
      '2026-11-08',
      '2026-11-15',
      '2026-11-19',
      '2026-11-20',
      '2026-11-21',
      '2026-11-22',
      '2026-11-23',
      '2026-11-24',
      '2026-11-25',
      '2026-11-26',
      '2026-11-27',
      '2026-11-28',
      '2026-11-29',
      '2026-11-30',
      '2026-12-01',
      '2026-12-02',
    ]);
  });

  it('never deletes the newest backup whose drill passed, however old', () => {
    // Only the oldest backup was ever proven by a drill.
    const all = nightly(400, (i) => ({ drillStatus: i === 0 ? 'passed' : 'failed' }));
    expect(backupsToDelete(all)).not.toContain('b000');
    expect(backupsToDelete(nightly(400))).toContain('b000');
  });

  it('keeps one per day: a second backup the same day goes, the newest stays', () => {
    const all = [
      b('a', '2026-12-02T01:00:00.000Z', { drillStatus: 'failed' }),
      b('b', '2026-12-02T05:00:00.000Z', { drillStatus: null }),
    ];
    expect(backupsToDelete(all)).toEqual(['a']);
  });

  it('ignores running and failed backups (they are not backups), oldest first in the answer', () => {
    const all = [
      ...nightly(30),
      b('run', '2020-01-01T00:00:00.000Z', { status: 'running' }),
      b('bad', '2020-01-02T00:00:00.000Z', { status: 'failed' }),
    ];
    const doomed = backupsToDelete(all, { daily: 2, weekly: 0, monthly: 0 });
    expect(doomed).not.toContain('run');
    expect(doomed).not.toContain('bad');
    expect(doomed).toEqual(nightly(28).map((x) => x.id));
  });
});

describe('backup schedules', () => {
  it('accepts five-field crons that fire at most once an hour, normalising spaces', () => {
    expect(checkBackupSchedule('0 3 * * *')).toBe('0 3 * * *');
    expect(checkBackupSchedule(' 15  */6 * * 1-5 ')).toBe('15 */6 * * 1-5');
  });

  it('refuses schedules that fire every minute (or second) and text that is no cron', () => {
    for (const cron of [
      '* * * * *',
      '*/5 * * * *',
      '0,30 * * * *',
      '* * * * * *',
      '0 3 * *',
      'nightly',
      '0 3 * * MON',
    ])
      expect(() => checkBackupSchedule(cron), cron).toThrow(InvalidInput);
    expect(() => checkBackupSchedule('* * * * *')).toThrow(/more than once an hour/);
  });
});

describe('what a drill checks', () => {
  it('parses counts printed by the count and drill scripts', () => {
    expect(
      parseCounts('version\t10.11.6-MariaDB\ntable\titems\t1000\ntable\ttags\t3\r\nnoise\n'),
    ).toEqual({
      tables: { items: 1000, tags: 3 },
      keys: null,
      serverVersion: '10.11.6-MariaDB',
      rawBytes: null,
    });
    expect(parseCounts('version\t7.0.15\nkeys\t50\n')).toEqual({
      tables: {},
      keys: 50,
      serverVersion: '7.0.15',
      rawBytes: null,
    });
  });

  it('names every table whose rows differ, is missing or appeared, and a wrong key count', () => {
    expect(
      compareWithManifest(
        { tables: { a: 1, b: 2 }, keys: null },
        { tables: { a: 1, b: 2 }, keys: null },
      ),
    ).toBeNull();
    expect(
      compareWithManifest(
        { tables: { a: 1, b: 2 }, keys: null },
        { tables: { a: 0, c: 5 }, keys: null },
      ),
    ).toBe(
      'table a: 1 rows in the manifest, 0 restored; table b: 2 rows in the manifest, missing after restore; table c: not in the backup, 5 restored',
    );
    expect(compareWithManifest({ tables: {}, keys: 50 }, { tables: {}, keys: 49 })).toBe(
      'keys: 50 in the manifest, 49 restored',
    );
  });
});

describe('backup plans', () => {
  it('keeps dump and manifest under the org and data service', () => {
    expect(backupKeys({ orgId: 'org_1', dataServiceId: 'dat_1', id: 'bak_1' })).toEqual({
      objectKey: 'backups/org_1/dat_1/bak_1/dump.gz.enc',
      manifestKey: 'backups/org_1/dat_1/bak_1/manifest.json',
    });
  });

  it('dumps MariaDB with --single-transaction, gzipped on the node and its rows counted from the dump itself, from a client on the project network, password in env', () => {
    expect(planDump(ds, 'pw', 'bak_1')).toEqual({
      name: 'sdo-data-dat_1-dump-bak_1',
      image: 'selfdevop/mariadb:10.11',
      labels: {
        'selfdevop.org': 'org_1',
        'selfdevop.project': 'prj_1',
        'selfdevop.data-service': 'dat_1',
        'selfdevop.role': 'data-backup',
      },
      restartPolicy: 'no',
      network: 'sdo-net-prj_1',
      env: { MYSQL_PWD: 'pw' },
      entrypoint: [
        'bash',
        '-o',
        'pipefail',
        '-ec',
        [
          '{',
          "printf 'version\\t%s\\n' \"$(mariadb -h sdo-data-dat_1 -u app app -N -B -e 'select version()')\"",
          '} >&2',
          'mkfifo /tmp/raw',
          `${mariadbRowCounter} </tmp/raw >/tmp/raw-counts &`,
          'counter=$!',
          'mariadb-dump -h sdo-data-dat_1 -u app --single-transaction --routines --triggers --events --hex-blob app | tee /tmp/raw | gzip -6',
          'wait $counter',
          'cat /tmp/raw-counts >&2',
        ].join('\n'),
      ],
    });
  });

  it('counts rows in PostgreSQL and keys in Redis before their dump, and sizes every dump through a FIFO', () => {
    for (const engine of ['postgres', 'redis'] as const) {
      const lines = planDump(
        { ...ds, engine, version: engine === 'redis' ? '7' : '15' },
        'pw',
        'bak_1',
      ).entrypoint![4]!.split('\n');
      expect(lines[0]).toBe('{');
      expect(lines.indexOf('} >&2')).toBeLessThan(lines.indexOf('mkfifo /tmp/raw'));
      expect(lines.join('\n')).toContain(engine === 'redis' ? "printf 'keys" : 'count(*)');
      expect(lines).toContain('wc -c </tmp/raw >/tmp/raw-counts &');
      expect(lines.slice(-2)).toEqual([
        'wait $counter',
        'printf \'rawbytes\\t%s\\n\' "$(cat /tmp/raw-counts)" >&2',
      ]);
    }
  });

  it("gzips every engine's dump on the node with pipefail, so a failed dump fails the one-off", () => {
    for (const [engine, version, tail] of [
      [
        'postgres',
        '15',
        'pg_dump -h sdo-data-dat_1 -U app -d app -Fc -Z0 | tee /tmp/raw | gzip -6',
      ],
      ['redis', '7', 'cat /data/dump.rdb | tee /tmp/raw | gzip -6'],
    ] as const) {
      const spec = planDump({ ...ds, engine, version }, 'pw', 'bak_1');
      expect(spec.entrypoint!.slice(0, 4)).toEqual(['bash', '-o', 'pipefail', '-ec']);
      expect(spec.entrypoint![4]!.split('\n')).toContain(tail);
    }
  });

  it('reads the dump size the one-off reports after its counts', () => {
    expect(parseCounts('version\t10.11.6\ntable\tt\t3\nrawbytes\t1234\n')).toEqual({
      tables: { t: 3 },
      keys: null,
      serverVersion: '10.11.6',
      rawBytes: 1234,
    });
  });

  it('drills in a container with no network at all', () => {
    for (const engine of ['mariadb', 'postgres', 'redis'] as const) {
      const version = { mariadb: '10.11', postgres: '15', redis: '7' }[engine];
      const spec = planDrill({ ...ds, engine, version }, 'drillpw', 'bak_1');
      expect(spec.noNetwork).toBe(true);
      expect(spec.network).toBeUndefined();
      expect(spec.volumes).toBeUndefined();
      expect(spec.labels['selfdevop.role']).toBe('data-drill');
    }
  });

  it('reports when each step of a drill ended, for the RTO breakdown', () => {
    for (const engine of ['mariadb', 'postgres', 'redis'] as const) {
      const version = { mariadb: '10.11', postgres: '15', redis: '7' }[engine];
      const script = planDrill({ ...ds, engine, version }, 'drillpw', 'bak_1').entrypoint!.at(-1)!;
      const lines = script.split('\n');
      expect(lines[0]).toBe('t0=$(date +%s%3N)');
      const order = ['ready', 'restored', 'counted'].map((p) =>
        lines.findIndex((l) => l.startsWith(`printf 'phase\\t${p}\\t`)),
      );
      expect(order.every((i) => i > 0)).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
    }
    expect(
      parseDrillPhases(
        'phase\tready\t1200\nversion\t10.11\nphase\trestored\t9000\r\nphase\tbogus\t1\nphase\tcounted\tx\n',
      ),
    ).toEqual({ ready: 1200, restored: 9000 });
  });

  it('gunzips a format-2 dump in the drill container and reports its length, under pipefail', () => {
    for (const engine of ['mariadb', 'postgres', 'redis'] as const) {
      const version = { mariadb: '10.11', postgres: '15', redis: '7' }[engine];
      const e = planDrill({ ...ds, engine, version }, 'drillpw', 'bak_1', undefined, {
        gzipped: true,
      }).entrypoint!;
      expect(e.slice(0, 4)).toEqual(['bash', '-o', 'pipefail', '-ec']);
      const lines = e[4]!.split('\n');
      expect(lines.some((l) => l.startsWith('gunzip | tee /tmp/raw'))).toBe(true);
      expect(lines).toContain('wc -c </tmp/raw >/tmp/raw-bytes &');
      expect(lines.findIndex((l) => l.startsWith("printf 'rawbytes"))).toBeGreaterThan(
        lines.findIndex((l) => l.startsWith('gunzip')),
      );
    }
    // Without it (format 1, decompressed by the worker), the dump arrives as it is: under
    // sh, but for MariaDB, whose restore is a pipeline of its own (the splitter), pipefail.
    const plain = planDrill({ ...ds, engine: 'postgres', version: '15' }, 'drillpw', 'bak_1');
    expect(plain.entrypoint!.slice(0, 2)).toEqual(['sh', '-ec']);
    expect(plain.entrypoint![2]).not.toContain('gunzip');
    const sql = planDrill(ds, 'drillpw', 'bak_1').entrypoint!;
    expect(sql.slice(0, 4)).toEqual(['bash', '-o', 'pipefail', '-ec']);
    expect(sql[4]).not.toContain('gunzip');
  });

  it('restores a MariaDB drill over two clients fed by the splitter, and waits for both', () => {
    for (const gzipped of [false, true]) {
      const e = planDrill(ds, 'drillpw', 'bak_1', undefined, { gzipped }).entrypoint!;
      const lines = e[4]!.split('\n');
      const feed = lines.findIndex((l) => l.includes(mariadbRestoreSplitter.split('\n')[0]!));
      expect(feed).toBeGreaterThan(0);
      expect(lines[feed]!.startsWith(gzipped ? 'gunzip | tee /tmp/raw | mawk' : 'mawk')).toBe(true);
      for (const c of ['a', 'b']) {
        const client = lines.findIndex((l) => l.includes(`</tmp/${c} 1<>/tmp/${c}-out &`));
        expect(client).toBeGreaterThan(0);
        expect(client).toBeLessThan(feed);
        // Its exit status is the drill's: a failed client fails it.
        expect(lines.indexOf(`wait $${c}`)).toBeGreaterThan(feed);
        expect(lines.indexOf(`wait $${c}`)).toBeLessThan(
          lines.findIndex((l) => l.startsWith("printf 'phase\\trestored")),
        );
      }
    }
  });

  it('restores MariaDB into a fresh data service over the two connections, in place with one client that keeps LOCK TABLES', () => {
    const fresh = planRestore(ds, 'S3cretPass', 'bak_1', { fresh: true });
    const inPlace = planRestore(ds, 'S3cretPass', 'bak_1');
    expect(fresh.entrypoint!.slice(0, 4)).toEqual(['bash', '-o', 'pipefail', '-ec']);
    const lines = fresh.entrypoint![4]!.split('\n');
    // stdin is the dump: the splitter reads it, and the restore ends with both clients.
    const feed = lines.findIndex((l) => l.includes(mariadbRestoreSplitter.split('\n')[0]!));
    expect(lines[feed]!.startsWith('mawk')).toBe(true);
    for (const c of ['a', 'b']) {
      const client = lines.find((l) => l.includes(`</tmp/${c} 1<>/tmp/${c}-out &`))!;
      expect(client).toContain('mariadb -h sdo-data-dat_1 -u app app -n -N -B');
      expect(lines.indexOf(`wait $${c}`)).toBeGreaterThan(feed);
    }
    expect(lines.at(-1)).toBe('wait $b');
    // The same client on the same network as in place, the password in env only.
    expect(fresh.env).toEqual({ MYSQL_PWD: 'S3cretPass' });
    expect(fresh.network).toBe(inPlace.network);
    expect(fresh.entrypoint!.join(' ')).not.toContain('S3cretPass');
    expect(inPlace.entrypoint).toEqual(['mariadb', '-h', 'sdo-data-dat_1', '-u', 'app', 'app']);
    // PostgreSQL and Redis restore the same way either way.
    for (const engine of ['postgres', 'redis'] as const) {
      const other = { ...ds, engine, version: engine === 'redis' ? '7' : '15' };
      expect(planRestore(other, 'pw', 'bak_1', { fresh: true })).toEqual(
        planRestore(other, 'pw', 'bak_1'),
      );
    }
  });

  it("restores a format-2 backup's gzip stream: gunzipped and counted beside the server, its length the one line on stdout", () => {
    const pg = { ...ds, engine: 'postgres' as const, version: '15' };
    const redis = { ...ds, engine: 'redis' as const, version: '7' };
    const cases = [
      [planRestore(ds, 'pw', 'bak_1', { gzipped: true }), 'gunzip | tee /tmp/raw | mariadb -h'],
      [planRestore(pg, 'pw', 'bak_1', { gzipped: true }), 'gunzip | tee /tmp/raw | pg_restore -h'],
      [
        planRestore(redis, 'pw', 'bak_1', { gzipped: true }),
        'gunzip | tee /tmp/raw >/data/dump.rdb.restoring',
      ],
      [
        planRestore(ds, 'pw', 'bak_1', { gzipped: true, fresh: true }),
        'gunzip | tee /tmp/raw | mawk',
      ],
    ] as const;
    for (const [spec, feed] of cases) {
      expect(spec.entrypoint!.slice(0, 4)).toEqual(['bash', '-o', 'pipefail', '-ec']);
      const lines = spec.entrypoint![4]!.split('\n');
      expect(lines.slice(0, 3)).toEqual([
        'mkfifo /tmp/raw',
        'wc -c </tmp/raw >/tmp/raw-bytes &',
        'counter=$!',
      ]);
      const at = lines.findIndex((l) => l.startsWith(feed));
      expect(at, feed).toBeGreaterThan(2);
      // A client's own output goes to stderr: stdout is for the length alone.
      if (feed.endsWith('-h')) expect(lines[at]!.endsWith(' >&2')).toBe(true);
      expect(lines.slice(-2)).toEqual([
        'wait $counter',
        `printf 'rawbytes\\t%s\\n' "$(cat /tmp/raw-bytes)"`,
      ]);
    }
    // Redis swaps the file in only after it was written whole.
    const redisLines = cases[2][0].entrypoint![4]!.split('\n');
    expect(
      redisLines.indexOf(
        'rm -rf /data/appendonlydir && mv /data/dump.rdb.restoring /data/dump.rdb',
      ),
    ).toBe(4);
  });

  it("initialises a MariaDB drill server once, durability off, with the drill's own user", () => {
    const script = planDrill(ds, 'drillpw', 'bak_1').entrypoint!.at(-1)!;
    // One server start (the image's entrypoint starts, stops and starts again), after a
    // bootstrap that serves nothing.
    expect(script.match(/mariadbd /g)).toHaveLength(2);
    expect(script.match(/mariadbd --bootstrap /g)).toHaveLength(1);
    expect(script).toContain('--init-file=/tmp/init.sql');
    expect(script).toContain("CREATE USER 'app'@'%' IDENTIFIED BY '$MARIADB_PASSWORD'");
    for (const flag of [
      '--innodb-flush-method=nosync',
      '--debug-no-sync',
      '--skip-log-bin',
      '--innodb-doublewrite=0',
    ])
      expect(script).toContain(flag);
    expect(planDrill(ds, 'drillpw', 'bak_1').env.MARIADB_PASSWORD).toBe('drillpw');
  });

  it('bootstraps the MariaDB drill server with the system tables only, durability off there too', () => {
    const lines = planDrill(ds, 'drillpw', 'bak_1').entrypoint!.at(-1)!.split('\n');
    const boot = lines.find((l) => l.startsWith('mariadbd --bootstrap '))!;
    const serve = lines.find((l) => l.startsWith('mariadbd --datadir'))!;
    // The bootstrap writes the system tables with the server's own throwaway flags.
    for (const flag of drillServerFlags.mariadb.split(' ')) {
      expect(boot).toContain(flag);
      expect(serve).toContain(flag);
    }
    // Its script: the system tables of mariadb-install-db, without HELP and the sys schema.
    const script = lines.find((l) => l.includes('>/tmp/bootstrap.sql'))!;
    for (const f of ['mysql_system_tables', 'mysql_performance_tables', 'mysql_system_tables_data'])
      expect(script).toContain(`/usr/share/mysql/${f}.sql`);
    expect(script).not.toMatch(/fill_help_tables|mysql_sys_schema/);
    expect(lines.indexOf(script)).toBeLessThan(lines.indexOf(boot));
    expect(lines.indexOf(boot)).toBeLessThan(lines.indexOf(serve));
    expect(lines.some((l) => l.includes('mariadb-install-db'))).toBe(false);
    // A real restore goes into the serving server: a client only, no server flags.
    expect(planRestore(ds, 'pw', 'bak_1').entrypoint!.join(' ')).not.toMatch(/nosync|innodb/);
  });
});
