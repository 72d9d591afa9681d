/** Lambda entry point of the worker: SQS event source mappings on the queues of core/queues.ts. */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import { swarmMembersHere } from '../../core/nodes/cluster.ts';
import { createWorkerHandler, sqsWorkerHandlers } from './worker-handler.ts';

// The one function that talks to the tenants' Docker engines.
const config = fromCloudEnv();
const system = await fromCloud(config, {
  // The tenant's engines and Swarm managers alike.
  runtime: withSwarm(new DockerRuntime({ builder: config.BUILD_BUILDER }), new SwarmRuntime()),
});

export const handler = createWorkerHandler({
  queue: system.queue,
  handlers: sqsWorkerHandlers(system),
  logger: system.logger,
  swarmMembers: swarmMembersHere(system.release),
});
