/**
 * ControlDatabase on PostgreSQL's own client tools (psql, pg_dump, pg_restore), run by the
 * worker as child processes. One psql session opens a repeatable-read snapshot, exports it,
 * and counts every table in it; pg_dump reads that very snapshot (`--snapshot`), so the
 * manifest's counts describe exactly the rows in the dump even while the control plane
 * writes. The dump streams out of pg_dump's stdout as it is read; nothing holds it whole.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AlreadyExists } from '../../core/errors.ts';
import type { ControlDatabase } from '../../core/ports.ts';

/** Every base table's rows as `rows<TAB>schema.table<TAB>n`, then the server version. */
const countsSql = `select format(E'rows\\t%s.%s\\t%s', table_schema, table_name,
  (xpath('/row/c/text()', query_to_xml(format('select count(*) as c from %I.%I', table_schema, table_name), false, true, '')))[1]::text)
from information_schema.tables
where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
order by table_schema, table_name;
select E'version\\t' || current_setting('server_version');
select 'end-of-counts';
`;

export interface PgToolsOptions {
  /** A superuser's (or a BYPASSRLS role's) URL of the control plane's database. */
  url: string;
  /** Where psql, pg_dump and pg_restore are; PATH when absent. */
  binDir?: string | undefined;
}

/** Splits the password off the URL: it travels in PGPASSWORD, never on a command line. */
function connection(url: string, database?: string): { dbname: string; env: NodeJS.ProcessEnv } {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  if (database) u.pathname = `/${database}`;
  return {
    dbname: u.toString(),
    env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) },
  };
}

/** A psql session fed statements on stdin, answering its output line by line. */
class PsqlSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  constructor(bin: string, url: string, database?: string) {
    const c = connection(url, database);
    this.child = spawn(
      bin,
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', `--dbname=${c.dbname}`],
      {
        env: c.env,
      },
    );
    this.child.stderr.on('data', (d: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += d.toString();
    });
    this.child.on('error', (e) => {
      this.stderr += e.message;
    });
    // A psql that failed to start (or died) closes its stdin: the reads below say why.
    this.child.stdin.on('error', () => undefined);
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }
  send(sql: string): void {
    this.child.stdin.write(sql.endsWith('\n') ? sql : `${sql}\n`);
  }
  async line(): Promise<string> {
    const next = await this.lines.next();
    if (next.done) throw new Error(`psql ended: ${this.stderr.trim() || 'no output'}`);
    return next.value;
  }
  /** Lines up to the `end-of-counts` marker, parsed. */
  async counts(): Promise<{ tables: Record<string, number>; serverVersion: string }> {
    const tables: Record<string, number> = {};
    let serverVersion = '';
    for (;;) {
      const line = await this.line();
      if (line === 'end-of-counts') return { tables, serverVersion };
      const [kind, a = '', b = ''] = line.split('\t');
      if (kind === 'rows' && /^\d+$/.test(b)) tables[a] = Number(b);
      if (kind === 'version') serverVersion = a;
    }
  }
  async end(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await new Promise((r) => this.child.once('close', r));
  }
  kill(): void {
    this.child.kill('SIGKILL');
  }
  get errors(): string {
    return this.stderr.trim();
  }
}

function exitOf(child: ChildProcessWithoutNullStreams): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('close', (code) => resolve(code));
  });
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 600) || 'no output';
}

export class PgToolsControlDatabase implements ControlDatabase {
  private readonly options: PgToolsOptions;
  constructor(options: PgToolsOptions) {
    this.options = options;
  }

  private bin(name: string): string {
    return this.options.binDir ? path.join(this.options.binDir, name) : name;
  }

  async dump(options: { timeoutMs: number }) {
    const session = new PsqlSession(this.bin('psql'), this.options.url);
    try {
      // Row-level security is forced on tenant tables: anyone else would dump them empty.
      session.send(
        "select case when rolsuper or rolbypassrls then 'ok' else 'no' end from pg_roles where rolname = current_user;",
      );
      if ((await session.line()) !== 'ok')
        throw new Error(
          "the control-plane backup's database user is neither a superuser nor BYPASSRLS: row-level security is forced on tenant tables, so it would back up no tenant's rows",
        );
      session.send('begin isolation level repeatable read read only; select pg_export_snapshot();');
      const snapshot = await session.line();
      if (!/^[0-9A-F-]+$/.test(snapshot))
        throw new Error(`could not open a snapshot in the database: ${snapshot}`);
      session.send(countsSql);
      const counts = await session.counts();
      const c = connection(this.options.url);
      const child = spawn(
        this.bin('pg_dump'),
        ['--format=custom', '--compress=0', `--snapshot=${snapshot}`, `--dbname=${c.dbname}`],
        { env: c.env },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString();
      });
      let spawnError: Error | null = null;
      child.on('error', (e) => (spawnError = e));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      const release = async () => {
        clearTimeout(timer);
        session.send('commit;');
        await session.end().catch(() => undefined);
      };
      async function* stdout(): AsyncGenerator<Uint8Array> {
        try {
          for await (const chunk of child.stdout) yield chunk as Uint8Array;
          const code = await exitOf(child);
          if (spawnError)
            throw new Error(`pg_dump could not start: ${(spawnError as Error).message}`);
          if (code !== 0)
            throw new Error(
              `pg_dump exited with ${code ?? 'a signal (timed out?)'}: ${tail(stderr)}`,
            );
        } finally {
          await release();
        }
      }
      return {
        ...counts,
        stdout: stdout(),
        abort: () => {
          child.kill('SIGKILL');
          void release();
        },
      };
    } catch (e) {
      session.kill();
      throw e;
    }
  }

  async restore(
    dump: AsyncIterable<Uint8Array>,
    database: string,
    options: { keep: boolean; timeoutMs: number },
  ): Promise<{ tables: Record<string, number> }> {
    await this.admin(`create database ${quoteIdent(database)}`).catch((e: Error) => {
      if (/already exists/.test(e.message)) throw new AlreadyExists('database', database);
      throw e;
    });
    let kept = false;
    try {
      const c = connection(this.options.url, database);
      const child = spawn(this.bin('pg_restore'), ['--exit-on-error', `--dbname=${c.dbname}`], {
        env: c.env,
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString();
      });
      child.stdout.resume();
      const exited = exitOf(child);
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
      try {
        await pipeline(Readable.from(dump), child.stdin).catch((e: unknown) => {
          child.kill('SIGKILL');
          // pg_restore closing its stdin early is reported by its exit below.
          if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
        });
        const code = await exited;
        if (code !== 0)
          throw new Error(
            `pg_restore exited with ${code ?? 'a signal (timed out?)'}: ${tail(stderr)}`,
          );
      } finally {
        clearTimeout(timer);
      }
      const session = new PsqlSession(this.bin('psql'), this.options.url, database);
      try {
        session.send(countsSql);
        const { tables } = await session.counts();
        kept = options.keep;
        return { tables };
      } finally {
        await session.end().catch(() => session.kill());
      }
    } finally {
      if (!kept)
        await this.admin(`drop database if exists ${quoteIdent(database)} with (force)`).catch(
          () => undefined,
        );
    }
  }

  /** One statement on the control plane's own database (create and drop run outside a transaction). */
  private async admin(sql: string): Promise<void> {
    const session = new PsqlSession(this.bin('psql'), this.options.url);
    session.send(`${sql};`);
    session.send("select 'done';");
    try {
      const line = await session.line();
      if (line !== 'done') throw new Error(line);
    } catch (e) {
      throw new Error(`${sql} failed: ${session.errors || (e as Error).message}`, { cause: e });
    } finally {
      await session.end().catch(() => session.kill());
    }
  }
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;
