import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Unavailable } from '../../core/errors.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import {
  fromDatabaseUrl,
  fromPgError,
  isConnectionError,
  openSession,
  toPgBossDb,
  type Database,
  type SqlSession,
} from '../../adapters/db/postgres.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { aProject, seedTenant } from '../contracts/store.case.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let owner: SqlSession;
const nowhere = 'postgres://postgres@127.0.0.1:1/nothing';

beforeAll(async () => {
  testDb = await createTestDatabase('pool');
  await migrate(testDb.url);
  owner = await openSession(testDb.url);
});
afterAll(async () => {
  await owner?.end();
  await testDb?.drop();
});

/** Ends every other connection to the test database, as a server restart would. */
async function terminateOthers(): Promise<number> {
  const r = await owner.query(
    `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`,
  );
  return r.rowCount;
}

async function using<T>(db: Database, fn: (db: Database) => Promise<T>): Promise<T> {
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

describe('fromDatabaseUrl', () => {
  it('confines even a superuser URL to the app role', async () => {
    await using(fromDatabaseUrl(testDb.url), async (db) => {
      const r = await db.query<{ current_user: string; session_user: string }>(
        'select current_user, session_user',
      );
      expect(r.rows).toEqual([{ current_user: 'selfdevop_app', session_user: 'postgres' }]);
      const inTx = await db.transaction((tx) =>
        tx.query<{ u: string }>('select current_user as u'),
      );
      expect(inTx.rows).toEqual([{ u: 'selfdevop_app' }]);
    });
  });

  it('keeps the login role when asked to (migrator, pg-boss)', async () => {
    await using(fromDatabaseUrl(testDb.url, { appRole: null }), async (db) => {
      expect((await db.query('select current_user as u')).rows).toEqual([{ u: 'postgres' }]);
    });
    const boss = toPgBossDb(testDb.url);
    try {
      expect((await boss.executeSql('select current_user as u, $1::int as n', [7])).rows).toEqual([
        { u: 'postgres', n: 7 },
      ]);
    } finally {
      await boss.close();
    }
  });

  it('answers a multi-statement query for pg-boss with one result per statement', async () => {
    // pg-boss's supervisor sends such batches; reading .rows of the whole answer broke it.
    const boss = toPgBossDb(testDb.url);
    try {
      const r = (await boss.executeSql('select 1 as a; select 2 as b')) as unknown as {
        rows: unknown[];
      }[];
      expect(r).toEqual([{ rows: [{ a: 1 }] }, { rows: [{ b: 2 }] }]);
    } finally {
      await boss.close();
    }
  });

  it('fails the checkout, rather than run as the owner, when the app role is missing', async () => {
    await using(fromDatabaseUrl(testDb.url, { appRole: 'no_such_role_sdo' }), async (db) => {
      const e = await db.query('select 1').catch((err: unknown) => err);
      expect(e).toMatchObject({ code: '22023', message: 'role "no_such_role_sdo" does not exist' });
    });
  });

  it('commits, and rolls back when fn throws', async () => {
    await using(fromDatabaseUrl(testDb.url, { appRole: null }), async (db) => {
      await db.query('create table if not exists tx_probe (n int)');
      await db.transaction((tx) => tx.query('insert into tx_probe values (1)'));
      await expect(
        db.transaction(async (tx) => {
          await tx.query('insert into tx_probe values (2)');
          throw new Error('stop');
        }),
      ).rejects.toThrow('stop');
      expect((await db.query('select n from tx_probe')).rows).toEqual([{ n: 1 }]);
    });
  });

  it('sends what fn sends at once in order, on one connection, in the transaction from its first write', async () => {
    await using(fromDatabaseUrl(testDb.url, { appRole: null, max: 1 }), async (db) => {
      await db.query('create table if not exists order_probe (n int)');
      const seen = await db.transaction(
        (tx) =>
          Promise.all([
            tx.query<{ n: number; open: boolean }>(
              'select count(*)::int as n, txid_current_if_assigned() is not null as open from order_probe',
            ),
            tx.query('insert into order_probe values (1)'),
            tx.query<{ n: number }>('select count(*)::int as n from order_probe'),
            tx.query<{ open: boolean }>('select txid_current_if_assigned() is not null as open'),
          ]),
        { readsAlone: true },
      );
      // The first read ran alone; after the write, reads run inside its transaction (which
      // holds the write's transaction id) and see the row.
      expect(seen[0].rows).toEqual([{ n: 0, open: false }]);
      expect(seen[2].rows).toEqual([{ n: 1 }]);
      expect(seen[3].rows).toEqual([{ open: true }]);
      expect((await db.query('select count(*)::int as n from order_probe')).rows).toEqual([
        { n: 1 },
      ]);
      await expect(
        db.transaction(
          async (tx) => {
            await tx.query('select 1');
            await tx.query('insert into order_probe values (2)');
            throw new Error('stop');
          },
          { readsAlone: true },
        ),
      ).rejects.toThrow('stop');
      expect((await db.query('select count(*)::int as n from order_probe')).rows).toEqual([
        { n: 1 },
      ]);
    });
  });

  it('runs a read alone with its settings in one transaction that they do not outlive', async () => {
    // One connection, so each read reuses the session of the one before it.
    await using(fromDatabaseUrl(testDb.url, { max: 1 }), async (db) => {
      const setting = () =>
        db.transaction(
          async (tx) => {
            const seen = await tx.query<{ org: string; open: boolean }>(
              `select current_setting('app.org_id', true) as org,
                      txid_current_if_assigned() is not null as open`,
            );
            return seen.rows[0];
          },
          { settings: { 'app.org_id': 'org_a' }, readsAlone: true },
        );
      // The setting (local to a transaction) holds for the read, which writes nothing.
      expect(await setting()).toEqual({ org: 'org_a', open: false });
      const after = await db.query<{ org: string | null }>(
        `select nullif(current_setting('app.org_id', true), '') as org`,
      );
      expect(after.rows).toEqual([{ org: null }]);
      // Two reads alone: each carries the setting, and values of every type go through.
      const both = await db.transaction(
        (tx) =>
          Promise.all([
            tx.query<{ org: string; n: number }>(
              `select current_setting('app.org_id', true) as org, $1::int as n`,
              [1],
            ),
            tx.query<{ org: string; t: string }>(
              `select current_setting('app.org_id', true) as org, $1::timestamptz as t`,
              [new Date('2026-01-02T03:04:05.678Z')],
            ),
          ]),
        { settings: { 'app.org_id': 'org_b' }, readsAlone: true },
      );
      expect(both.map((r) => r.rows[0])).toEqual([
        { org: 'org_b', n: 1 },
        { org: 'org_b', t: '2026-01-02T03:04:05.678Z' },
      ]);
    });
  });

  it('keeps the connection usable after a read alone fails in its setting or its statement', async () => {
    await using(fromDatabaseUrl(testDb.url, { max: 1 }), async (db) => {
      const read = (text: string, settings: Record<string, string>) =>
        db.transaction((tx) => tx.query<{ n: number }>(text, [2]), {
          settings,
          readsAlone: true,
        });
      const ok = { 'app.org_id': 'org_a' };
      // A statement PostgreSQL refuses to parse, first time and again (it is not taken as prepared).
      for (let i = 0; i < 2; i++)
        await expect(read('select $1::int as n from no_such_table', ok)).rejects.toMatchObject({
          code: '42P01',
        });
      // A setting PostgreSQL refuses: the statement after it is skipped, and not taken as prepared.
      const fresh = 'select $1::int + 1 as n';
      await expect(read(fresh, { 'no such name': 'x' })).rejects.toMatchObject({
        code: '42704',
      });
      expect((await read(fresh, ok)).rows).toEqual([{ n: 3 }]);
      expect((await read('select $1::int as n', ok)).rows).toEqual([{ n: 2 }]);
      // A value the driver cannot send fails the read before anything is written.
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(
        db.transaction((tx) => tx.query('select $1::jsonb as j', [circular]), {
          settings: ok,
          readsAlone: true,
        }),
      ).rejects.toThrow();
      expect((await read('select $1::int as n', ok)).rows).toEqual([{ n: 2 }]);
    });
  });

  it('shares a connection among concurrent reads alone, each with only its own setting', async () => {
    // One connection: every read of every caller goes out on it while others are in flight.
    await using(fromDatabaseUrl(testDb.url, { max: 1 }), async (db) => {
      const read = (org: string, n: number) =>
        db.transaction(
          (tx) =>
            tx.query<{ org: string; n: number; open: boolean }>(
              `select current_setting('app.org_id', true) as org, $1::int as n,
                      txid_current_if_assigned() is not null as open`,
              [n],
            ),
          { settings: { 'app.org_id': org }, readsAlone: true },
        );
      const orgs = Array.from({ length: 40 }, (_, i) => `org_${i % 3}`);
      const seen = await Promise.all(orgs.map((org, i) => read(org, i)));
      expect(seen.map((r) => r.rows[0])).toEqual(orgs.map((org, n) => ({ org, n, open: false })));
      const after = await db.query<{ org: string | null }>(
        `select nullif(current_setting('app.org_id', true), '') as org`,
      );
      expect(after.rows).toEqual([{ org: null }]);
    });
  });

  it('sends the reads alone of one turn on a shared connection in one write', async () => {
    await using(fromDatabaseUrl(testDb.url, { max: 1 }), async (db) => {
      const read = (n: number) =>
        db
          .transaction((tx) => tx.query<{ n: number }>('select $1::int as n', [n]), {
            settings: { 'app.org_id': 'org_a' },
            readsAlone: true,
          })
          .then((r) => r.rows[0]?.n);
      await read(0); // the connection exists and has parsed both statements
      // Every write to PostgreSQL's port while the six reads go out (pg writes a corked
      // socket's messages with _writev, a single one with _write).
      const port = Number(new URL(testDb.url).port || 5432);
      let writes = 0;
      const proto = net.Socket.prototype as unknown as Record<
        '_write' | '_writev',
        (this: net.Socket, ...args: unknown[]) => unknown
      >;
      const original = { _write: proto._write, _writev: proto._writev };
      for (const name of ['_write', '_writev'] as const)
        proto[name] = function (this: net.Socket, ...args: unknown[]) {
          if (this.remotePort === port) writes++;
          return original[name].apply(this, args);
        };
      try {
        expect(await Promise.all([1, 2, 3, 4, 5, 6].map(read))).toEqual([1, 2, 3, 4, 5, 6]);
      } finally {
        Object.assign(proto, original);
      }
      expect(writes).toBe(1);
    });
  });

  it('fails only the read that failed among reads sharing a connection', async () => {
    await using(fromDatabaseUrl(testDb.url, { max: 1 }), async (db) => {
      const read = (text: string, settings: Record<string, string>, n: number) =>
        db
          .transaction((tx) => tx.query<{ n: number }>(text, [n]), { settings, readsAlone: true })
          .then((r) => r.rows[0]?.n);
      const ok = { 'app.org_id': 'org_a' };
      // A fresh statement whose first parse goes with a setting PostgreSQL refuses: the reads
      // sent with it must not count on that parse, which PostgreSQL skips.
      const fresh = `select $1::int * 10 as n -- ${Date.now()}`;
      const settled = await Promise.allSettled([
        read(fresh, { 'no such name': 'x' }, 1),
        read(fresh, ok, 2),
        read('select 1 / ($1::int - 3) as n', ok, 3),
        read(fresh, ok, 4),
        read('select $1::int as n from no_such_table', ok, 5),
        read('select $1::int as n', ok, 6),
      ]);
      expect(
        settled.map((s) =>
          s.status === 'fulfilled' ? s.value : (s.reason as { code?: string }).code,
        ),
      ).toEqual(['42704', 20, '22012', 40, '42P01', 6]);
    });
  });

  it('lets a transaction waiting for a connection in while reads alone keep coming', async () => {
    await using(fromDatabaseUrl(testDb.url, { appRole: null, max: 1 }), async (db) => {
      await db.query('create table if not exists starve_probe (n int)');
      const until = Date.now() + 3000;
      let reads = 0;
      // Bounded: four callers reading back to back for at most 3 s.
      const readers = Array.from({ length: 4 }, async () => {
        while (Date.now() < until) {
          await db.transaction((tx) => tx.query('select $1::int as n', [1]), {
            readsAlone: true,
          });
          reads++;
        }
      });
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      await db.transaction((tx) => tx.query('insert into starve_probe values (1)'));
      const waited = Date.now() - started;
      await Promise.all(readers);
      expect(reads).toBeGreaterThan(0);
      expect(waited).toBeLessThan(1500);
    });
  });

  it('turns an unreachable server into Unavailable(database), and leaves SQL errors alone', async () => {
    await using(fromDatabaseUrl(nowhere, { connectTimeoutMs: 2000 }), async (db) => {
      const e = await db.query('select 1').catch((err: unknown) => err);
      expect(e).toBeInstanceOf(Unavailable);
      expect(e).toMatchObject({ kind: 'unavailable', code: 'database_unavailable' });
      await expect(db.transaction(async () => 1)).rejects.toBeInstanceOf(Unavailable);
    });
    await using(fromDatabaseUrl(testDb.url), async (db) => {
      const e = await db.query('select * from no_such_table').catch((err: unknown) => err);
      expect(e).not.toBeInstanceOf(Unavailable);
      expect(e).toMatchObject({ code: '42P01' });
    });
  });

  it('classifies connection failures by code and message', () => {
    const withCode = (code: string) => Object.assign(new Error('x'), { code });
    for (const code of [
      'ECONNREFUSED',
      'ECONNRESET',
      '57P01',
      '57P03',
      '08006',
      '08001',
      '53300',
    ]) {
      expect(isConnectionError(withCode(code)), code).toBe(true);
    }
    for (const code of ['23505', '42P01', '40001', '22023'])
      expect(isConnectionError(withCode(code)), code).toBe(false);
    expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionError(new AggregateError([withCode('ECONNREFUSED')], ''))).toBe(true);
    expect(isConnectionError('ECONNREFUSED')).toBe(false);
    const mapped = fromPgError(withCode('57P01'));
    expect(mapped).toBeInstanceOf(Unavailable);
    expect((mapped as Error).message).toBe('database is unavailable: x');
  });
});

describe('PostgresStore when the server goes away', () => {
  it('answers Unavailable while PostgreSQL cannot be reached', async () => {
    const store = PostgresStore.fromUrl(nowhere, { connectTimeoutMs: 2000 });
    try {
      await expect(store.ping()).rejects.toBeInstanceOf(Unavailable);
      await expect(store.withOrg('org_1', (r) => r.projects.get('prj_1'))).rejects.toBeInstanceOf(
        Unavailable,
      );
      await expect(store.identity.countUsers()).rejects.toBeInstanceOf(Unavailable);
    } finally {
      await store.close();
    }
  });

  it('recovers by itself after its idle connections are killed, without crashing', async () => {
    const idleErrors: Error[] = [];
    const store = PostgresStore.fromUrl(testDb.url, {
      max: 4,
      onIdleError: (e) => idleErrors.push(e),
    });
    try {
      const t = await seedTenant(store);
      // Open several connections so the pool holds idle ones.
      await Promise.all(
        [1, 2, 3].map(() => store.withOrg(t.orgId, (r) => r.projects.list({ limit: 1 }))),
      );
      expect(await terminateOthers()).toBeGreaterThanOrEqual(1);
      const p = aProject(t.orgId);
      await store.withOrg(t.orgId, (r) => r.projects.insert(p));
      expect(await store.withOrg(t.orgId, (r) => r.projects.get(p.id))).toEqual(p);
      await store.ping();
    } finally {
      await store.close();
    }
  });

  it('reports idle connections dying to onIdleError and replaces them', async () => {
    const idleErrors: Error[] = [];
    const db = fromDatabaseUrl(testDb.url, { max: 2, onIdleError: (e) => idleErrors.push(e) });
    try {
      await Promise.all(
        [1, 2].map(() => db.transaction((tx) => tx.query('select pg_sleep(0.05)'))),
      );
      await terminateOthers();
      for (let i = 0; i < 100 && idleErrors.length === 0; i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(idleErrors.length).toBeGreaterThanOrEqual(1);
      expect(isConnectionError(idleErrors[0])).toBe(true);
      expect((await db.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('sends the reads alone of a connection that dies again on another', async () => {
    const db = fromDatabaseUrl(testDb.url, { max: 2 });
    try {
      const reads = Array.from({ length: 6 }, (_, n) =>
        db.transaction(
          (tx) => tx.query<{ n: number }>('select $1::int as n, pg_sleep(0.3) as slept', [n]),
          { readsAlone: true },
        ),
      );
      await new Promise((r) => setTimeout(r, 100));
      expect(await terminateOthers()).toBeGreaterThanOrEqual(1);
      expect((await Promise.all(reads)).map((r) => r.rows[0]?.n)).toEqual([0, 1, 2, 3, 4, 5]);
      expect((await db.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    } finally {
      await db.close();
    }
  });

  it('fails the transaction whose connection dies with Unavailable, and the next one succeeds', async () => {
    const store = PostgresStore.fromUrl(testDb.url, { max: 2 });
    try {
      const t = await seedTenant(store);
      const failed = store.withOrg(t.orgId, async (r) => {
        await r.projects.insert(aProject(t.orgId));
        await terminateOthers();
        return r.projects.list({ limit: 5 });
      });
      await expect(failed).rejects.toBeInstanceOf(Unavailable);
      const p = aProject(t.orgId);
      await store.withOrg(t.orgId, (r) => r.projects.insert(p));
      const names = (await store.withOrg(t.orgId, (r) => r.projects.list({ limit: 10 }))).items.map(
        (x) => x.id,
      );
      // The project of the killed transaction never committed.
      expect(names.sort()).toEqual([t.projectId, p.id].sort());
    } finally {
      await store.close();
    }
  });
});
