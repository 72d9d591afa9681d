/** Lambda entry point of the EventBridge scheduled rules. */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { createScheduleHandler } from './schedule-handler.ts';

const config = fromCloudEnv();
const system = await fromCloud(config);

export const handler = createScheduleHandler({
  queue: system.queue,
  rulePrefix: config.SCHEDULE_RULE_PREFIX,
  logger: system.logger,
});
