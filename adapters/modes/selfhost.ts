/**
 * The self-hosted composition root: every port wired to its self-hosted adapter, in plain
 * TypeScript (Kamal commander.rb style), from the validated configuration alone. Nothing
 * here decides anything; it only connects. The use cases are wired by core/system.ts and
 * the queues consumed from core/queues.ts, as in cloud mode.
 */
import path from 'node:path';
import { PrometheusMetricsQuery } from '../metrics-query/prometheus.ts';
import type { DomainConfig } from '../../core/domains/deps.ts';
import type { EventQueue, Logger, MessageHandler, RouteCatalog } from '../../core/ports.ts';
import {
  edgeRebuildJob,
  scheduledJobs,
  workerHandlers,
  workerQueueNames,
} from '../../core/queues.ts';
import { metricNames } from '../../core/alerts/rules.ts';
import type { ReleaseConfig, ReleaseDeps } from '../../core/releases/deps.ts';
import { wireSystem, type ApiDeps } from '../../core/system.ts';
import { NodeBackupCodec } from '../backup/node-codec.ts';
import { LocalFsObjectStore } from '../objects/local-fs.ts';
import { PgToolsControlDatabase } from '../control-database/pg-tools.ts';
import { registerControlBackupSchedule } from '../../core/control-backups/work.ts';
import { S3ObjectStore } from '../objects/s3.ts';
import type { WebhookDeps } from '../../core/webhooks/deliver.ts';
import { LocalJwtAuth } from '../auth/local-jwt.ts';
import { SystemClock } from '../clock/system.ts';
import { fromDatabaseUrl, toPgBossDb } from '../db/postgres.ts';
import { NodeDnsResolver } from '../dns/node.ts';
import { CaddyEdgeRouter } from '../edge/caddy.ts';
import { startUpstreamDns } from '../edge/upstream-dns.ts';
import { PostgresUpstreamRegistry } from '../edge/upstreams-postgres.ts';
import { PostgresRouteCatalog } from '../edge/route-catalog-postgres.ts';
import { nodeKeyHasher } from '../hash/node-crypto.ts';
import { NodeHttpSender, type ResolveAll } from '../http/node.ts';
import { RandomIds } from '../ids/random.ts';
import { fromPino } from '../logger/pino.ts';
import { SmtpMailer } from '../mail/smtp.ts';
import { PrometheusMetrics } from '../metrics/prometheus.ts';
import { PrometheusUsageSink } from '../metrics/usage-prometheus.ts';
import { serveUsageMetrics } from '../metrics/usage-endpoint.ts';
import { UsageCollector, usageDepsOf } from '../../core/stats/collect.ts';
import { HttpHealthProbe } from '../probe/http.ts';
import { fromPgBoss, type PgBossConfig } from '../queue/pg-boss.ts';
import { DockerRuntime } from '../runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../runtime/swarm.ts';
import { GitCliSource } from '../source/git-cli.ts';
import { buildLimitsOf } from './build-settings.ts';
import { PostgresStore } from '../store/postgres.ts';
import { adoptFirstOperator } from '../store/postgres/identity.ts';
import { AesFileKeyVault } from '../vault/aes-file.ts';
import { defaultCaddyAdminUrl, type SelfhostConfig } from './config.ts';

export interface SelfhostOptions {
  /**
   * Which process this is: `worker` (the compose worker) and `all` (`npm start` with
   * RUN_WORKERS) serve the edge's upstream DNS at EDGE_DNS_LISTEN; `api` only points
   * Caddy at EDGE_DNS_ADDRESS.
   */
  role: 'api' | 'worker' | 'all';
  /** Shown in /health and the OpenAPI document. */
  version: string;
}

/** What tests change beyond the configuration (tuning, where logs go); production passes none. */
export interface SelfhostOverrides {
  /** Where JSON log lines go; stdout unless set (tests capture them). */
  logDestination?: { write(line: string): void };
  bcryptCost?: number;
  queue?: Partial<PgBossConfig>;
  /** Login attempts allowed per account per 15 minutes, and per IP per minute. */
  loginLimits?: { perAccount: number; perIp: number };
  signupLimits?: { perIp: number };
  /** Invites an org may send per hour. */
  inviteLimits?: { perOrg: number };
  /** Engine tuning (tests shorten timeouts and delays). */
  release?: Partial<ReleaseConfig>;
  domains?: Partial<DomainConfig>;
  webhooks?: Partial<WebhookDeps['config']>;
  /** Messages handled at once per queue by this process's worker. */
  workerConcurrency?: number;
  /** The upstream DNS zone, and how often Caddy re-reads upstreams. */
  edgeDns?: { zone?: string; refreshMs?: number };
  /** How webhook hosts are resolved (tests re-point a name between creation and delivery). */
  webhookResolve?: ResolveAll;
  /**
   * Tests only: webhooks may be made for, and delivered to, loopback (their receivers listen
   * there). Never configuration: an install's webhooks never reach loopback.
   */
  webhooksToLoopback?: boolean;
  /**
   * Tests only: operators by email with open signup, which configuration refuses (anyone
   * could claim a listed address). A test stack's several orgs deploy to the local engine.
   */
  operatorEmails?: string[];
}

export interface SelfhostSystem {
  api: ApiDeps;
  release: ReleaseDeps;
  logger: Logger;
  vault: AesFileKeyVault;
  /** Where Caddy asks for upstreams (host:port), when routes use dynamic upstreams. */
  edgeDnsAddress: string | null;
  /** The one writer of Caddy config: tenant routes, and the control route (the worker's). */
  edge: CaddyEdgeRouter;
  /** Every route the edge must serve, read from the database to rebuild a lost edge. */
  routeCatalog: RouteCatalog;
  /**
   * The `edge-rebuild` job itself (control route and listeners first, in the worker): the
   * Compose worker also runs it at start and every EDGE_REBUILD_SECONDS.
   */
  rebuildEdge(): Promise<void>;
  /** Starts consuming the worker queues and the schedules; resolves to a stop that waits for messages in flight. */
  startWorkers(): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * Builds the self-hosted system from validated configuration.
 * @example const system = await fromSelfhost(requireSettings(fromEnv(), 'the worker', [...]), { role: 'worker', version })
 */
export async function fromSelfhost(
  config: SelfhostConfig,
  options: SelfhostOptions,
  overrides: SelfhostOverrides = {},
): Promise<SelfhostSystem> {
  const logger = fromPino({ level: config.LOG_LEVEL, destination: overrides.logDestination });
  const clock = new SystemClock();
  const db = fromDatabaseUrl(config.DATABASE_URL, {
    max: config.DB_POOL_MAX,
    onIdleError: (e) =>
      logger.warn({ err: e.message }, 'database connection lost; the pool reconnects'),
  });
  const store = new PostgresStore(db);
  // An install from before operators existed: its first account is the operator from now on.
  const adopted = await adoptFirstOperator(db);
  if (adopted)
    logger.info(
      { event: 'operator.adopted', userId: adopted },
      "the install's first account is its operator: it alone registers this machine's engine",
    );
  // pg-boss owns its schema (it creates a partition per queue), so it connects as its own
  // login, selfdevop_queue, which owns nothing of the control plane's.
  const bossDb = toPgBossDb(config.QUEUE_DATABASE_URL ?? config.DATABASE_URL, { max: 3 });
  const queues = await fromPgBoss({
    db: bossDb,
    logger: logger.child({ component: 'queue' }),
    // Steps hop from message to message within milliseconds (a worker that finishes one
    // fetches again at once); the poll only matters for an idle queue.
    pollingIntervalSeconds: 1,
    // A step may run a long migration, so expiry is generous; a worker that dies is noticed
    // by its missing heartbeat instead, and its step resumes within about 15 s.
    expireInSeconds: 3_600,
    heartbeatSeconds: 15,
    superviseIntervalSeconds: 5,
    ...overrides.queue,
  });
  const vault = await AesFileKeyVault.fromKeyFiles(config.ENCRYPTION_KEY_FILE);
  const upstreams = new PostgresUpstreamRegistry(db);
  const edgeZone = overrides.edgeDns?.zone ?? 'upstreams.selfdevop.internal';
  const dynamic = config.EDGE_UPSTREAMS === 'dynamic';
  const edgeDns =
    dynamic && options.role !== 'api'
      ? await startUpstreamDns({
          registry: upstreams,
          zone: edgeZone,
          ...splitHostPort(config.EDGE_DNS_LISTEN),
          logger,
        })
      : null;
  // Caddy reaches the DNS server at EDGE_DNS_ADDRESS (another container), else where it listens.
  const edgeDnsAddress = dynamic
    ? (config.EDGE_DNS_ADDRESS ?? edgeDns?.address ?? config.EDGE_DNS_LISTEN)
    : null;
  const edge = new CaddyEdgeRouter({
    adminUrl: config.CADDY_ADMIN_URL ?? defaultCaddyAdminUrl,
    server: config.CADDY_SERVER,
    listen: { httpListen: config.EDGE_HTTP_LISTEN },
    tlsAddress: config.EDGE_TLS_ADDRESS,
    ...(edgeDnsAddress
      ? {
          dynamicUpstreams: {
            registry: upstreams,
            zone: edgeZone,
            resolver: edgeDnsAddress,
            refreshMs: overrides.edgeDns?.refreshMs ?? 100,
          },
        }
      : {}),
  });
  // Invites and e-mail notifications go out by mail; without a server invites are refused
  // with a 503 that says so, and e-mail channels with a 400.
  const mailer = config.SMTP_URL
    ? new SmtpMailer({ url: config.SMTP_URL, from: config.MAIL_FROM })
    : undefined;
  // Backups: the local filesystem, or any S3-compatible store the operator names.
  const objects = config.OBJECTS_S3_BUCKET
    ? new S3ObjectStore({
        bucket: config.OBJECTS_S3_BUCKET,
        client: {
          region: config.OBJECTS_S3_REGION,
          // An S3-compatible store (MinIO, Garage, R2…) may predate the SDK's default
          // checksums on every request: sent and checked only where the API requires them.
          ...(config.OBJECTS_S3_ENDPOINT
            ? {
                endpoint: config.OBJECTS_S3_ENDPOINT,
                forcePathStyle: true,
                requestChecksumCalculation: 'WHEN_REQUIRED' as const,
                responseChecksumValidation: 'WHEN_REQUIRED' as const,
              }
            : {}),
          ...(config.OBJECTS_S3_ACCESS_KEY_ID && config.OBJECTS_S3_SECRET_ACCESS_KEY
            ? {
                credentials: {
                  accessKeyId: config.OBJECTS_S3_ACCESS_KEY_ID,
                  secretAccessKey: config.OBJECTS_S3_SECRET_ACCESS_KEY,
                },
              }
            : {}),
        },
        directTransfers: config.OBJECTS_S3_DIRECT,
      })
    : new LocalFsObjectStore(config.OBJECTS_DIR ?? path.join(config.DATA_DIR, 'objects'));
  // pg_dump needs the owner's (superuser's) login: forced row-level security hides every
  // tenant's rows from the API's own.
  const controlBackupUrl = config.CONTROL_BACKUP_DATABASE_URL ?? config.MIGRATE_DATABASE_URL;
  // One registry per process: the API serves it at /metrics, the worker at STATS_LISTEN
  // beside the usage (the node checks' gauges and the job durations are set in the worker).
  const metrics = new PrometheusMetrics();
  const system = wireSystem(
    {
      store,
      queue: queues.queue,
      objects,
      backupCodec: new NodeBackupCodec(),
      // Cron jobs' schedules: pg-boss cron, fired by whichever process runs schedules.
      scheduler: queues.scheduler,
      ...(mailer ? { mailer } : {}),
      vault,
      auth: new LocalJwtAuth({
        jwtSecret: config.JWT_SECRET,
        bcryptCost: overrides.bcryptCost,
        clock,
      }),
      // Engines and Swarm clusters (nodes of kind swarm) alike.
      runtime: withSwarm(
        new DockerRuntime({
          sshAgent: config.SSH_AUTH_SOCK,
          builder: config.BUILD_BUILDER,
          logScanImage: config.LOG_SCAN_IMAGE,
          logger: logger.child({ component: 'runtime' }),
        }),
        new SwarmRuntime({ connection: { sshAgent: config.SSH_AUTH_SOCK } }),
      ),
      // Fetched commits stay under DATA_DIR between builds and restarts: the next push's
      // fetch transfers only what changed; each service's build checkout stays there too,
      // so a rebuild rewrites only the files that changed.
      source: new GitCliSource({
        gitBin: config.GIT_BIN,
        mirrorDir: path.join(config.DATA_DIR, 'git-mirrors'),
        checkoutDir: path.join(config.DATA_DIR, 'git-checkouts'),
      }),
      edge,
      probe: new HttpHealthProbe(),
      dns: new NodeDnsResolver({ servers: config.DNS_SERVERS?.split(',') }),
      http: new NodeHttpSender({
        refusePrivateAddresses: !config.WEBHOOKS_ALLOW_PRIVATE,
        refusedEndpoints: platformEndpoints(config),
        resolve: overrides.webhookResolve,
        acceptLoopback: overrides.webhooksToLoopback ?? false,
      }),
      clock,
      ids: new RandomIds(),
      logger,
      metrics,
      metricsQuery: new PrometheusMetricsQuery(config.PROMETHEUS_URL),
      keyHasher: nodeKeyHasher,
      ...(controlBackupUrl
        ? {
            controlDatabase: new PgToolsControlDatabase({
              url: controlBackupUrl,
              binDir: config.PG_BIN_DIR,
            }),
          }
        : {}),
    },
    {
      edgeDomain: config.EDGE_DOMAIN,
      edgeIpv4: config.EDGE_IPV4?.split(',') ?? [],
      signupMode: config.SIGNUP_MODE,
      publicUrl: publicUrlOf(config),
      ...(config.DATA_IMAGES ? { dataImages: config.DATA_IMAGES } : {}),
      ...(config.ALERT_RECEIVER_TOKEN ? { alertReceiverToken: config.ALERT_RECEIVER_TOKEN } : {}),
      maxBodyBytes: config.MAX_BODY_BYTES,
      version: options.version,
      loginLimits: overrides.loginLimits ?? { perAccount: 10, perIp: 100 },
      ...(overrides.signupLimits ? { signupLimits: overrides.signupLimits } : {}),
      ...(overrides.inviteLimits ? { inviteLimits: overrides.inviteLimits } : {}),
      // Services on the operator's own network, by opt-in (never with open signup).
      allowPrivateWebhooks: config.WEBHOOKS_ALLOW_PRIVATE,
      allowPrivateGitHosts: config.GIT_ALLOW_PRIVATE_HOSTS,
      allowLoopbackWebhooks: overrides.webhooksToLoopback ?? false,
      // A team's own network may hold its nodes, unless anyone may sign up (as for webhooks).
      nodes: {
        operatorEmails: [...(config.OPERATOR_EMAILS ?? []), ...(overrides.operatorEmails ?? [])],
        tenantPrivateNodes: config.SIGNUP_MODE !== 'open',
      },
      // Short: another process revoking a key reaches this one only through the database.
      apiKeyCacheMs: 1_000,
      release: { build: buildLimitsOf(config), ...overrides.release },
      domains: { changesPerOrgPerHour: config.DOMAIN_CHANGES_PER_HOUR, ...overrides.domains },
      webhooks: overrides.webhooks,
      nodeChecks: {
        intervalMs: config.NODE_CHECK_SECONDS * 1000,
        timeoutMs: Math.min(1_500, config.NODE_CHECK_SECONDS * 1000),
        missesToLose: config.NODE_CHECK_MISSES,
      },
    },
  );
  const routeCatalog = new PostgresRouteCatalog(db);
  // What the workers run: the wired engines plus the route catalog, without which the
  // `edge-rebuild` job is not in the table at all (it was missing here, issue 11).
  // Only the Compose worker owns the control route and the edge's listeners (the API
  // process and `npm start` leave them to the worker or to their own Caddy's base config).
  const edgeControl =
    options.role === 'worker'
      ? () =>
          edge.reconcileControl({
            domain: config.SELFDEVOP_DOMAIN,
            upstream: config.CONTROL_UPSTREAM,
            listen: { http: config.EDGE_HTTP_LISTEN, https: config.EDGE_HTTPS_LISTEN },
          })
      : undefined;
  const workerSystem = { ...system, logger, routeCatalog, ...(edgeControl ? { edgeControl } : {}) };
  const edgeRebuild = scheduledJobs(workerSystem).find((j) => j.name === edgeRebuildJob)!;
  const stopWorkers: (() => Promise<void>)[] = [];
  return {
    api: system.api,
    release: system.release,
    logger,
    vault,
    edge,
    routeCatalog,
    rebuildEdge: () => edgeRebuild.run(),
    async startWorkers() {
      const concurrency = overrides.workerConcurrency ?? 4;
      const stops: (() => Promise<void>)[] = [];
      for (const [queue, handler] of Object.entries(workerHandlers(workerSystem))) {
        stops.push(
          await queues.queue.consume(queue, timed(metrics, queue, handler), { concurrency }),
        );
      }
      // pg-boss sends each job to a queue named after it; one at a time, so runs never overlap.
      const jobs = scheduledJobs(workerSystem);
      for (const job of jobs) {
        stops.push(await queues.queue.consume(job.name, () => job.run()));
        await queues.scheduler.schedule(job.name, job.cron, job.name);
      }
      // The control plane's nightly backup, at the schedule the operator set (or the default).
      await registerControlBackupSchedule(system.controlBackups).catch((e: Error) =>
        logger.warn({ err: e.message }, 'the control-plane backup schedule was not registered'),
      );
      // The edge (its own Caddy under `npm start`, or one whose autosave is gone) serves every
      // live route from the first minute, not only after the first scheduled rebuild.
      await edgeRebuild
        .run()
        .catch((e: Error) =>
          logger.warn(
            { err: e.message },
            'rebuilding the edge from the database failed; the schedule retries',
          ),
        );
      stops.push(
        await startUsageCollection(config, system.release, logger, {
          metrics,
          queue: queues.queue,
        }),
      );
      // Every node's engine, every NODE_CHECK_SECONDS, in the process that runs the workers:
      // a timer rather than pg-boss's cron, whose finest step is a minute.
      stops.push(system.nodeChecks.start());
      const stop = async () => {
        await Promise.all(stops.map((s) => s()));
      };
      stopWorkers.push(stop);
      return stop;
    },
    edgeDnsAddress,
    async close() {
      for (const stop of stopWorkers.splice(0)) await stop();
      await edgeDns?.close();
      await queues.stop();
      await bossDb.close();
      await store.close();
      await db.close();
      mailer?.close();
    },
  };
}

/**
 * The usage collector of the process that runs the workers: every STATS_INTERVAL_SECONDS
 * (never two collections at once) it measures replicas and nodes, and it serves the newest
 * snapshot to Prometheus at STATS_LISTEN. Resolves to its stop.
 */
async function startUsageCollection(
  config: SelfhostConfig,
  release: ReleaseDeps,
  logger: Logger,
  own: { metrics: PrometheusMetrics; queue: EventQueue },
): Promise<() => Promise<void>> {
  const everyMs = config.STATS_INTERVAL_SECONDS * 1000;
  if (everyMs === 0) return async () => undefined;
  // Three intervals without a collection and the figures are no longer served as current.
  const sink = new PrometheusUsageSink({ maxAgeMs: everyMs * 3 });
  const collector = new UsageCollector(
    usageDepsOf(
      release,
      sink,
      {
        nodeProbeImage: config.NODE_PROBE_IMAGE,
        nodeProbeEverySeconds: config.NODE_PROBE_SECONDS,
      },
      { queue: own.queue, names: workerQueueNames },
    ),
  );
  // A taken address costs Prometheus the figures, not the workers their start: the
  // collector still runs (crash loops are still reported) and the error says what to change.
  const endpoint = await serveUsageMetrics({
    ...splitHostPort(config.STATS_LISTEN),
    ...(config.ALERT_RECEIVER_TOKEN ? { token: config.ALERT_RECEIVER_TOKEN } : {}),
    // The usage, then this process's own registry: the node checks' gauges and the job
    // durations live in the worker, which the Compose stack's Prometheus scrapes here only.
    render: async () => sink.render() + (await own.metrics.render()).body,
  }).catch((e: Error) => {
    logger.error(
      { err: e.message, listen: config.STATS_LISTEN },
      'the usage endpoint could not listen (set STATS_LISTEN); Prometheus gets no replica or node figures',
    );
    return null;
  });
  let running: Promise<unknown> | null = null;
  const tick = () => {
    if (running) return;
    running = collector
      .collect()
      .catch((e: Error) => logger.warn({ err: e.message }, 'usage collection failed; retrying'))
      .finally(() => (running = null));
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return async () => {
    clearInterval(timer);
    await running;
    await endpoint?.close();
  };
}

/** A queue's handler, timed into `selfdevop_job_duration_seconds{queue, outcome}`. */
function timed(
  metrics: PrometheusMetrics,
  queue: string,
  handler: MessageHandler<never>,
): MessageHandler<never> {
  const name = metricNames.jobDuration.replace(/^selfdevop_/, '');
  return async (message) => {
    const started = performance.now();
    let outcome = 'failed';
    try {
      await handler(message);
      outcome = 'ok';
    } finally {
      metrics.observe(name, (performance.now() - started) / 1000, { queue, outcome });
    }
  };
}

/** Where people open the dashboard: PUBLIC_URL, else the control route's domain, else the API itself. */
export function publicUrlOf(config: SelfhostConfig): string {
  if (config.PUBLIC_URL) return config.PUBLIC_URL.replace(/\/+$/, '');
  if (config.SELFDEVOP_DOMAIN) return `https://${config.SELFDEVOP_DOMAIN}`;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.PORT}`;
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return {
    host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0',
    port: Number(address.slice(i + 1)),
  };
}

/**
 * host:port of every service of the platform itself, which no webhook may reach whatever
 * range its address is in: the edge's admin API (`caddy:2019/stop` stops every tenant's
 * traffic), the API, the edge's upstream DNS and TLS reads, the database.
 */
export function platformEndpoints(config: SelfhostConfig): string[] {
  const admin = new URL(config.CADDY_ADMIN_URL ?? defaultCaddyAdminUrl);
  const database = new URL(config.DATABASE_URL);
  return [
    `${admin.hostname}:${admin.port || 80}`,
    `${config.HOST}:${config.PORT}`,
    config.EDGE_DNS_LISTEN,
    ...(config.EDGE_DNS_ADDRESS ? [config.EDGE_DNS_ADDRESS] : []),
    config.EDGE_TLS_ADDRESS,
    `${database.hostname || '127.0.0.1'}:${database.port || 5432}`,
    `127.0.0.1:${config.EMBEDDED_PG_PORT}`,
    ...(config.CONTROL_UPSTREAM ? [config.CONTROL_UPSTREAM] : []),
  ];
}
