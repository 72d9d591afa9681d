/**
 * Backups and restore drills as data: the one-off containers that dump, count, restore and
 * drill, the object keys, the schedule rule and retention. Pure, tested by equality; the
 * worker (backup-work.ts) runs them.
 */
import { InvalidInput } from '../errors.ts';
import { validateCron } from '../jobs/cron.ts';
import type {
  BackupManifest,
  BackupRetention,
  ControlBackup,
  DataService,
  DataServiceBackup,
  DrillSchedule,
} from '../models.ts';
import { drillSchedules } from '../models.ts';
import type { ContainerSpec } from '../ports.ts';
import { drillServerName } from './drill-app.ts';
import {
  dataContainerName,
  dataEndpoint,
  dataEngineImages,
  dataServiceLabels,
  dataVolumeName,
  projectNetworkName,
} from './plan.ts';

export const defaultBackupSchedule = '0 3 * * *';

/** Where a backup's dump and manifest live in the ObjectStore. */
export function backupKeys(b: Pick<DataServiceBackup, 'orgId' | 'dataServiceId' | 'id'>): {
  objectKey: string;
  manifestKey: string;
} {
  const base = `backups/${b.orgId}/${b.dataServiceId}/${b.id}`;
  return { objectKey: `${base}/dump.gz.enc`, manifestKey: `${base}/manifest.json` };
}

export const backupKeyContext = (orgId: string, backupId: string): string =>
  `${orgId}:backup:${backupId}`;

export const dumpTools: Record<DataService['engine'], string> = {
  mariadb: 'mariadb-dump --single-transaction | gzip -6',
  postgres: 'pg_dump -Fc -Z0 | gzip -6',
  redis: 'redis BGSAVE + dump.rdb | gzip -6',
};

/**
 * A backup schedule: a cron the job schedules also accept (read the same way, so both
 * schedulers keep it), in UTC, and at most once an hour (the minute is one number), so no
 * schedule can fire every second or every minute and bury the node in dumps.
 */
export function checkBackupSchedule(cron: string): string {
  const text = validateCron(cron, 'backupSchedule');
  const minute = text.split(' ')[0]!;
  if (!/^\d+$/.test(minute))
    throw new InvalidInput(
      `backupSchedule: ${JSON.stringify(cron)} fires more than once an hour; the minute must be one number (0-59), e.g. "0 3 * * *" for nightly`,
      { field: 'backupSchedule' },
    );
  return text;
}

/** Every backup is drilled unless a data service says `weekly` (what every one did before). */
export const defaultDrillSchedule: DrillSchedule = 'every_backup';

/** How long a drill covers the backups after it under `weekly`. */
export const weeklyDrillMs = 7 * 24 * 3_600_000;

/**
 * The slack on that week. Backups fire at most hourly, and a nightly one seven days after the
 * drilled one starts a few seconds earlier or later in the day: without slack a weekly drill
 * would slip to the next night every other week and drift a day at a time.
 */
export const weeklyDrillSlackMs = 3_600_000;

/** A drill schedule, checked: `every_backup` or `weekly`; anything else names the field. */
export function checkDrillSchedule(value: unknown, field = 'drillSchedule'): DrillSchedule {
  if (typeof value === 'string' && (drillSchedules as readonly string[]).includes(value))
    return value as DrillSchedule;
  throw new InvalidInput(
    `${field}: must be ${drillSchedules.map((d) => JSON.stringify(d)).join(' or ')}, got ${JSON.stringify(value)}`,
    { field },
  );
}

export interface DrillDecision {
  drill: boolean;
  /** Why, in words (the audit's `drill.skipped` carries it, and the worker's log). */
  reason: string;
}

type DrillHistory = Pick<
  DataServiceBackup,
  'id' | 'status' | 'startedAt' | 'drillStatus' | 'drilledAt'
>;

/**
 * Whether a backup that just completed is drilled. `every_backup`: always. `weekly`: a backup
 * a person asked for is always drilled (they wait on it: `backup --wait`); a scheduled one
 * is drilled unless a backup started less than a week (less the slack) before it has a drill
 * that passed or is running. Measured between backups' starts, not from the drill's time: a
 * drill proves the data of its backup, so a data service that took no backup for a week is
 * never covered by an old one re-proved, and its next backup is drilled. The newest drill
 * having failed always drills (a failure is retried on the next backup, not a week later).
 * A drill still queued (no status yet) covers nothing, so at worst two are drilled.
 */
export function drillDecision(
  schedule: DrillSchedule | undefined,
  backup: Pick<DataServiceBackup, 'id' | 'trigger' | 'startedAt'>,
  history: DrillHistory[],
): DrillDecision {
  if ((schedule ?? defaultDrillSchedule) === 'every_backup')
    return { drill: true, reason: 'every backup is drilled' };
  if (backup.trigger !== 'schedule')
    return { drill: true, reason: `a ${backup.trigger} backup is always drilled` };
  const others = history.filter((b) => b.id !== backup.id);
  const newest = others
    .filter((b) => b.drillStatus !== null && b.drilledAt !== null)
    .sort((a, b) => (a.drilledAt! < b.drilledAt! ? 1 : a.drilledAt! > b.drilledAt! ? -1 : 0))[0];
  if (newest?.drillStatus === 'failed')
    return {
      drill: true,
      reason: `the newest drill (of backup ${newest.id}) failed: this backup is drilled rather than a week later`,
    };
  const at = Date.parse(backup.startedAt);
  const cover = others
    .filter(
      (b) =>
        b.status === 'completed' &&
        (b.drillStatus === 'passed' || b.drillStatus === 'running') &&
        at - Date.parse(b.startedAt) < weeklyDrillMs - weeklyDrillSlackMs,
    )
    .sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0))[0];
  if (cover) {
    const due = new Date(Date.parse(cover.startedAt) + weeklyDrillMs - weeklyDrillSlackMs);
    return {
      drill: false,
      reason: `weekly drills: the drill of backup ${cover.id} (started ${cover.startedAt}) ${cover.drillStatus === 'passed' ? 'passed' : 'is running'}; the next drill is of the first backup started from ${due.toISOString()}`,
    };
  }
  return {
    drill: true,
    reason: newest
      ? 'weekly drills: no backup started in the last 7 days has a drill that passed'
      : 'weekly drills: no backup has been drilled yet',
  };
}

const db = 'app';

function imageOf(d: DataService): string {
  const image = dataEngineImages[d.engine].versions[d.version];
  if (!image) throw new Error(`no image for ${d.engine} ${d.version}`);
  return image;
}

const labels = (d: DataService, role: string) => ({
  ...dataServiceLabels(d),
  'selfdevop.role': role,
});

/**
 * Counts the rows of each table in a mariadb-dump from the dump itself, so the manifest's
 * counts are exactly what the dump holds, read in the dump's own snapshot: counts queried
 * before it (a second full scan, ~0.7 s for 1M rows through a buffer pool smaller than
 * the table) missed or added the rows a live database wrote meanwhile, and its drill then
 * failed for nothing. mariadb-dump (10.11) writes every row of an extended INSERT on a
 * line of its own, `INSERT INTO \`t\` VALUES` first, each row `(…),`, the last `(…);`,
 * and escapes newlines inside values, so a row is a line. Every table's `CREATE TABLE`
 * line registers it (an empty table counts 0). Trigger, routine and event bodies (between
 * `DELIMITER ;;` and `DELIMITER ;`) are free text and are skipped. A line inside an INSERT
 * that is not one row (another format) stops it with exit 1: the dump then fails loudly
 * (its tee loses its reader), never a manifest with wrong counts. It counts the dump's bytes
 * as well (mawk's length is in bytes), where a `wc -c` on a third FIFO read every byte once
 * more: mariadb-dump ends every line with a newline, its last too, and a dump cut short fails
 * its pipe. mawk: a sixth of the CPU of gawk on this, and no locale to mind. Prints
 * `table<TAB>name<TAB>rows` lines and a `rawbytes<TAB>n` line.
 */
export const mariadbRowCounter = [
  "mawk '",
  '{ bytes += length($0) + 1 }',
  '$0 == "DELIMITER ;;" { body = 1; next }',
  'body { if ($0 == "DELIMITER ;") body = 0; next }',
  'ins {',
  '  n = length($0); last = substr($0, n - 1)',
  '  if (n < 3 || substr($0, 1, 1) != "(" || (last != ")," && last != ");")) { bad = NR; exit 1 }',
  '  rows[t]++; if (last == ");") ins = 0',
  '  next',
  '}',
  // Names are quoted in backticks, a backtick inside doubled.
  '/^CREATE TABLE `/ {',
  '  if (substr($0, length($0) - 2) != "` (") { bad = NR; exit 1 }',
  '  t = substr($0, 15, length($0) - 17); gsub(/``/, "`", t); rows[t] += 0; next',
  '}',
  '/^INSERT INTO `/ {',
  '  if (substr($0, length($0) - 7) != "` VALUES") { bad = NR; exit 1 }',
  '  t = substr($0, 14, length($0) - 21); gsub(/``/, "`", t); ins = 1; next',
  '}',
  'END {',
  '  if (bad) { printf "the dump is not one row per line (line %d): its rows were not counted\\n", bad > "/dev/stderr"; exit 1 }',
  '  printf "rawbytes\\t%.0f\\n", bytes',
  '  for (t in rows) printf "table\\t%s\\t%.0f\\n", t, rows[t]',
  "}'",
].join('\n');

/**
 * A pipe with a memory between its two ends (up to 16 MB ahead), written on at once: what
 * stands between the splitter and each client of a drill's restore. A client that waits for
 * its server's answer does not read, so without it the splitter, blocked writing a statement
 * to one client, starved the other: two connections restored 1M rows no faster than one
 * (8.0–8.9 s against 7.1–8.6 s), each server thread busy a third of the time; with it,
 * 4.4–5.5 s. Perl's, for select(2) and non-blocking writes (no modules but Fcntl; the image
 * has perl-base), as the shell has neither. Whatever it holds goes out as soon as the reader
 * takes it, a marker of a few bytes included (a buffer that writes whole blocks would hold it
 * back for good). It dies of SIGPIPE when it writes to a reader that ended, as `cat` would.
 */
export const restoreBuffer = [
  "perl -e 'use Fcntl;",
  'fcntl(STDOUT, F_SETFL, fcntl(STDOUT, F_GETFL, 0) | O_NONBLOCK) or die "fcntl: $!";',
  'my ($buf, $off, $eof) = ("", 0, 0);',
  'while (!$eof || $off < length $buf) {',
  '  my ($r, $w) = ("", "");',
  '  vec($r, 0, 1) = 1 if !$eof && length($buf) - $off < 16 << 20;',
  '  vec($w, 1, 1) = 1 if $off < length $buf;',
  '  next if select($r, $w, undef, undef) <= 0;',
  '  if (vec($r, 0, 1)) {',
  '    my $n = sysread(STDIN, $buf, 1 << 20, length $buf);',
  '    die "read: $!" unless defined $n;',
  '    $eof = 1 if $n == 0;',
  '  }',
  '  if (vec($w, 1, 1)) {',
  '    my $n = syswrite(STDOUT, $buf, length($buf) - $off, $off);',
  // 11: EAGAIN (the reader took less than was written), not an error.
  '    if (defined $n) { $off += $n } elsif ($! != 11) { die "write: $!" }',
  // Written bytes are cut away once they are half the buffer: each byte moves O(1) times.
  '    if ($off > (length($buf) >> 1)) { substr($buf, 0, $off, ""); $off = 0 }',
  '  }',
  "}'",
].join('\n');

/**
 * Feeds a mariadb-dump to a server over two connections, `/tmp/a` and `/tmp/b` (FIFOs read by
 * a client each through a `restoreBuffer`; their answers come back on `/tmp/a-out` and
 * `/tmp/b-out`), as `mariadbTwoConnectionRestore` sets them up. One client and one server
 * thread take turns: the client reads and scans a statement (~1 MB of rows) while the server
 * waits, then waits while the server parses and inserts it, so the server thread was busy ~74%
 * of the time and the other core idle, and the drill took twice the backup. Two connections
 * take turns with each other instead. Only the INSERT statements of a table are shared out,
 * one statement each in turn (a statement is its `INSERT INTO` line and its row lines, the
 * last ending `);`, as `mariadbRowCounter` reads them); rows carry every column, so their
 * order between the two does not change what the table holds. Everything else (DDL, triggers,
 * routines, views) runs on the first connection, in the dump's order, only when both have
 * finished what came before it: `sync` asks each for a marker and waits until it is back. So a
 * table exists before its rows arrive, and a trigger is created after its table's rows, as a
 * serial restore would have it. The session settings (`SET` lines: the character set, time
 * zone, checks) go to both, and so does the dump's sandbox line (no client commands on either
 * connection). `LOCK TABLES` is dropped: the second connection could not insert under the
 * first one's lock, and nothing else uses the database (a drill's server, or a new data
 * service's before its restore ended: nothing is linked to it yet). A client that fails ends
 * its FIFO: the splitter dies of SIGPIPE or reports it at the next `sync`, and the restore
 * fails with the client's error.
 */
export const mariadbRestoreSplitter = [
  "mawk -v A=/tmp/a -v B=/tmp/b '",
  // A client's wrapper writes `restore-exit` when it ends: the splitter holds each answer FIFO
  // open for writing too (5<>, 6<>), so opening one never waits for a client that is gone,
  // and an end shows as that line, not as an end of file. A line at a time by sh's `read`
  // (a byte per read() on a pipe): mawk's own getline waits for a full buffer.
  'function drained(to,   cmd, r, line) {',
  '  cmd = "read -r l <" to "-out && printf \\"%s\\\\n\\" \\"$l\\""',
  '  while ((r = (cmd | getline line)) > 0 && line != "restore-sync" && line != "restore-exit") close(cmd)',
  '  close(cmd)',
  '  if (r > 0 && line == "restore-sync") return',
  '  printf "the restore stopped: the client reading %s ended early\\n", to > "/dev/stderr"; exit 1',
  '}',
  'function ask(to) { print "SELECT \\047restore-sync\\047;" > to; fflush(to) }',
  'function sync() { ask(A); ask(B); drained(A); drained(B) }',
  // Both opened now: a client waits for its FIFO to have a writer, and a dump without rows
  // would otherwise never open the second one.
  'BEGIN { printf "" > A; printf "" > B }',
  '$0 == "DELIMITER ;;" { if (run) { sync(); run = 0 } body = 1 }',
  'body { print > A; if ($0 == "DELIMITER ;") body = 0; next }',
  'ins { print > to; if (substr($0, length($0) - 1) == ");") ins = 0; next }',
  '/^INSERT INTO `/ {',
  '  if (!run) { sync(); run = 1 }',
  '  to = (n++ % 2) ? B : A; print > to; ins = substr($0, length($0) - 1) != ");"; next',
  '}',
  'run { sync(); run = 0 }',
  '/^(LOCK|UNLOCK) TABLES/ { next }',
  // Both: the settings, and the sandbox line (10.11.8's dumps: no client commands, such as
  // `\\!` for a shell, in what follows), which binds only the client that reads it.
  '/^(\\/\\*M?![0-9]+ )?(SET|USE) |^\\/\\*M!999999\\\\- / { print > B }',
  '{ print > A }',
  "' 5<>/tmp/a-out 6<>/tmp/b-out",
].join('\n');

/**
 * The script lines (bash, pipefail) that restore the mariadb-dump `input` writes (stdin when
 * none) into `database` on `host` as `user` (its password in MYSQL_PWD), over the two
 * connections `mariadbRestoreSplitter` feeds. Each client runs behind a `restoreBuffer`,
 * unbuffered (-n) so a marker comes back as soon as it is answered, its stdout opened
 * read-write so it never waits for the splitter to read it. A wrapper's exit status is its
 * client's, and it says `restore-exit` as soon as the client ends: the buffer, a process
 * substitution, is not waited for (it would wait for the splitter, which waits for that line).
 */
export function mariadbTwoConnectionRestore(
  at: { host: string; user: string; database: string },
  input?: string,
): string[] {
  return [
    'mkfifo /tmp/a /tmp/b /tmp/a-out /tmp/b-out',
    `buffer() { ${restoreBuffer}; }`,
    ...['a', 'b'].flatMap((c) => [
      `{ s=0; mariadb -h ${at.host} -u ${at.user} ${at.database} -n -N -B < <(buffer) || s=$?; echo restore-exit; exit $s; } </tmp/${c} 1<>/tmp/${c}-out &`,
      `${c}=$!`,
    ]),
    `${input ? `${input} | ` : ''}${mariadbRestoreSplitter}`,
    'wait $a',
    'wait $b',
  ];
}

/**
 * The one-off next to the server that takes a backup: it writes the dump to stdout
 * compressed by `gzip -6` right there on the node, beside the dump, as
 * `mariadb-dump | gzip` would run: the control plane then only encrypts, hashes and stores
 * a quarter of the bytes (measured in ARCHITECTURE.md). A FIFO tees the uncompressed bytes to
 * `wc -c` (the dump's size for the manifest; a copy, not a second pass of hashing), or for
 * MariaDB to `mariadbRowCounter`, which counts its rows per table and its bytes. What the
 * drill checks goes to stderr: the server version first; MariaDB's counts after the dump;
 * PostgreSQL's rows and Redis' keys queried before the dump. bash's pipefail makes a failing
 * dump fail the one-off, never a short gzip that exits 0.
 */
export function planDump(d: DataService, password: string, backupId: string): ContainerSpec {
  // On a shared server: only this data service's database, as its own user.
  const at = dataEndpoint(d);
  const host = at.host;
  const base = {
    name: `${dataContainerName(d)}-dump-${backupId.toLowerCase()}`,
    image: imageOf(d),
    labels: labels(d, 'data-backup'),
    restartPolicy: 'no' as const,
    network: projectNetworkName(d.projectId),
  };
  const compressed = (producer: string[], before: string, rowCounter?: string) => [
    'bash',
    '-o',
    'pipefail',
    '-ec',
    [
      `{
${before}
} >&2`,
      'mkfifo /tmp/raw',
      // The row counter counts the bytes too; without one, `wc -c` does.
      `${rowCounter ?? 'wc -c'} </tmp/raw >/tmp/raw-counts &`,
      'counter=$!',
      ...producer.slice(0, -1),
      `${producer.at(-1)!} | tee /tmp/raw | gzip -6`,
      'wait $counter',
      rowCounter
        ? 'cat /tmp/raw-counts >&2'
        : `printf 'rawbytes\\t%s\\n' "$(cat /tmp/raw-counts)" >&2`,
    ].join('\n'),
  ];
  if (d.engine === 'mariadb')
    return {
      ...base,
      env: { MYSQL_PWD: password },
      entrypoint: compressed(
        [
          `mariadb-dump -h ${host} -u ${at.user} --single-transaction --routines --triggers --events --hex-blob ${at.database}`,
        ],
        `printf 'version\\t%s\\n' "$(mariadb -h ${host} -u ${at.user} ${at.database} -N -B -e 'select version()')"`,
        mariadbRowCounter,
      ),
    };
  if (d.engine === 'postgres')
    return {
      ...base,
      env: { PGPASSWORD: password },
      // -Z0: gzip compresses once, after it; pg_dump's own zlib as well would only cost time.
      entrypoint: compressed(
        [`pg_dump -h ${host} -U ${at.user} -d ${at.database} -Fc -Z0`],
        countScript(d.engine, host, at),
      ),
    };
  // Redis: BGSAVE, wait until LASTSAVE moves, then the snapshot file from the data volume
  // (mounted read-only here). The one-off runs as the image's redis user, who owns it.
  return {
    ...base,
    env: { REDISCLI_AUTH: password, H: host },
    volumes: [`${dataVolumeName(d)}:/data:ro`],
    entrypoint: compressed(
      [
        'before=$(redis-cli -h "$H" lastsave)',
        // LASTSAVE counts seconds: start the save in a later second than the last one.
        'while [ "$(date +%s)" -le "$before" ]; do sleep 0.2; done',
        'redis-cli -h "$H" bgsave >&2',
        'i=0',
        'while [ "$(redis-cli -h "$H" lastsave)" = "$before" ]; do',
        '  i=$((i+1)); [ $i -lt 600 ] || { echo "BGSAVE did not finish in 120 s" >&2; exit 1; }',
        '  sleep 0.2',
        'done',
        'cat /data/dump.rdb',
      ],
      countScript(d.engine, host, at),
    ),
  };
}

/**
 * Counts what the backup should hold, printed as `table<TAB>name<TAB>rows`, `keys<TAB>n`
 * and `version<TAB>v` lines: by a client over the network for a live server (in the dump
 * one-off, before the dump: PostgreSQL and Redis), or over loopback inside a drill container.
 * MariaDB's system-versioned tables count too (their current rows, what mariadb-dump writes).
 */
function countScript(
  engine: DataService['engine'],
  host: string,
  { user, database }: { user: string; database: string } = { user: db, database: db },
): string {
  if (engine === 'mariadb')
    return [
      `q() { mariadb -h ${host} -u ${user} ${database} -N -B -e "$1"; }`,
      `printf 'version\\t%s\\n' "$(q 'select version()')"`,
      `q "select table_name from information_schema.tables where table_schema='${database}' and table_type in ('BASE TABLE', 'SYSTEM VERSIONED') order by 1" | while read -r t; do`,
      // A backtick in a name is doubled inside the quotes.
      `  n=$(printf %s "$t" | sed 's/\`/\`\`/g')`,
      `  printf 'table\\t%s\\t%s\\n' "$t" "$(q "select count(*) from \\\`$n\\\`")"`,
      'done',
    ].join('\n');
  if (engine === 'postgres')
    return [
      `q() { psql -h ${host} -U ${user} -d ${database} -At -F '\t' -v ON_ERROR_STOP=1 -c "$1"; }`,
      `printf 'version\\t%s\\n' "$(q 'show server_version')"`,
      `q "select 'table', table_schema || '.' || table_name, (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', table_schema, table_name), false, true, '')))[1]::text from information_schema.tables where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE' order by 2"`,
    ].join('\n');
  return [
    `printf 'version\\t%s\\n' "$(redis-cli -h ${host} info server | sed -n 's/^redis_version:\\([^\\r]*\\).*/\\1/p')"`,
    `printf 'keys\\t%s\\n' "$(redis-cli -h ${host} info keyspace | sed -n 's/^db[0-9]*:keys=\\([0-9]*\\).*/\\1/p' | awk '{s+=$1} END {print s+0}')"`,
  ].join('\n');
}

const passwordEnv = (engine: DataService['engine'], password: string): Record<string, string> =>
  engine === 'mariadb'
    ? { MYSQL_PWD: password }
    : engine === 'postgres'
      ? { PGPASSWORD: password }
      : { REDISCLI_AUTH: password };

/**
 * What a count printed: per-table rows, the key count and the server version; and, from a
 * dump one-off, the uncompressed dump's size (`rawbytes`).
 */
export function parseCounts(output: string): {
  tables: Record<string, number>;
  keys: number | null;
  serverVersion: string;
  rawBytes: number | null;
} {
  const tables: Record<string, number> = {};
  let keys: number | null = null;
  let serverVersion = '';
  let rawBytes: number | null = null;
  for (const line of output.split('\n')) {
    const [kind, a = '', b = ''] = line.replace(/\r$/, '').split('\t');
    if (kind === 'table' && a && /^\d+$/.test(b)) tables[a] = Number(b);
    if (kind === 'keys' && /^\d+$/.test(a)) keys = Number(a);
    if (kind === 'version') serverVersion = a;
    if (kind === 'rawbytes' && /^\s*\d+\s*$/.test(a)) rawBytes = Number(a);
  }
  return { tables, keys, serverVersion, rawBytes };
}

/**
 * What a drill's server runs with: its copy is thrown away, so durability is not paid for.
 * MariaDB: no doublewrite, no flush at commit, no fsync at all (`nosync` for InnoDB;
 * `--debug-no-sync` for the rest, the Aria system tables and each table's .frm: a bootstrap
 * synced some 400 times, 0.25 s on a quiet disk, 0.5–1.4 s behind other writes), no binary
 * log; a redo log and buffer pool that hold a ~200 MB restore without checkpoint flushing (the
 * default 96 MB log makes the page cleaner write and checksum pages while rows still
 * arrive); both are only reserved (fallocate, mmap), used as far as the data needs them.
 * Its bootstrap runs with the same flags: fsync per system table was half its time.
 * Never a real restore's: those go into the serving server, which keeps its durable settings.
 */
export const drillServerFlags = {
  mariadb:
    '--innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --innodb-flush-method=nosync --debug-no-sync --skip-log-bin --innodb-buffer-pool-size=512M --innodb-log-file-size=512M --skip-name-resolve',
  postgres: '-c fsync=off -c synchronous_commit=off -c full_page_writes=off',
} as const;

/**
 * The scripts of the image's mariadb-install-db that create the system tables, in its order
 * (`SET @auth_root_socket=NULL` before them: its `--auth-root-authentication-method=normal`).
 */
const mariadbSystemTables = [
  'mysql_system_tables.sql',
  'mysql_performance_tables.sql',
  'mysql_system_tables_data.sql',
];

/** The steps a drill container reports on stdout (`phase<TAB>name<TAB>ms since it began`). */
export type DrillPhase = 'ready' | 'restored' | 'counted';

/** The phases a drill printed, in ms since its script began (missing: not reached). */
export function parseDrillPhases(output: string): Partial<Record<DrillPhase, number>> {
  const out: Partial<Record<DrillPhase, number>> = {};
  for (const line of output.split('\n')) {
    const [kind, name = '', ms = ''] = line.replace(/\r$/, '').split('\t');
    if (kind === 'phase' && /^(ready|restored|counted)$/.test(name) && /^\d+$/.test(ms))
      out[name as DrillPhase] = Number(ms);
  }
  return out;
}

/**
 * A format-2 backup goes to a drill or a restore as the decrypted gzip stream and is
 * gunzipped in its container, beside the server (a sixth of the bytes through the engine's
 * attach stream, and no decompression in the control plane). `gunzipInput` feeds the dump on
 * and copies it to a FIFO whose bytes `wc -c` counts; `countedGunzip` wraps the script that
 * reads it, and prints `rawbytes<TAB>n` after, for the worker to hold against the manifest
 * (gunzip itself checks the CRC-32). The script runs under pipefail: a gunzip that fails
 * fails it, whatever the client says.
 */
const gunzipInput = 'gunzip | tee /tmp/raw';
const countedGunzip = (script: string[]): string[] => [
  'mkfifo /tmp/raw',
  'wc -c </tmp/raw >/tmp/raw-bytes &',
  'counter=$!',
  ...script,
  'wait $counter',
  `printf 'rawbytes\\t%s\\n' "$(cat /tmp/raw-bytes)"`,
];

/**
 * The restore drill: one container with NO network (loopback only) from the same image. It
 * starts a fresh server on an empty data directory, restores the dump from stdin into it and
 * prints the same counts as the backup did, for the worker to compare with the manifest,
 * and when each step ended (`phase` lines, for the RTO's breakdown). With `network` (linked
 * apps will start against the copy), it joins that network, the drill's own and internal,
 * instead of none; after the counts it prints `drill<TAB>ready` and keeps serving until the
 * worker removes it. The worker may start it before the backup has been verified: the
 * server initialises meanwhile, and stdin is only read once it is ready.
 */
export function planDrill(
  d: DataService,
  drillPassword: string,
  backupId: string,
  network?: string,
  options: { gzipped?: boolean } = {},
): ContainerSpec {
  const host = '127.0.0.1';
  // gzipped: stdin is the decrypted gzip stream (`countedGunzip`).
  const input = options.gzipped ? gunzipInput : 'cat';
  const wait = (probe: string) =>
    [
      'i=0',
      `until ${probe} >/dev/null 2>&1; do`,
      // 50 ms: a drill's RTO counts every wasted poll, and the probe is cheap.
      '  i=$((i+1)); [ $i -lt 2400 ] || { echo "the drill server did not start:" >&2; tail -n 5 /tmp/server.log >&2; exit 1; }',
      '  sleep 0.05',
      'done',
    ].join('\n');
  const phase = (name: DrillPhase) =>
    `printf 'phase\\t${name}\\t%s\\n' "$(( $(date +%s%3N) - t0 ))"`;
  const scripts: Record<DataService['engine'], { env: Record<string, string>; script: string }> = {
    mariadb: {
      env: { MARIADB_DATABASE: db, MARIADB_USER: db, MARIADB_PASSWORD: drillPassword },
      script: [
        // The image's entrypoint initialises with a server of its own, stopped and started
        // again (and polls it each second): the drill starts its server once, creating the
        // database and user from an init file before it accepts a connection. The password
        // is the drill's own, alphanumeric. The data directory gets only the system tables
        // (privileges, procedures, events, time zones) from the scripts mariadb-install-db
        // runs, not its 2 MB of HELP text and the sys schema (views over performance_schema):
        // a drill restores and serves one app database, and they were half the time to
        // ready. The script is written first (format 1 runs sh, without pipefail), so a
        // missing file fails here, not as a half-initialised server.
        `{ printf '%s\\n' 'CREATE DATABASE IF NOT EXISTS mysql;' 'USE mysql;' 'SET @auth_root_socket=NULL;'; cat ${mariadbSystemTables.map((f) => `/usr/share/mysql/${f}`).join(' ')}; } >/tmp/bootstrap.sql`,
        `mariadbd --bootstrap --datadir=/var/lib/mysql --log-warnings=0 --enforce-storage-engine= --max-allowed-packet=8M --net-buffer-length=16K ${drillServerFlags.mariadb} </tmp/bootstrap.sql >/tmp/server.log 2>&1 || { echo "the drill server did not initialise:" >&2; tail -n 5 /tmp/server.log >&2; exit 1; }`,
        `printf '%s\\n' "CREATE DATABASE \\\`${db}\\\`;" "CREATE USER '${db}'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';" "GRANT ALL PRIVILEGES ON \\\`${db}\\\`.* TO '${db}'@'%';" "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket;" >/tmp/init.sql`,
        // A throwaway copy: no durability to pay for, so the restore runs at the speed of the inserts.
        `mariadbd --datadir=/var/lib/mysql --bind-address=0.0.0.0 --port=3306 --init-file=/tmp/init.sql ${drillServerFlags.mariadb} >/tmp/server.log 2>&1 &`,
        wait(`mariadb -h ${host} -u ${db} ${db} -e 'select 1'`),
        phase('ready'),
        ...mariadbTwoConnectionRestore(
          { host, user: db, database: db },
          options.gzipped ? input : undefined,
        ),
        phase('restored'),
        countScript('mariadb', host),
      ].join('\n'),
    },
    postgres: {
      env: { POSTGRES_DB: db, POSTGRES_USER: db, POSTGRES_PASSWORD: drillPassword },
      script: [
        `/usr/local/bin/selfdevop-postgres ${drillServerFlags.postgres} >/tmp/server.log 2>&1 &`,
        wait(`psql -h ${host} -U ${db} -d ${db} -c 'select 1'`),
        phase('ready'),
        `${options.gzipped ? `${input} | ` : ''}pg_restore -h ${host} -U ${db} -d ${db} --no-owner --exit-on-error`,
        phase('restored'),
        countScript('postgres', host),
      ].join('\n'),
    },
    redis: {
      env: {
        REDIS_PASSWORD: drillPassword,
        REDIS_PERSISTENCE: 'rdb',
        REDIS_MAXMEMORY: '0',
        REDIS_MAXMEMORY_POLICY: 'noeviction',
      },
      script: [
        // Redis loads the snapshot at start: the file first, then the server.
        `${input} >/data/dump.rdb`,
        '/usr/local/bin/selfdevop-redis >/tmp/server.log 2>&1 &',
        wait(`[ "$(redis-cli -h ${host} ping)" = PONG ]`),
        phase('ready'),
        phase('restored'),
        countScript('redis', host),
      ].join('\n'),
    },
  };
  const chosen = scripts[d.engine];
  const script = [
    't0=$(date +%s%3N)',
    ...(options.gzipped ? countedGunzip([chosen.script]) : [chosen.script]),
    phase('counted'),
  ].join('\n');
  // pipefail (bash) for `countedGunzip`; MariaDB's restore is a pipeline too (the splitter),
  // whatever the format.
  const shell =
    options.gzipped || d.engine === 'mariadb' ? ['bash', '-o', 'pipefail', '-ec'] : ['sh', '-ec'];
  const spec = {
    name: drillServerName(d, backupId),
    image: imageOf(d),
    env: { ...chosen.env, ...passwordEnv(d.engine, drillPassword) },
    labels: labels(d, 'data-drill'),
    restartPolicy: 'no' as const,
  };
  if (!network) return { ...spec, noNetwork: true, entrypoint: [...shell, script] };
  return {
    ...spec,
    network,
    internalNetwork: true,
    // `wait`: the server (started in the background above) keeps the drill's copy up.
    entrypoint: [...shell, `${script}\nprintf 'drill\\tready\\n'\nwait`],
  };
}

/**
 * Restores a dump from stdin into a live server: a client on the project network for
 * MariaDB and PostgreSQL; for Redis (stopped first by the worker) the snapshot file written
 * into its data volume, AOF files removed so the snapshot is what loads.
 *
 * `gzipped` (a format-2 backup): stdin is the decrypted gzip stream, gunzipped and counted
 * here (`countedGunzip`), as a drill does; only `rawbytes` is written on stdout, the
 * clients' own output goes to stderr. Decompressing in the control plane and sending the
 * dump through the attach stream held a 1M-row restore to ~18 MB/s, twice the drill's time.
 * `fresh` (a restore into a new data service, a move to a dedicated server): MariaDB
 * restores over two connections, as the drill does. In place it stays one client that keeps
 * the dump's `LOCK TABLES`: the server is live, and its other clients must not see a table
 * half loaded.
 */
export function planRestore(
  d: DataService,
  password: string,
  backupId: string,
  options: { fresh?: boolean; gzipped?: boolean } = {},
): ContainerSpec {
  const at = dataEndpoint(d);
  const { host, user, database } = at;
  const base = {
    name: `${dataContainerName(d)}-restore-${backupId.toLowerCase()}`,
    image: imageOf(d),
    labels: labels(d, 'data-restore'),
    restartPolicy: 'no' as const,
  };
  const network = projectNetworkName(d.projectId);
  const input = options.gzipped ? gunzipInput : null;
  const script = (lines: string[]) => [
    'bash',
    '-o',
    'pipefail',
    '-ec',
    (options.gzipped ? countedGunzip(lines) : lines).join('\n'),
  ];
  if (d.engine === 'mariadb') {
    const env = { MYSQL_PWD: password };
    if (options.fresh)
      return {
        ...base,
        env,
        network,
        entrypoint: script(mariadbTwoConnectionRestore(at, input ?? undefined)),
      };
    const client = ['mariadb', '-h', host, '-u', user, database];
    return {
      ...base,
      env,
      network,
      entrypoint: input ? script([`${input} | ${client.join(' ')} >&2`]) : client,
    };
  }
  if (d.engine === 'postgres') {
    const client = [
      'pg_restore',
      '-h',
      host,
      '-U',
      user,
      '-d',
      database,
      '--clean',
      '--if-exists',
      '--no-owner',
      '--exit-on-error',
    ];
    return {
      ...base,
      env: { PGPASSWORD: password },
      network,
      entrypoint: input ? script([`${input} | ${client.join(' ')} >&2`]) : client,
    };
  }
  const swap = 'rm -rf /data/appendonlydir && mv /data/dump.rdb.restoring /data/dump.rdb';
  return {
    ...base,
    env: {},
    noNetwork: true,
    volumes: [`${dataVolumeName(d)}:/data`],
    entrypoint: input
      ? script([`${input} >/data/dump.rdb.restoring`, swap])
      : ['sh', '-ec', `cat >/data/dump.rdb.restoring && ${swap}`],
  };
}

/** Why a drill's counts differ from the manifest, or null when they match. */
export function compareWithManifest(
  manifest: Pick<BackupManifest, 'tables' | 'keys'>,
  restored: { tables: Record<string, number>; keys: number | null },
): string | null {
  const problems: string[] = [];
  const names = [...new Set([...Object.keys(manifest.tables), ...Object.keys(restored.tables)])];
  for (const t of names.sort()) {
    const want = manifest.tables[t];
    const got = restored.tables[t];
    if (want !== got)
      problems.push(
        `table ${t}: ${want === undefined ? 'not in the backup' : `${want} rows in the manifest`}, ${got === undefined ? 'missing after restore' : `${got} restored`}`,
      );
  }
  if (manifest.keys !== null && manifest.keys !== restored.keys)
    problems.push(`keys: ${manifest.keys} in the manifest, ${restored.keys ?? 'none'} restored`);
  return problems.length ? problems.join('; ') : null;
}

/** How many backups of each period retention keeps by default (the blueprint's 14/8/6). */
export const defaultRetention = { daily: 14, weekly: 8, monthly: 6 } as const;

/** The most of each period retention may keep: ten years of days, weeks and months. */
export const maxRetention = { daily: 3650, weekly: 520, monthly: 120 } as const;

/**
 * A retention setting, checked: each count a whole number from 0 up to `maxRetention`, not
 * all three 0 (that would keep only the newest passed drill, and no backup before its drill
 * ran); periods left out keep their default. Throws InvalidInput naming the period, e.g.
 * `backupRetention.daily`.
 */
export function checkRetention(input: unknown, field = 'backupRetention'): BackupRetention {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw new InvalidInput(`${field}: must be an object {daily, weekly, monthly}`, { field });
  const given = input as Record<string, unknown>;
  const unknown = Object.keys(given).filter((k) => !(k in defaultRetention));
  if (unknown.length)
    throw new InvalidInput(
      `${field}: unknown period ${unknown.map((k) => JSON.stringify(k)).join(', ')}; the periods are daily, weekly and monthly`,
      { field: `${field}.${unknown[0]}` },
    );
  const out = { ...defaultRetention } as BackupRetention;
  for (const period of ['daily', 'weekly', 'monthly'] as const) {
    const v = given[period];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > maxRetention[period])
      throw new InvalidInput(
        `${field}.${period}: must be a whole number from 0 to ${maxRetention[period]}, got ${JSON.stringify(v)}`,
        { field: `${field}.${period}` },
      );
    out[period] = v;
  }
  if (out.daily + out.weekly + out.monthly === 0)
    throw new InvalidInput(
      `${field}: keeps no backup at all; keep at least one day, week or month`,
      {
        field,
      },
    );
  return out;
}

/**
 * Which completed backups retention deletes: it keeps the newest of each of the last
 * `daily` days, `weekly` ISO weeks and `monthly` months that have one (UTC), and always the
 * newest backup whose drill passed (so the last proven restore point never goes), and never
 * touches running or failed ones (those are not backups). Answers ids, oldest first.
 */
export function backupsToDelete(
  backups: Pick<DataServiceBackup | ControlBackup, 'id' | 'status' | 'startedAt' | 'drillStatus'>[],
  keep: BackupRetention = defaultRetention,
): string[] {
  const done = backups
    .filter((b) => b.status === 'completed')
    .sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
  const kept = new Set<string>();
  const newestPerPeriod = (period: (d: Date) => string, count: number) => {
    const seen = new Set<string>();
    for (const b of done) {
      const p = period(new Date(b.startedAt));
      if (seen.has(p)) continue;
      if (seen.size >= count) break;
      seen.add(p);
      kept.add(b.id);
    }
  };
  newestPerPeriod((d) => d.toISOString().slice(0, 10), keep.daily);
  newestPerPeriod(isoWeek, keep.weekly);
  newestPerPeriod((d) => d.toISOString().slice(0, 7), keep.monthly);
  const proven = done.find((b) => b.drillStatus === 'passed');
  if (proven) kept.add(proven.id);
  return done
    .filter((b) => !kept.has(b.id))
    .map((b) => b.id)
    .reverse();
}

/** `2026-W49`: the ISO week (weeks start on Monday; week 1 holds the year's first Thursday). */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
