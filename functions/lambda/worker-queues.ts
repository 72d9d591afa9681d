/**
 * What the worker Lambda consumes: each queue it has an SQS event source mapping on, and
 * the core handler of each, taken from the cloud system. The self-hosted twin is
 * `startWorkers()` in adapters/modes/selfhost.ts; the stack's `cloudQueues` must list them all.
 */
import type { CloudSystem } from '../../adapters/modes/cloud.ts';
import { handleDomainCheck } from '../../core/domains/check.ts';
import { domainChecksQueue } from '../../core/domains/deps.ts';
import { domainSweepSchedule, sweepDomains } from '../../core/domains/sweep.ts';
import type { MessageHandler } from '../../core/ports.ts';
import { releaseRetireQueue, releaseStepsQueue } from '../../core/releases/deps.ts';
import { handleReleaseRetire, handleReleaseRollback, handleReleaseStep, releaseRollbackQueue } from '../../core/releases/engine.ts';
import { handleWebhookDelivery, handleWebhookEvent } from '../../core/webhooks/deliver.ts';
import { webhookDeliveriesQueue, webhookEventsQueue } from '../../core/webhooks/events.ts';
import { handleScheduledJob, scheduledJobsQueue } from './schedule-handler.ts';

export const cloudWorkerQueues = [
  releaseStepsQueue,
  releaseRetireQueue,
  releaseRollbackQueue,
  domainChecksQueue,
  webhookEventsQueue,
  webhookDeliveriesQueue,
  scheduledJobsQueue,
] as const;
export type CloudWorkerQueue = (typeof cloudWorkerQueues)[number];

type WorkerSystem = Pick<CloudSystem, 'release' | 'domains' | 'webhooks' | 'logger' | 'maintenance'>;

/**
 * The jobs EventBridge rules start (rule `<prefix><job>` → schedule Lambda → scheduled-jobs
 * queue → here). The domain sweep rides this path rather than a rule of its own into a
 * queue: the schedule Lambda already makes each firing one message, once, and one group
 * per job keeps two sweeps from running at the same time.
 */
export function cloudScheduledJobs(system: WorkerSystem): Record<string, () => Promise<void>> {
  return {
    maintenance: () => system.maintenance(),
    // Every minute: re-arms domain checks whose message chain stopped.
    [domainSweepSchedule]: async () => {
      const sent = await sweepDomains(system.domains);
      if (sent > 0) system.logger.warn({ domains: sent }, 'domain checks had stopped; re-armed');
    },
  };
}

/** One handler per queue the worker consumes. */
export function cloudWorkerHandlers(system: WorkerSystem): Record<CloudWorkerQueue, MessageHandler<never>> {
  return {
    [releaseStepsQueue]: handleReleaseStep(system.release) as MessageHandler<never>,
    [releaseRetireQueue]: handleReleaseRetire(system.release) as MessageHandler<never>,
    [releaseRollbackQueue]: handleReleaseRollback(system.release) as MessageHandler<never>,
    // Each check schedules the next itself (a delayed message); the sweep re-arms chains that stopped.
    [domainChecksQueue]: handleDomainCheck(system.domains) as MessageHandler<never>,
    [webhookEventsQueue]: handleWebhookEvent(system.webhooks) as MessageHandler<never>,
    [webhookDeliveriesQueue]: handleWebhookDelivery(system.webhooks) as MessageHandler<never>,
    [scheduledJobsQueue]: handleScheduledJob(cloudScheduledJobs(system), system.logger) as MessageHandler<never>,
  };
}
