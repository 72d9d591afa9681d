import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidInput } from '../../core/errors.ts';
import type { EventQueue, Scheduler } from '../../core/ports.ts';
import { uniqueQueue, waitFor } from './event-queue.case.ts';

export interface SchedulerUnderTest {
  scheduler: Scheduler;
  /** The queue schedules send into. */
  queue: EventQueue;
  /** Schedules as stored. */
  list(): Promise<
    { name: string; cron: string; queue: string; payload: unknown; timeZone?: string }[]
  >;
  /** Lets due schedules fire from now on (a cron pass for pg-boss, a tick for memory). */
  runSchedules(): Promise<void>;
  close(): Promise<void>;
}

export interface SchedulerContractOptions {
  make(): Promise<SchedulerUnderTest>;
  fireTimeoutMs?: number;
  /** How long to watch for a firing that must not happen. */
  quietMs?: number;
}

/** The Scheduler port's contract. `* * * * *` is due in every minute, so it fires on the first pass. */
export function runSchedulerContract({
  make,
  fireTimeoutMs = 10_000,
  quietMs = 3000,
}: SchedulerContractOptions): void {
  describe('Scheduler contract', () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function setup(): Promise<SchedulerUnderTest> {
      const s = await make();
      cleanups.push(() => s.close());
      return s;
    }

    async function listen(sut: SchedulerUnderTest, queue: string): Promise<unknown[]> {
      const got: unknown[] = [];
      const stop = await sut.queue.consume(queue, async (m) => {
        got.push(m.payload);
      });
      cleanups.push(stop);
      return got;
    }

    it('stores a schedule and sends its payload to the queue when due', async () => {
      const sut = await setup();
      const queue = uniqueQueue('sched');
      const name = uniqueQueue('domains-poll');
      await sut.scheduler.schedule(name, '* * * * *', queue, { job: 'poll-domains' });
      expect((await sut.list()).filter((s) => s.name === name)).toEqual([
        { name, cron: '* * * * *', queue, payload: { job: 'poll-domains' } },
      ]);
      const got = await listen(sut, queue);
      await sut.runSchedules();
      await waitFor(() => got.length >= 1, fireTimeoutMs, 'the schedule to fire');
      expect(got[0]).toEqual({ job: 'poll-domains' });
    });

    it('replaces a schedule of the same name, target queue and payload included', async () => {
      const sut = await setup();
      const oldQueue = uniqueQueue('old');
      const newQueue = uniqueQueue('new');
      const name = uniqueQueue('cleanup');
      await sut.scheduler.schedule(name, '0 3 * * *', oldQueue, { v: 1 });
      await sut.scheduler.schedule(name, '* * * * *', newQueue, { v: 2 });
      expect((await sut.list()).filter((s) => s.name === name)).toEqual([
        { name, cron: '* * * * *', queue: newQueue, payload: { v: 2 } },
      ]);
      const oldGot = await listen(sut, oldQueue);
      const newGot = await listen(sut, newQueue);
      await sut.runSchedules();
      await waitFor(() => newGot.length >= 1, fireTimeoutMs, 'the replacement to fire');
      expect(newGot[0]).toEqual({ v: 2 });
      expect(oldGot).toEqual([]);
    });

    it('unschedule() removes the schedule so it never fires', async () => {
      const sut = await setup();
      const queue = uniqueQueue('gone');
      const name = uniqueQueue('backup');
      await sut.scheduler.schedule(name, '* * * * *', queue, { v: 1 });
      await sut.scheduler.unschedule(name);
      await sut.scheduler.unschedule(name); // removing twice is fine
      expect((await sut.list()).filter((s) => s.name === name)).toEqual([]);
      const got = await listen(sut, queue);
      await sut.runSchedules();
      await sleep(quietMs);
      expect(got).toEqual([]);
    });

    it('keeps the time zone a schedule is read in, fires it, and refuses an unknown zone', async () => {
      const sut = await setup();
      const queue = uniqueQueue('tz');
      const name = uniqueQueue('nightly-berlin');
      await sut.scheduler.schedule(
        name,
        '30 2 * * *',
        queue,
        { v: 1 },
        { timeZone: 'Europe/Berlin' },
      );
      expect((await sut.list()).filter((s) => s.name === name)).toEqual([
        { name, cron: '30 2 * * *', queue, payload: { v: 1 }, timeZone: 'Europe/Berlin' },
      ]);
      // Due every minute in any zone, so the zone's schedule is seen to fire too.
      await sut.scheduler.schedule(
        name,
        '* * * * *',
        queue,
        { v: 2 },
        { timeZone: 'Asia/Kolkata' },
      );
      const got = await listen(sut, queue);
      await sut.runSchedules();
      await waitFor(() => got.length >= 1, fireTimeoutMs, 'the zoned schedule to fire');
      expect(got[0]).toEqual({ v: 2 });
      await expect(
        sut.scheduler.schedule(
          uniqueQueue('x'),
          '* * * * *',
          queue,
          {},
          { timeZone: 'Mars/Olympus' },
        ),
      ).rejects.toBeInstanceOf(InvalidInput);
    });

    it('refuses a malformed cron expression or name with InvalidInput', async () => {
      const sut = await setup();
      await expect(
        sut.scheduler.schedule('nightly', 'every day', uniqueQueue('q')),
      ).rejects.toBeInstanceOf(InvalidInput);
      await expect(
        sut.scheduler.schedule('nightly', '61 * * * *', uniqueQueue('q')),
      ).rejects.toBeInstanceOf(InvalidInput);
      await expect(
        sut.scheduler.schedule('bad name', '* * * * *', uniqueQueue('q')),
      ).rejects.toBeInstanceOf(InvalidInput);
    });
  });
}
