import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { openSession, type SqlSession } from '../../adapters/db/postgres.ts';
import { inFlightSql } from '../../adapters/store/postgres/releases.ts';
import {
  finishedReleaseStatuses,
  inFlightReleaseStatuses,
  releaseStatuses,
} from '../../core/models.ts';
import { createTestDatabase } from '../support/db.ts';

// The migrations froze the release status sets in SQL; the core's sets are the source.
// Read what the database really enforces and compare, so a change on either side fails here.

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: SqlSession;

beforeAll(async () => {
  db = await createTestDatabase('statuses');
  await migrate(db.url);
  owner = await openSession(db.url);
});

afterAll(async () => {
  await owner?.end();
  await db?.drop();
});

/** The string literals of a catalog expression such as `(status = ANY (ARRAY['a'::text, …]))`. */
const literals = (sql: string): string[] =>
  [...sql.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1]!.replaceAll("''", "'"));

describe('release statuses in the database', () => {
  it('are exactly the core statuses in the CHECK constraint on releases.status', async () => {
    const r = await owner.query<{ def: string }>(
      `select pg_get_constraintdef(c.oid) as def from pg_constraint c
       where c.conrelid = 'releases'::regclass and c.contype = 'c'
         and c.conkey = array[(select attnum from pg_attribute where attrelid = 'releases'::regclass and attname = 'status')]`,
    );
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]!.def).toMatch(/^CHECK \(\(status = ANY \(ARRAY\[/);
    expect(literals(r.rows[0]!.def).sort()).toEqual([...releaseStatuses].sort());
  });

  it('hold one in-flight release per service environment: the index predicate excludes exactly the finished ones', async () => {
    const r = await owner.query<{ pred: string; unique: boolean; cols: string }>(
      `select pg_get_expr(i.indpred, i.indrelid) as pred, i.indisunique as unique,
              pg_get_indexdef(i.indexrelid) as cols
       from pg_index i where i.indexrelid = 'releases_one_in_flight'::regclass`,
    );
    expect(r.rows).toHaveLength(1);
    const { pred, unique, cols } = r.rows[0]!;
    expect(unique).toBe(true);
    expect(cols).toMatch(/\(service_id, environment_id\) WHERE/);
    expect(pred).toMatch(/^\(status <> ALL \(ARRAY\[/);
    expect(literals(pred).sort()).toEqual([...finishedReleaseStatuses].sort());
    expect([...inFlightReleaseStatuses, ...finishedReleaseStatuses].sort()).toEqual(
      [...releaseStatuses].sort(),
    );
  });

  it('are what the store asks for when it looks for the release in flight', async () => {
    // The planner uses the partial index only when it proves the store's predicate implies
    // the index's, so the store finds the holder the index protects.
    await owner.query('set enable_seqscan = off');
    try {
      const forced = await owner.query<{ 'QUERY PLAN': string }>(
        `explain select id from releases where service_id = 'svc' and environment_id = 'env' and ${inFlightSql}`,
      );
      expect(forced.rows.map((x) => x['QUERY PLAN']).join('\n')).toContain(
        'releases_one_in_flight',
      );
    } finally {
      await owner.query('reset enable_seqscan');
    }
    expect(literals(inFlightSql).sort()).toEqual([...finishedReleaseStatuses].sort());
  });
});
