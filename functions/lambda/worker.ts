/** Lambda entry point of the deploy worker (SQS event source mappings on the release queues). */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { releaseRetireQueue, releaseStepsQueue } from '../../core/release/deps.ts';
import { handleReleaseRetire, handleReleaseRollback, handleReleaseStep, releaseRollbackQueue } from '../../core/release/engine.ts';
import type { MessageHandler } from '../../core/ports.ts';
import { handleScheduledJob, scheduledJobsQueue } from './schedule-handler.ts';
import { createWorkerHandler } from './worker-handler.ts';

const system = await fromCloud(fromCloudEnv(process.env));

export const handler = createWorkerHandler({
  queue: system.queue,
  handlers: {
    [releaseStepsQueue]: handleReleaseStep(system.release) as MessageHandler<never>,
    [releaseRetireQueue]: handleReleaseRetire(system.release) as MessageHandler<never>,
    [releaseRollbackQueue]: handleReleaseRollback(system.release) as MessageHandler<never>,
    [scheduledJobsQueue]: handleScheduledJob({}, system.logger) as MessageHandler<never>,
  },
  logger: system.logger,
});
