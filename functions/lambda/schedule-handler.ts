import type { EventQueue, Logger } from '../../core/ports.ts';
import { scheduledJobsQueue, type ScheduledJobMessage } from '../../core/queues.ts';
import { isScheduledEvent, nameOfArn } from './events.ts';

/**
 * The schedule Lambda: an EventBridge rule on a schedule invokes it; it sends the job named
 * after the rule to the scheduled-jobs queue. The event id is the idempotency key, so an
 * invocation EventBridge repeats sends nothing twice; one group per job keeps runs of the
 * same job from overlapping.
 */
export function createScheduleHandler(deps: {
  queue: Pick<EventQueue, 'send'>;
  rulePrefix: string;
  logger: Logger;
}) {
  return async (event: unknown): Promise<{ job: string; messageId: string | null }> => {
    if (!isScheduledEvent(event))
      throw new Error('the schedule function handles EventBridge scheduled events only');
    const rule = nameOfArn(event.resources[0] ?? '');
    const job = rule.startsWith(deps.rulePrefix) ? rule.slice(deps.rulePrefix.length) : rule;
    if (!job) throw new Error(`scheduled event ${event.id} names no rule`);
    const payload: ScheduledJobMessage = { job, firedAt: event.time };
    const messageId = await deps.queue.send(scheduledJobsQueue, payload, {
      idempotencyKey: `event:${event.id}`,
      group: `job:${job}`,
    });
    deps.logger.info({ job, eventId: event.id, messageId }, 'scheduled job queued');
    return { job, messageId };
  };
}
