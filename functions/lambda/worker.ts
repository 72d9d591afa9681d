/** Lambda entry point of the worker (SQS event source mappings on the queues of worker-queues.ts). */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { createWorkerHandler } from './worker-handler.ts';
import { cloudWorkerHandlers } from './worker-queues.ts';

// The one function that talks to the tenants' Docker engines.
const system = await fromCloud(fromCloudEnv(process.env), { runtime: new DockerRuntime() });

export const handler = createWorkerHandler({
  queue: system.queue,
  handlers: cloudWorkerHandlers(system),
  logger: system.logger,
});
