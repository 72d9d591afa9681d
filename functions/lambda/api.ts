/**
 * Lambda entry point of the control API. The composition root is built once per
 * container, at init (top-level await), and reused by every invocation.
 */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { createApiHandler } from './api-handler.ts';

const system = await fromCloud(fromCloudEnv());

export const handler = createApiHandler(system.api);
