/** Lambda entry point of the EventBridge scheduled rules. */
import { fromCloud } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { createScheduleHandler } from './schedule-handler.ts';

const system = await fromCloud(fromCloudEnv(process.env));

export const handler = createScheduleHandler({
  queue: system.queue,
  rulePrefix: process.env.SCHEDULE_RULE_PREFIX ?? 'selfdevop-',
  logger: system.logger,
});
