/**
 * The schedulers read cron as core/jobs/cron.ts does: one parser, so a schedule the API
 * accepted is one every Scheduler accepts and fires alike.
 */
export { parseCron, type CronMatcher } from '../../core/jobs/cron.ts';
