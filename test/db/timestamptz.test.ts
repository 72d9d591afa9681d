import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Database;

beforeAll(async () => {
  testDb = await createTestDatabase('tstz');
  db = fromDatabaseUrl(testDb.url, { appRole: null, max: 2 });
});
afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

const times = [
  '2026-12-02 06:33:25.123456+00',
  '2026-12-02 06:33:25.999999+00',
  '2026-12-02 06:33:25.1+00',
  '2026-12-02 06:33:25+00',
  '2024-02-29 23:59:59.5+00',
  '1000-01-01 00:00:00+00',
  '1970-01-01 00:00:00+00',
  // Before year 1000 pg's own parser reads it; its Date is printed the same way.
  '0999-12-31 23:59:59.25+00',
];

async function read(zone: string) {
  return db.transaction(async (tx) => {
    await tx.query(`set local time zone '${zone}'`);
    const r = await tx.query<{ t: unknown; iso: string }>(
      `select t::timestamptz as t,
              to_char(t::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as iso
       from unnest($1::text[]) with ordinality as u(t, n) order by n`,
      [times],
    );
    return r.rows;
  });
}

describe('timestamptz columns', () => {
  // The store hands rows on as models, so every finite time must already be the string a
  // Date would print (`toISOString`), whatever the session's time zone.
  it('come back as the ISO string a Date would print, in UTC sessions', async () => {
    const rows = await read('UTC');
    expect(rows.map((r) => typeof r.t)).toEqual(times.map(() => 'string'));
    expect(rows.map((r) => r.t)).toEqual(rows.map((r) => r.iso));
  });

  it('mean the same instant, as the same ISO string, in a session with another time zone', async () => {
    const rows = await read('Asia/Kolkata');
    expect(rows.map((r) => r.t)).toEqual(rows.map((r) => r.iso));
  });

  it('keep pg’s own answer for infinities, and print eras before year 1 as ISO does', async () => {
    const r = await db.query<{ a: unknown; b: unknown; c: unknown }>(
      `select 'infinity'::timestamptz as a, '-infinity'::timestamptz as b,
              '0044-03-15 12:00:00+00 BC'::timestamptz as c`,
    );
    const row = r.rows[0]!;
    expect(row.a).toBe(Infinity);
    expect(row.b).toBe(-Infinity);
    expect(row.c).toBe('-000043-03-15T12:00:00.000Z');
  });
});
