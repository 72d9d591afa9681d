import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueMessage } from '../../core/ports.ts';
import { fromPgBoss } from '../../adapters/queue/pg-boss.ts';
import type { PgBossConfig } from '../../adapters/queue/pg-boss.ts';
import { createTestDatabase } from '../support/db.ts';
import { runEventQueueContract, uniqueQueue, waitFor } from '../contracts/event-queue.case.ts';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase('queue');
});
afterAll(async () => {
  await db?.drop();
});

// Short intervals keep each case to a few seconds; pg-boss's minimums are 0.5 s and 1 s.
const fast = (): PgBossConfig => ({
  connectionString: db.url,
  pollingIntervalSeconds: 0.5,
  retryDelaySeconds: 0,
  superviseIntervalSeconds: 1,
  reapIntervalSeconds: 1,
  runSchedules: false,
});

runEventQueueContract({
  make: async () => {
    const system = await fromPgBoss(fast());
    return {
      queue: system.queue,
      deadLetters: (q) => system.queue.deadLetters(q),
      close: () => system.stop(),
    };
  },
});

describe('PgBossQueue', () => {
  it('shares a caller-provided executor instead of opening its own pool', async () => {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: db.url, max: 4 });
    const system = await fromPgBoss({
      ...fast(),
      connectionString: undefined,
      db: { executeSql: (text, values) => pool.query(text, values) },
    });
    try {
      const queue = uniqueQueue('shared');
      await system.queue.ping();
      await system.queue.send(queue, { via: 'executor' });
      const got: unknown[] = [];
      const stop = await system.queue.consume(queue, async (m) => {
        got.push(m.payload);
      });
      await waitFor(() => got.length === 1, 8000, 'delivery');
      await stop();
      expect(got).toEqual([{ via: 'executor' }]);
    } finally {
      await system.stop();
      await pool.end();
    }
  });

  it('reports the database being gone as Unavailable from ping()', async () => {
    const system = await fromPgBoss(fast());
    await system.stop();
    await expect(system.queue.ping()).rejects.toMatchObject({ code: 'queue_unavailable' });
  });

  it('redelivers a message whose worker stopped without finishing it', async () => {
    const queue = uniqueQueue('abandoned');
    const first = await fromPgBoss(fast());
    await first.queue.send(queue, { step: 'migrate' }, { maxAttempts: 3 });
    let started = false;
    await first.queue.consume(queue, async () => {
      started = true;
      await new Promise(() => {}); // never finishes: the process is about to go away
    });
    await waitFor(() => started, 8000, 'the first delivery');
    await first.stop({ graceful: false });

    const second = await fromPgBoss(fast());
    try {
      const got: QueueMessage[] = [];
      const stop = await second.queue.consume(queue, async (m) => {
        got.push(m);
      });
      await waitFor(() => got.length === 1, 8000, 'the redelivery');
      expect(got[0]).toMatchObject({ payload: { step: 'migrate' } });
      expect(got[0]!.attempt).toBeGreaterThanOrEqual(2);
      await stop();
    } finally {
      await second.stop();
    }
  });

  it('redelivers the message of a worker process killed mid-handler (SIGKILL)', async () => {
    const queue = uniqueQueue('killed');
    const producer = await fromPgBoss({ ...fast(), expireInSeconds: 2 });
    try {
      await producer.queue.send(queue, { step: 'traffic' }, { maxAttempts: 3 });
      // A real worker process: it takes the message, says so, then hangs until killed.
      const adapter = fileURLToPath(new URL('../../adapters/queue/pg-boss.ts', import.meta.url));
      const script = `
        import { fromPgBoss } from ${JSON.stringify(adapter)};
        const { queue } = await fromPgBoss({ connectionString: ${JSON.stringify(db.url)}, pollingIntervalSeconds: 0.5, expireInSeconds: 2, runSchedules: false });
        await queue.consume(${JSON.stringify(queue)}, async (m) => {
          process.stdout.write('taken ' + m.attempt + '\\n');
          await new Promise(() => {});
        });
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await waitFor(() => out.includes('taken 1'), 15_000, 'the child to take the message');
      } finally {
        child.kill('SIGKILL');
        await exited;
      }

      const got: QueueMessage[] = [];
      const stop = await producer.queue.consume(queue, async (m) => {
        got.push(m);
      });
      // expireInSeconds (2) + a supervise pass (1) + polling, with room to spare.
      await waitFor(() => got.length === 1, 15_000, 'the redelivery after expiry');
      expect(got[0]).toMatchObject({ payload: { step: 'traffic' }, attempt: 2 });
      await stop();
    } finally {
      await producer.stop();
    }
  });

  it('lets a group move on once its head was dead-lettered', async () => {
    const system = await fromPgBoss(fast());
    try {
      const queue = uniqueQueue('dlq-group');
      await system.queue.send(queue, { i: 0 }, { group: 'g', maxAttempts: 1 });
      await system.queue.send(queue, { i: 1 }, { group: 'g' });
      const seen: number[] = [];
      const stop = await system.queue.consume<{ i: number }>(queue, async (m) => {
        seen.push(m.payload.i);
        if (m.payload.i === 0) throw new Error('poison');
      });
      await waitFor(() => seen.length === 2, 10_000, 'the next message of the group');
      expect(seen).toEqual([0, 1]);
      expect(await system.queue.deadLetters(queue)).toEqual([{ i: 0 }]);
      await stop();
    } finally {
      await system.stop();
    }
  });
});
