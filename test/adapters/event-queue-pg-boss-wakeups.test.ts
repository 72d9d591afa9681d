/**
 * Latency, as behaviour: with a polling interval far longer than the test, a message still
 * arrives at once, because a send wakes idle workers (LISTEN/NOTIFY through the shared
 * db adapter) and a worker that finished a message fetches the next without sleeping.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toPgBossDb, type PgBossDb } from '../../adapters/db/postgres.ts';
import { fromPgBoss, type PgBossQueueSystem } from '../../adapters/queue/pg-boss.ts';
import { createTestDatabase } from '../support/db.ts';

describe('pg-boss queue wake-ups', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let bossDb: PgBossDb;
  let system: PgBossQueueSystem;

  beforeAll(async () => {
    db = await createTestDatabase('wakeups');
    bossDb = toPgBossDb(db.url, { max: 3 });
    system = await fromPgBoss({
      db: bossDb,
      pollingIntervalSeconds: 60,
      runSchedules: false,
      retryDelaySeconds: 0,
    });
  });
  afterAll(async () => {
    await system?.stop();
    await bossDb?.close();
    await db?.drop();
  });

  it('delivers a message sent to an idle consumer long before its next poll, and the next in its group right after', async () => {
    const got: string[] = [];
    const stop = await system.queue.consume<string>('wakeups', async (m) => {
      got.push(m.payload);
      if (m.payload === 'first') await system.queue.send('wakeups', 'second', { group: 'g' });
    });
    // Let the consumer make its first (empty) fetch and go to sleep for its 60 s poll.
    await new Promise((r) => setTimeout(r, 1_000));
    await system.queue.send('wakeups', 'first', { group: 'g' });
    const deadline = Date.now() + 15_000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await stop();
    expect(got).toEqual(['first', 'second']);
  }, 30_000);
});
