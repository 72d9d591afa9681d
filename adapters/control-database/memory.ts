/**
 * An in-memory ControlDatabase: its "database" is a map of table → rows count, its dump the
 * JSON of that map (so a restore can tell a good dump from a damaged one), and restored
 * databases are remembered by name. For core tests of backups, drills and retention.
 */
import { AlreadyExists } from '../../core/errors.ts';
import type { ControlDatabase } from '../../core/ports.ts';

export class MemoryControlDatabase implements ControlDatabase {
  /** The live database's tables and their rows; tests change it between backups. */
  tables: Record<string, number>;
  readonly serverVersion: string;
  /** Databases restored and kept, by name. */
  readonly databases = new Map<string, Record<string, number>>();
  /** When set, the next dump fails after its first chunk with this message. */
  failNextDump: string | null = null;

  constructor(tables: Record<string, number> = { 'public.orgs': 1 }, serverVersion = '15.0') {
    this.tables = { ...tables };
    this.serverVersion = serverVersion;
  }

  async dump(_options: { timeoutMs: number }) {
    const snapshot = { ...this.tables };
    const failure = this.failNextDump;
    this.failNextDump = null;
    const bytes = new TextEncoder().encode(JSON.stringify({ format: 'memory-dump', snapshot }));
    let aborted = false;
    async function* stdout(): AsyncGenerator<Uint8Array> {
      const half = Math.floor(bytes.length / 2);
      yield bytes.subarray(0, half);
      if (failure) throw new Error(failure);
      if (aborted) return;
      yield bytes.subarray(half);
    }
    return {
      tables: snapshot,
      serverVersion: this.serverVersion,
      stdout: stdout(),
      abort: () => {
        aborted = true;
      },
    };
  }

  async restore(
    dump: AsyncIterable<Uint8Array>,
    database: string,
    options: { keep: boolean; timeoutMs: number },
  ): Promise<{ tables: Record<string, number> }> {
    if (this.databases.has(database)) throw new AlreadyExists('database', database);
    const chunks: Uint8Array[] = [];
    for await (const c of dump) chunks.push(c);
    const text = new TextDecoder().decode(Buffer.concat(chunks));
    let parsed: { format?: string; snapshot?: Record<string, number> };
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      throw new Error('the restore failed: the dump is not one this database can read');
    }
    if (parsed.format !== 'memory-dump' || !parsed.snapshot)
      throw new Error('the restore failed: the dump is not one this database can read');
    if (options.keep) this.databases.set(database, parsed.snapshot);
    return { tables: { ...parsed.snapshot } };
  }
}
