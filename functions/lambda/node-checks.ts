/** Lambda entry point of the node checks: an EventBridge rule fires it once a minute. */
import { cloudNodeCheckSession, fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import { createNodeChecksHandler } from './node-checks-handler.ts';

// It pings the tenants' engines and Swarm managers, as the worker reaches them.
const config = fromCloudEnv();
const system = await fromCloud(config, {
  runtime: withSwarm(new DockerRuntime({ builder: config.BUILD_BUILDER }), new SwarmRuntime()),
});

export const handler = createNodeChecksHandler({
  checker: system.nodeChecks,
  session: cloudNodeCheckSession,
  logger: system.logger,
});
