/**
 * The SQS queue's durable idempotency ledger against a real PostgreSQL, connected as the
 * application role (as every Lambda is): claims, releases, concurrent claims from two
 * pools (two Lambda containers) and retention.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { PostgresIdempotencyLedger } from '../../adapters/queue/idempotency-postgres.ts';
import { SqsQueue } from '../../adapters/queue/sqs.ts';
import { FakeSqs } from '../cloud/fakes/sqs.ts';
import { createTestDatabase } from '../support/db.ts';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let app: Database;
let otherContainer: Database;
let owner: Database;

beforeAll(async () => {
  testDb = await createTestDatabase('idempotency');
  await migrate(testDb.url);
  app = fromDatabaseUrl(testDb.url, { max: 10 });
  otherContainer = fromDatabaseUrl(testDb.url, { max: 10 });
  owner = fromDatabaseUrl(testDb.url, { appRole: null, max: 1 });
});
afterAll(async () => {
  await app?.close();
  await otherContainer?.close();
  await owner?.close();
  await testDb?.drop();
});

describe('PostgresIdempotencyLedger', () => {
  it('claims a key once per queue, and gives it back on release', async () => {
    const ledger = new PostgresIdempotencyLedger(app);
    expect(await ledger.claim('release-steps', 'rel_1:build')).toBe(true);
    expect(await ledger.claim('release-steps', 'rel_1:build')).toBe(false);
    expect(await ledger.claim('release-retire', 'rel_1:build')).toBe(true);
    await ledger.release('release-steps', 'rel_1:build');
    expect(await ledger.claim('release-steps', 'rel_1:build')).toBe(true);
    // Releasing a key never claimed is harmless.
    await ledger.release('release-steps', 'never-claimed');
  });

  it('lets exactly one of many concurrent claims of a key win, across two containers', async () => {
    const ledgers = [
      new PostgresIdempotencyLedger(app),
      new PostgresIdempotencyLedger(otherContainer),
    ];
    for (let round = 0; round < 5; round++) {
      const key = `race-${round}`;
      const claims = await Promise.all(
        Array.from({ length: 20 }, (_, i) => ledgers[i % 2]!.claim('domain-checks', key)),
      );
      expect(claims.filter(Boolean), `winners of ${key}`).toHaveLength(1);
    }
    const rows = await owner.query<{ n: string }>(
      `select count(*) as n from queue_idempotency where key like 'race-%'`,
    );
    expect(Number(rows.rows[0]!.n)).toBe(5);
  });

  it('forgets keys older than the retention, and only those', async () => {
    const ledger = new PostgresIdempotencyLedger(app);
    await ledger.claim('webhook-events', 'old');
    await ledger.claim('webhook-events', 'recent');
    await owner.query(
      `update queue_idempotency set claimed_at = now() - interval '31 days' where key = 'old'`,
    );
    await owner.query(
      `update queue_idempotency set claimed_at = now() - interval '29 days' where key = 'recent'`,
    );
    expect(await ledger.prune(30)).toBe(1);
    expect(await ledger.claim('webhook-events', 'old')).toBe(true);
    expect(await ledger.claim('webhook-events', 'recent')).toBe(false);
    expect(await ledger.prune(30)).toBe(0);
    await expect(ledger.prune(0)).rejects.toThrow('retention must be a positive number of days');
  });

  it('makes SqsQueue.send answer null for a key sent before, after SQS would have forgotten it', async () => {
    const fake = new FakeSqs();
    try {
      const ledger = new PostgresIdempotencyLedger(app);
      const queue = new SqsQueue({ client: fake.client, createQueues: true, ledger });
      expect(
        await queue.send('webhook-deliveries', { n: 1 }, { idempotencyKey: 'whk_1:aud_1' }),
      ).toEqual(expect.any(String));
      // Six minutes later SQS's own deduplication has lapsed; the ledger still remembers.
      fake.now = () => Date.now() + 6 * 60_000;
      const again = new SqsQueue({
        client: fake.client,
        createQueues: true,
        ledger: new PostgresIdempotencyLedger(otherContainer),
      });
      expect(
        await again.send('webhook-deliveries', { n: 1 }, { idempotencyKey: 'whk_1:aud_1' }),
      ).toBeNull();
      expect(fake.bodies('selfdevop-webhook-deliveries.fifo')).toHaveLength(1);
    } finally {
      fake.mock.restore();
    }
  });

  it('gives the key back when the send fails, so a retry sends', async () => {
    const fake = new FakeSqs();
    try {
      const ledger = new PostgresIdempotencyLedger(app);
      // No such queue and createQueues off: SQS refuses the send.
      const refusing = new SqsQueue({ client: fake.client, ledger });
      await expect(
        refusing.send('release-steps', { n: 1 }, { idempotencyKey: 'retry-me' }),
      ).rejects.toThrow('does not exist');
      const queue = new SqsQueue({ client: fake.client, createQueues: true, ledger });
      expect(await queue.send('release-steps', { n: 1 }, { idempotencyKey: 'retry-me' })).toEqual(
        expect.any(String),
      );
    } finally {
      fake.mock.restore();
    }
  });
});
