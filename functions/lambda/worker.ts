/** Lambda entry point of the worker (SQS event source mappings on the queues of worker-queues.ts). */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { createWorkerHandler } from './worker-handler.ts';
import { cloudWorkerHandlers } from './worker-queues.ts';

const system = await fromCloud(fromCloudEnv(process.env));

export const handler = createWorkerHandler({
  queue: system.queue,
  handlers: cloudWorkerHandlers(system),
  logger: system.logger,
});
