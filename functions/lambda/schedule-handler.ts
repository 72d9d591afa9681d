import type { EventQueue, Logger, MessageHandler } from '../../core/ports.ts';
import { isScheduledEvent, nameOfArn } from './events.ts';

/** The queue scheduled jobs travel on, from the schedule Lambda to the worker. */
export const scheduledJobsQueue = 'scheduled-jobs';

export interface ScheduledJob {
  /** The EventBridge rule's name without the stack's prefix. */
  job: string;
  /** When EventBridge fired it (ISO-8601). */
  firedAt: string;
}

/**
 * The schedule Lambda: an EventBridge rule on a schedule invokes it; it sends the job named
 * after the rule to the scheduled-jobs queue. The event id is the idempotency key, so an
 * invocation EventBridge repeats sends nothing twice; one group per job keeps runs of the
 * same job from overlapping.
 */
export function createScheduleHandler(deps: { queue: Pick<EventQueue, 'send'>; rulePrefix: string; logger: Logger }) {
  return async (event: unknown): Promise<{ job: string; messageId: string | null }> => {
    if (!isScheduledEvent(event)) throw new Error('the schedule function handles EventBridge scheduled events only');
    const rule = nameOfArn(event.resources[0] ?? '');
    const job = rule.startsWith(deps.rulePrefix) ? rule.slice(deps.rulePrefix.length) : rule;
    if (!job) throw new Error(`scheduled event ${event.id} names no rule`);
    const payload: ScheduledJob = { job, firedAt: event.time };
    const messageId = await deps.queue.send(scheduledJobsQueue, payload, { idempotencyKey: `event:${event.id}`, group: `job:${job}` });
    deps.logger.info({ job, eventId: event.id, messageId }, 'scheduled job queued');
    return { job, messageId };
  };
}

/**
 * The worker's handler for scheduled-jobs: runs the job of that name. A job this build does
 * not know is logged and dropped rather than retried until it is dead-lettered.
 */
export function handleScheduledJob(jobs: Record<string, () => Promise<void>>, logger: Logger): MessageHandler<ScheduledJob> {
  return async (m) => {
    const run = jobs[m.payload.job];
    if (!run) {
      logger.warn({ job: m.payload.job }, 'no such scheduled job in this build; dropped');
      return;
    }
    await run();
  };
}
