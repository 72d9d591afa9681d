/**
 * Hole 4: on a fresh first-user install, concurrent signups all won (ten orgs). Replayed
 * against two API processes on one PostgreSQL, a few rounds: exactly one may win.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { from, sharedDatabase, startApiProcess, type ApiProcess } from './support/stack.ts';

const rounds = 3;
const contenders = 16;

describe('first-user signup race', () => {
  let cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c();
    cleanup = [];
  });

  it(`lets exactly one of ${contenders} concurrent first signups win, ${rounds} rounds`, async () => {
    for (let round = 0; round < rounds; round++) {
      const db = await sharedDatabase({ signupMode: 'first-user' });
      cleanup.push(db.drop);
      const apis: ApiProcess[] = await Promise.all([
        startApiProcess(db.settings),
        startApiProcess(db.settings),
      ]);
      for (const api of apis) cleanup.push(api.stop);

      const results = await Promise.all(
        Array.from({ length: contenders }, (_, i) =>
          apis[i % 2]!.request('POST', '/api/auth/local/signup', {
            body: { email: `owner${i}@race.test`, password: 'correct horse battery' },
            headers: from(`10.9.${round}.${i + 1}`),
          }),
        ),
      );
      const statuses = results.map((r) => r.status).sort();
      expect(
        statuses.filter((s) => s === 201),
        `round ${round}: ${statuses.join(',')}`,
      ).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 201)) {
        expect(r.status).toBe(403);
        expect(r.body.error.code).toBe('signup_closed');
      }

      const admin = new pg.Client({ connectionString: db.settings.databaseUrl });
      await admin.connect();
      try {
        const users = await admin.query('select count(*)::int as n from users');
        const orgs = await admin.query('select count(*)::int as n from orgs');
        expect({ users: users.rows[0].n, orgs: orgs.rows[0].n }).toEqual({ users: 1, orgs: 1 });
      } finally {
        await admin.end();
      }
      for (const c of cleanup.reverse()) await c();
      cleanup = [];
    }
  }, 180_000);
});
