import { describe, expect, it } from 'vitest';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { parseCron } from '../../adapters/scheduler/cron.ts';
import { MemoryScheduler } from '../../adapters/scheduler/memory.ts';
import { runSchedulerContract } from '../contracts/scheduler.case.ts';

runSchedulerContract({
  make: async () => {
    const queue = new MemoryQueue({ retryDelaySeconds: 0 });
    const scheduler = new MemoryScheduler(queue);
    return {
      scheduler,
      queue,
      list: async () => scheduler.list(),
      runSchedules: async () => {
        await scheduler.tick(new Date());
      },
      close: async () => {},
    };
  },
  fireTimeoutMs: 2000,
  quietMs: 200,
});

describe('MemoryScheduler', () => {
  it('fires a schedule once per matching minute, and fire() on demand', async () => {
    const queue = new MemoryQueue();
    const scheduler = new MemoryScheduler(queue);
    await scheduler.schedule('hourly', '15 * * * *', 'jobs', { kind: 'hourly' });
    expect(await scheduler.tick(new Date('2026-01-01T10:14:59Z'))).toBe(0);
    expect(await scheduler.tick(new Date('2026-01-01T10:15:00Z'))).toBe(1);
    expect(await scheduler.tick(new Date('2026-01-01T10:15:40Z'))).toBe(0);
    expect(await scheduler.tick(new Date('2026-01-01T11:15:05Z'))).toBe(1);
    expect(await scheduler.fire('hourly')).toBe(true);
    expect(await scheduler.fire('unknown')).toBe(false);
    expect(await queue.depth('jobs')).toBe(3);
  });
});

describe('parseCron', () => {
  const at = (iso: string) => new Date(iso);
  it('matches steps, ranges, lists and either day field', () => {
    expect(parseCron('*/15 * * * *').matches(at('2026-01-01T00:30:00Z'))).toBe(true);
    expect(parseCron('*/15 * * * *').matches(at('2026-01-01T00:31:00Z'))).toBe(false);
    expect(parseCron('0 9-17 * * 1-5').matches(at('2026-01-05T12:00:00Z'))).toBe(true); // Monday
    expect(parseCron('0 9-17 * * 1-5').matches(at('2026-01-04T12:00:00Z'))).toBe(false); // Sunday
    expect(parseCron('0 0 1,15 * *').matches(at('2026-03-15T00:00:00Z'))).toBe(true);
    expect(parseCron('0 0 13 * 5').matches(at('2026-02-06T00:00:00Z'))).toBe(true); // a Friday, not the 13th
    expect(parseCron('0 0 * * 7').matches(at('2026-01-04T00:00:00Z'))).toBe(true); // 7 is Sunday
  });

  it('names the field it cannot read', () => {
    expect(() => parseCron('* * * *')).toThrow(/5 fields/);
    expect(() => parseCron('* 24 * * *')).toThrow(/hour field "24"/);
    expect(() => parseCron('*/0 * * * *')).toThrow(/minute field/);
    expect(() => parseCron('5-1 * * * *')).toThrow(/minute field/);
  });
});
