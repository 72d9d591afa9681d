import { beforeAll, describe, expect, it } from 'vitest';
import type { ControlDatabase } from '../../core/ports.ts';

export interface ControlDatabaseFixture {
  /** The database under test, holding at least `expectTable` with at least one row. */
  make: () => ControlDatabase | Promise<ControlDatabase>;
  expectTable: string;
  /** A fresh database name per call (restores must not collide). */
  newName: () => string;
  /** Drops a database a test kept. */
  drop: (name: string) => Promise<void>;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function* replay(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c;
}

/** What every ControlDatabase (PostgreSQL's tools, memory) does. */
export function runControlDatabaseContract(f: ControlDatabaseFixture): void {
  describe('ControlDatabase contract', () => {
    let db: ControlDatabase;
    beforeAll(async () => {
      db = await f.make();
    });

    it('dumps with the counts of the same snapshot, and restores into a new database with the same counts', async () => {
      const dump = await db.dump({ timeoutMs: 60_000 });
      expect(dump.tables[f.expectTable]).toBeGreaterThan(0);
      expect(dump.serverVersion).toMatch(/^\d+/);
      const chunks = await collect(dump.stdout);
      expect(chunks.reduce((n, c) => n + c.byteLength, 0)).toBeGreaterThan(0);
      const name = f.newName();
      const restored = await db.restore(replay(chunks), name, { keep: false, timeoutMs: 60_000 });
      expect(restored.tables).toEqual(dump.tables);
      // Not kept: the same name is free again.
      const again = await db.restore(replay(chunks), name, { keep: true, timeoutMs: 60_000 });
      expect(again.tables).toEqual(dump.tables);
      await expect(
        db.restore(replay(chunks), name, { keep: true, timeoutMs: 60_000 }),
      ).rejects.toMatchObject({ code: 'database_exists' });
      await f.drop(name);
    }, 120_000);

    it('refuses a damaged dump and leaves no database behind', async () => {
      const dump = await db.dump({ timeoutMs: 60_000 });
      const chunks = await collect(dump.stdout);
      const whole = Buffer.concat(chunks);
      const damaged = whole.subarray(0, Math.floor(whole.length / 3));
      const name = f.newName();
      await expect(
        db.restore(replay([new Uint8Array(damaged)]), name, { keep: true, timeoutMs: 60_000 }),
      ).rejects.toThrow(/restore/);
      // Nothing half-restored: the name is free.
      const ok = await db.restore(replay(chunks), name, { keep: false, timeoutMs: 60_000 });
      expect(ok.tables).toEqual(dump.tables);
    }, 120_000);

    it('stops a dump whose output is abandoned', async () => {
      const dump = await db.dump({ timeoutMs: 60_000 });
      dump.abort();
      // Reading what is left ends (or throws), never hangs.
      await collect(dump.stdout).catch(() => []);
    }, 60_000);
  });
}
