import type { EventQueue, ScheduleOptions, Scheduler } from '../../core/ports.ts';
import { assertName } from '../queue/names.ts';
import { validateTimeZone } from '../../core/jobs/cron.ts';
import { parseCron } from './cron.ts';
import type { CronMatcher } from './cron.ts';

interface StoredSchedule {
  name: string;
  cron: string;
  queue: string;
  payload: unknown;
  timeZone: string;
  matcher: CronMatcher;
  /** The minute (epoch ms) it last fired for, so several ticks in one minute send once. */
  firedFor: number | null;
}

/**
 * An in-process Scheduler: it records schedules and sends nothing until a test calls
 * `tick(now)` (sends every schedule whose cron matches that minute, once per minute) or
 * `fire(name)` (sends one schedule now).
 */
export class MemoryScheduler implements Scheduler {
  private readonly queue: EventQueue;
  private readonly schedules = new Map<string, StoredSchedule>();

  constructor(queue: EventQueue) {
    this.queue = queue;
  }

  async schedule(
    name: string,
    cron: string,
    queue: string,
    payload?: unknown,
    options?: ScheduleOptions,
  ): Promise<void> {
    assertName('schedule', name);
    assertName('queue', queue);
    const timeZone = validateTimeZone(options?.timeZone ?? 'UTC');
    const matcher = parseCron(cron, timeZone);
    this.schedules.set(name, {
      name,
      cron,
      queue,
      payload: structuredClone(payload ?? null),
      timeZone,
      matcher,
      firedFor: null,
    });
  }

  async unschedule(name: string): Promise<void> {
    assertName('schedule', name);
    this.schedules.delete(name);
  }

  list(): { name: string; cron: string; queue: string; payload: unknown; timeZone?: string }[] {
    return [...this.schedules.values()].map(({ name, cron, queue, payload, timeZone }) => ({
      name,
      cron,
      queue,
      payload,
      ...(timeZone !== 'UTC' ? { timeZone } : {}),
    }));
  }

  /** Sends each schedule due in the minute of `now` that has not fired for that minute yet. */
  async tick(now: Date): Promise<number> {
    const minute = Math.floor(now.getTime() / 60_000) * 60_000;
    let sent = 0;
    for (const s of this.schedules.values()) {
      if (s.firedFor === minute || !s.matcher.matches(now)) continue;
      s.firedFor = minute;
      await this.queue.send(s.queue, s.payload, { group: `schedule:${s.name}` });
      sent++;
    }
    return sent;
  }

  /** Sends the named schedule's payload now, whatever its cron says; false when unknown. */
  async fire(name: string): Promise<boolean> {
    const s = this.schedules.get(name);
    if (!s) return false;
    await this.queue.send(s.queue, s.payload, { group: `schedule:${s.name}` });
    return true;
  }
}
