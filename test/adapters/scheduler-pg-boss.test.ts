import { afterAll, beforeAll } from 'vitest';
import { fromPgBoss } from '../../adapters/queue/pg-boss.ts';
import type { PgBossQueueSystem } from '../../adapters/queue/pg-boss.ts';
import { createTestDatabase } from '../support/db.ts';
import { runSchedulerContract } from '../contracts/scheduler.case.ts';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
beforeAll(async () => {
  db = await createTestDatabase('scheduler');
});
afterAll(async () => {
  await db?.drop();
});

runSchedulerContract({
  make: async () => {
    // The API-side instance stores schedules but runs no cron pass; runSchedules() starts a
    // second instance that does, as a worker process would, with pg-boss's shortest intervals.
    const base = {
      connectionString: db.url,
      pollingIntervalSeconds: 0.5,
      retryDelaySeconds: 0,
      superviseIntervalSeconds: 1,
    };
    const api = await fromPgBoss({ ...base, runSchedules: false });
    let cron: PgBossQueueSystem | null = null;
    return {
      scheduler: api.scheduler,
      queue: api.queue,
      list: () => api.scheduler.list(),
      runSchedules: async () => {
        cron ??= await fromPgBoss({ ...base, runSchedules: true, cronIntervalSeconds: 1 });
      },
      close: async () => {
        await cron?.stop();
        await api.stop();
      },
    };
  },
});
