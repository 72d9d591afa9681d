/**
 * The one table of what the workers consume: each queue with its core handler, and the
 * scheduled jobs. pg-boss consumes it in self-hosted mode (adapters/modes/selfhost.ts),
 * the SQS worker Lambda in cloud mode, and the CDK stack
 * makes one FIFO queue per name in `workerQueueNames` (plus `scheduledJobsQueue`).
 */
import { dataServiceWorkQueue } from './data-services/deps.ts';
import { controlBackupWorkQueue, type ControlBackupDeps } from './control-backups/deps.ts';
import { handleControlBackupWork } from './control-backups/work.ts';
import { buildPruneCron, buildPruneSchedule, pruneBuildImages } from './builds/prune.ts';
import { gitPollCron, gitPollSchedule, pollGitSources } from './builds/poll.ts';
import { jobRunsQueue } from './jobs/deps.ts';
import { handleJobRun } from './jobs/run.ts';
import { handleDataServiceWork } from './data-services/work.ts';
import {
  backupSweepCron,
  backupSweepSchedule,
  sweepStaleMoves,
  sweepStuckBackups,
} from './data-services/sweep.ts';
import { handleDomainCheck } from './domains/check.ts';
import { handleServiceRemoval, serviceRemovalsQueue } from './services/removal.ts';
import { domainChecksQueue, type DomainDeps } from './domains/deps.ts';
import { domainSweepCron, domainSweepSchedule, sweepDomains } from './domains/sweep.ts';
import { rebuildEdgeRoutes } from './edge/live-routes.ts';
import type { Logger, MessageHandler, RouteCatalog } from './ports.ts';
import { releaseRetireQueue, releaseStepsQueue, type ReleaseDeps } from './releases/deps.ts';
import { releaseSweepCron, releaseSweepSchedule, sweepJoblessReleases } from './releases/sweep.ts';
import {
  handleReleaseRetire,
  handleReleaseRollback,
  handleReleaseStep,
  releaseRollbackQueue,
} from './releases/engine.ts';
import { handleWebhookDelivery, handleWebhookEvent, type WebhookDeps } from './webhooks/deliver.ts';
import { webhookDeliveriesQueue, webhookEventsQueue } from './webhooks/events.ts';
import {
  handleNotificationFlush,
  notificationFlushesQueue,
  type NotificationDeps,
} from './notification-channels/notify.ts';

/** Every queue a worker consumes, in both modes. */
export const workerQueueNames = [
  releaseStepsQueue,
  releaseRetireQueue,
  releaseRollbackQueue,
  domainChecksQueue,
  webhookEventsQueue,
  webhookDeliveriesQueue,
  notificationFlushesQueue,
  dataServiceWorkQueue,
  jobRunsQueue,
  serviceRemovalsQueue,
  controlBackupWorkQueue,
] as const;
export type WorkerQueue = (typeof workerQueueNames)[number];

/**
 * Where cloud mode's scheduled jobs travel (EventBridge rule → schedule Lambda → this
 * queue → worker); pg-boss's scheduler sends each job to a queue named after it instead.
 */
export const scheduledJobsQueue = 'scheduled-jobs';

/** A job run on a schedule: by pg-boss's cron in self-hosted mode, by an EventBridge rule `<prefix><name>` in the cloud. */
export interface ScheduledJob {
  name: string;
  /** Five-field cron, UTC. */
  cron: string;
  run(): Promise<void>;
}

/** The payload on `scheduled-jobs`. */
export interface ScheduledJobMessage {
  /** The EventBridge rule's name without the stack's prefix. */
  job: string;
  /** When EventBridge fired it (ISO-8601). */
  firedAt: string;
}

/** The wired engines the handlers run; `maintenance` where the mode has housekeeping to do. */
export interface WorkerSystem {
  release: ReleaseDeps;
  domains: DomainDeps;
  webhooks: WebhookDeps;
  notifications: NotificationDeps;
  /** The control plane's own backups; where absent (or unable to run), their messages fail with the reason. */
  controlBackups?: ControlBackupDeps;
  logger: Logger;
  maintenance?(): Promise<void>;
  /** Every route the edge must serve, read from the database: the `edge-rebuild` job puts back what the edge lost. */
  routeCatalog?: RouteCatalog;
  /**
   * Where the mode owns more of the edge than tenant routes (the self-hosted worker: the
   * control route and the listeners), puts that back first; resolves to what changed. A
   * Caddy that lost its config lost these too, and tenant routes coming back without the
   * dashboard would leave it down until some other timer noticed.
   */
  edgeControl?(): Promise<string[]>;
  /**
   * Where the mode measures replicas and nodes on a schedule (the cloud's worker function,
   * every minute); the self-hosted worker runs its collector on its own finer timer.
   */
  collectUsage?(): Promise<void>;
}

/** The job that measures every replica and node (cloud; core/stats/collect.ts). */
export const usageCollectJob = 'usage-collect';

/** The job that rebuilds lost edge routes from the database, every minute. */
export const edgeRebuildJob = 'edge-rebuild';

/** One handler per worker queue; the record type makes a queue without a handler a compile error. */
export function workerHandlers(system: WorkerSystem): Record<WorkerQueue, MessageHandler<never>> {
  return {
    [releaseStepsQueue]: handleReleaseStep(system.release) as MessageHandler<never>,
    [releaseRetireQueue]: handleReleaseRetire(system.release) as MessageHandler<never>,
    [releaseRollbackQueue]: handleReleaseRollback(system.release) as MessageHandler<never>,
    // Each check schedules the next itself (a delayed message); the sweep re-arms chains that stopped.
    [domainChecksQueue]: handleDomainCheck(system.domains) as MessageHandler<never>,
    [webhookEventsQueue]: handleWebhookEvent(system.webhooks) as MessageHandler<never>,
    [webhookDeliveriesQueue]: handleWebhookDelivery(system.webhooks) as MessageHandler<never>,
    [notificationFlushesQueue]: handleNotificationFlush(
      system.notifications,
    ) as MessageHandler<never>,
    // The release engine's ports are a superset of what data services need.
    [dataServiceWorkQueue]: handleDataServiceWork(system.release) as MessageHandler<never>,
    // Cron jobs' firings (from the Scheduler), manual runs and retries: one attempt each.
    [jobRunsQueue]: handleJobRun(system.release) as MessageHandler<never>,
    // Deleted services, environments and projects: their routes and containers.
    [serviceRemovalsQueue]: handleServiceRemoval(system.release) as MessageHandler<never>,
    // The control plane's own database: backups and drills (self-hosted; RDS in the cloud).
    [controlBackupWorkQueue]: handleControlBackupWork(
      system.controlBackups ?? {
        ...system.release,
        config: { unavailableReason: 'this worker has no control-plane backups wired' },
      },
    ) as MessageHandler<never>,
  };
}

/** The scheduled jobs; each runs alone (no two runs of one job overlap). */
export function scheduledJobs(system: WorkerSystem): ScheduledJob[] {
  const jobs: ScheduledJob[] = [
    {
      name: domainSweepSchedule,
      cron: domainSweepCron,
      run: async () => {
        const sent = await sweepDomains(system.domains);
        if (sent > 0) system.logger.warn({ domains: sent }, 'domain checks had stopped; re-armed');
      },
    },
    {
      // Old `<service>:<sha>` images and build cache would fill a node's disk one push at a time.
      name: buildPruneSchedule,
      cron: buildPruneCron,
      run: async () => {
        const done = await pruneBuildImages(system.release);
        if (done.removed.length > 0 || done.skipped.length > 0 || done.cacheReclaimedBytes > 0)
          system.logger.info(
            {
              nodes: done.nodes,
              removed: done.removed.length,
              inUse: done.inUse.length,
              cacheReclaimedBytes: done.cacheReclaimedBytes,
              skipped: done.skipped,
            },
            'build images pruned',
          );
      },
    },
    {
      // A backup a dead worker left `running` would never count as failed (nor alert); a
      // move it left `moving` would keep its links and half-made server until asked again.
      name: backupSweepSchedule,
      cron: backupSweepCron,
      run: async () => {
        await sweepStuckBackups(system.release);
        await sweepStaleMoves(system.release);
      },
    },
    {
      // Services whose git host cannot send push webhooks: their followed branch, polled.
      name: gitPollSchedule,
      cron: gitPollCron,
      run: async () => {
        const polled = await pollGitSources(system.release);
        const deployed = polled.filter((o) => o.status === 'deploying' || o.status === 'queued');
        const failed = polled.filter((o) => o.status === 'failed');
        if (deployed.length > 0 || failed.length > 0)
          system.logger.info(
            { polled: polled.length, deploying: deployed.length, failed: failed.length },
            'git branches polled',
          );
      },
    },
    {
      // Releases whose first step never reached the queue would block their service for good.
      name: releaseSweepSchedule,
      cron: releaseSweepCron,
      run: async () => {
        await sweepJoblessReleases(system.release);
      },
    },
  ];
  const catalog = system.routeCatalog;
  if (catalog) {
    // Caddy's config is a cache of the database: a Caddy that lost its autosave (or a new
    // edge) serves every live route again within a minute instead of at each one's next deploy.
    jobs.push({
      name: edgeRebuildJob,
      cron: '* * * * *',
      run: async () => {
        const changed = (await system.edgeControl?.()) ?? [];
        if (changed.length > 0) system.logger.info({ changed }, 'edge settings updated');
        const restored = await rebuildEdgeRoutes({
          catalog,
          edge: system.release.edge,
          edgeDomain: system.release.config.edgeDomain,
        });
        // For the edge status page: when the edge was last compared with the database.
        await system.release.store.edgeRebuilds
          ?.record({
            at: system.release.clock.now().toISOString(),
            restoredRoutes: restored.routes.length,
            restoredHosts: restored.hosts.length,
          })
          .catch((e: Error) =>
            system.logger.warn({ err: e.message }, 'edge rebuild ran but was not recorded'),
          );
        if (restored.routes.length > 0 || restored.hosts.length > 0)
          system.logger.warn(
            { ...restored },
            'edge routes the edge had lost were restored from the database',
          );
      },
    });
  }
  const collectUsage = system.collectUsage?.bind(system);
  if (collectUsage) jobs.push({ name: usageCollectJob, cron: '* * * * *', run: collectUsage });
  const maintenance = system.maintenance?.bind(system);
  if (maintenance) jobs.push({ name: 'maintenance', cron: '0 * * * *', run: maintenance });
  return jobs;
}

/**
 * The handler of `scheduled-jobs`: runs the job of that name. A job this build does not
 * know is logged and dropped rather than retried until it is dead-lettered.
 */
export function handleScheduledJob(
  jobs: ScheduledJob[],
  logger: Logger,
): MessageHandler<ScheduledJobMessage> {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  return async (m) => {
    const job = byName.get(m.payload.job);
    if (!job) {
      logger.warn({ job: m.payload.job }, 'no such scheduled job in this build; dropped');
      return;
    }
    await job.run();
  };
}
