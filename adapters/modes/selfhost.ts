/**
 * The self-hosted composition root: every port wired to its self-hosted adapter, in plain
 * TypeScript (Kamal commander.rb style). Nothing here decides anything; it only connects.
 */
import { RateLimiter } from '../../core/rate-limit.ts';
import { TtlCache } from '../../core/ttl-cache.ts';
import type { ApiKey } from '../../core/models.ts';
import type { Logger, RouteCatalog } from '../../core/ports.ts';
import type { SignupMode } from '../../core/use-cases/deps.ts';
import type { ApiDeps } from '../../functions/api/deps.ts';
import { LocalJwtAuth } from '../auth/local-jwt.ts';
import { SystemClock } from '../clock/system.ts';
import { fromDatabaseUrl, toPgBossDb } from '../db/postgres.ts';
import { RandomIds } from '../ids/random.ts';
import { fromPino } from '../logger/pino.ts';
import { PrometheusMetrics } from '../metrics/prometheus.ts';
import { fromPgBoss, type PgBossConfig } from '../queue/pg-boss.ts';
import { PostgresStore } from '../store/postgres.ts';
import { AesFileKeyVault } from '../vault/aes-file.ts';
import { CaddyEdgeRouter } from '../edge/caddy.ts';
import { startUpstreamDns } from '../edge/upstream-dns.ts';
import { PostgresUpstreamRegistry } from '../edge/upstreams-postgres.ts';
import { PostgresRouteCatalog } from '../edge/route-catalog-postgres.ts';
// Custom domains (issue 6): DNS polling worker and Caddy on-demand TLS ask gate.
import { AskGate } from '../../core/domains/ask-gate.ts';
import { handleDomainCheck } from '../../core/domains/check.ts';
import { defaultDomainConfig, domainChecksQueue, type DomainConfig, type DomainDeps } from '../../core/domains/deps.ts';
import { NegativeCachingResolver } from '../../core/domains/dns-cache.ts';
import { domainSweepCron, domainSweepQueue, domainSweepSchedule, handleDomainSweep } from '../../core/domains/sweep.ts';
import { NodeDnsResolver } from '../dns/node.ts';
import { HttpHealthProbe } from '../probe/http.ts';
import { DockerRuntime } from '../runtime/docker.ts';
import { defaultReleaseConfig, releaseRetireQueue, releaseStepsQueue, type ReleaseDeps } from '../../core/release/deps.ts';
import { handleReleaseRetire, handleReleaseRollback, handleReleaseStep, releaseRollbackQueue } from '../../core/release/engine.ts';
import { handleWebhookDelivery, handleWebhookEvent, type WebhookDeps } from '../../core/webhooks/deliver.ts';
import { queueEventPublisher, webhookDeliveriesQueue, webhookEventsQueue } from '../../core/webhooks/events.ts';
import { NodeHttpSender } from '../http/node.ts';

export interface SelfhostSettings {
  databaseUrl: string;
  jwtSecret: string;
  encryptionKeyFile: string;
  signupMode: SignupMode;
  edgeDomain: string;
  caddyAdminUrl: string;
  /** The Caddy HTTP server holding selfdevop's routes, and where it listens if it must be created. */
  caddyServer?: string;
  edgeHttpListen?: string;
  /**
   * Dynamic upstreams: Caddy reads each route's upstreams from selfdevop's DNS server, so a
   * deploy never reloads Caddy. `listen` (host:port, port 0 for any) binds the server in
   * this process; `address` is where Caddy reaches it (the bound address by default), for
   * processes that do not serve DNS themselves. Without both, routes carry static upstreams.
   */
  edgeDns?: { listen?: string; address?: string; zone?: string; refreshMs?: number };
  /** Release engine tuning (tests shorten timeouts). */
  release?: Partial<ReleaseDeps['config']>;
  /** Custom domains: Caddy's HTTPS listener as the control plane reaches it, to read certificates back. */
  edgeTlsAddress?: string;
  /** Custom domains: IPv4 addresses of the edge (apex A records); resolvers to poll (`ip[:port]`, system ones when absent). */
  edgeIpv4?: string[];
  dnsServers?: string[];
  /** Custom-domain worker tuning (tests shorten delays). */
  domains?: Partial<DomainConfig>;
  /** Webhook delivery tuning (tests shorten timeouts). */
  webhooks?: Partial<WebhookDeps['config']>;
  /** Release steps handled at once by this process's worker. */
  workerConcurrency?: number;
  maxBodyBytes: number;
  dbPoolMax: number;
  version: string;
  logLevel?: string;
  /** Where JSON log lines go; stdout unless set (tests capture them). */
  logDestination?: { write(line: string): void };
  bcryptCost?: number;
  queue?: Partial<PgBossConfig>;
  /** Login attempts allowed per account per 15 minutes, and per IP per minute. */
  loginLimits?: { perAccount: number; perIp: number };
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
  /** Starts consuming the release queues; resolves to a stop that waits for steps in flight. */
  startWorkers(): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export async function fromSelfhost(settings: SelfhostSettings): Promise<SelfhostSystem> {
  const logger = fromPino({ level: settings.logLevel ?? 'info', destination: settings.logDestination });
  const clock = new SystemClock();
  const db = fromDatabaseUrl(settings.databaseUrl, {
    max: settings.dbPoolMax,
    onIdleError: (e) => logger.warn({ err: e.message }, 'database connection lost; the pool reconnects'),
  });
  const store = new PostgresStore(db);
  const bossDb = toPgBossDb(settings.databaseUrl, { max: 3 });
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
    ...settings.queue,
  });
  const vault = await AesFileKeyVault.fromKeyFiles(settings.encryptionKeyFile);
  const auth = new LocalJwtAuth({ jwtSecret: settings.jwtSecret, bcryptCost: settings.bcryptCost, clock });
  const limits = settings.loginLimits ?? { perAccount: 10, perIp: 100 };
  const ids = new RandomIds();
  const upstreams = new PostgresUpstreamRegistry(db);
  const edgeZone = settings.edgeDns?.zone ?? 'upstreams.selfdevop.internal';
  const edgeDns = settings.edgeDns?.listen
    ? await startUpstreamDns({ registry: upstreams, zone: edgeZone, ...splitHostPort(settings.edgeDns.listen), logger })
    : null;
  const edgeDnsAddress = settings.edgeDns?.address ?? edgeDns?.address ?? null;
  const edge = new CaddyEdgeRouter({
    adminUrl: settings.caddyAdminUrl,
    server: settings.caddyServer ?? 'selfdevop',
    listen: { httpListen: settings.edgeHttpListen ?? ':80' },
    tlsAddress: settings.edgeTlsAddress ?? '127.0.0.1:443',
    ...(edgeDnsAddress
      ? {
          dynamicUpstreams: {
            registry: upstreams,
            zone: edgeZone,
            resolver: edgeDnsAddress,
            refreshMs: settings.edgeDns?.refreshMs ?? 100,
          },
        }
      : {}),
  });
  const release: ReleaseDeps = {
    store,
    runtime: new DockerRuntime(),
    edge,
    queue: queues.queue,
    vault,
    probe: new HttpHealthProbe(),
    clock,
    ids,
    logger: logger.child({ component: 'release' }),
    config: { ...defaultReleaseConfig, edgeDomain: settings.edgeDomain, ...settings.release },
    events: queueEventPublisher(queues.queue),
  };
  const webhooks: WebhookDeps = {
    store,
    queue: queues.queue,
    vault,
    http: new NodeHttpSender(),
    clock,
    logger: logger.child({ component: 'webhooks' }),
    config: { deliveryTimeoutMs: 10_000, maxDeliveryAttempts: 8, ...settings.webhooks },
  };
  const dnsResolver = new NodeDnsResolver({ servers: settings.dnsServers });
  const domainConfig: DomainConfig = {
    ...defaultDomainConfig,
    edgeDomain: settings.edgeDomain,
    edgeIpv4: settings.edgeIpv4 ?? [],
    ...settings.domains,
  };
  const domains: DomainDeps = {
    store,
    dns: new NegativeCachingResolver(dnsResolver, clock, domainConfig.negativeCacheSeconds),
    dnsFresh: dnsResolver,
    edge: release.edge,
    queue: queues.queue,
    clock,
    ids,
    logger: logger.child({ component: 'domains' }),
    config: domainConfig,
    events: release.events,
  };
  const askGate = new AskGate(clock, {
    perHostPerHour: domainConfig.askPerHostPerHour,
    baseBackoffSeconds: domainConfig.askBaseBackoffSeconds,
  });
  const api: ApiDeps = {
    store,
    auth,
    vault,
    ids,
    clock,
    logger,
    queue: queues.queue,
    release,
    domains: { deps: domains, gate: askGate },
    metrics: new PrometheusMetrics(),
    apiKeyCache: new TtlCache<ApiKey>({ ttlMs: 5_000, maxEntries: 10_000, clock }),
    loginLimits: {
      perAccount: new RateLimiter(limits.perAccount, 15 * 60_000, clock),
      perIp: new RateLimiter(limits.perIp, 60_000, clock),
    },
    config: { signupMode: settings.signupMode, edgeDomain: settings.edgeDomain, allowPrivateWebhooks: true },
    api: { maxBodyBytes: settings.maxBodyBytes, version: settings.version },
  };
  const stopWorkers: (() => Promise<void>)[] = [];
  return {
    api,
    release,
    logger,
    vault,
    edge,
    routeCatalog: new PostgresRouteCatalog(db),
    async startWorkers() {
      const concurrency = settings.workerConcurrency ?? 4;
      const stops = [
        await queues.queue.consume(releaseStepsQueue, handleReleaseStep(release), { concurrency }),
        await queues.queue.consume(releaseRetireQueue, handleReleaseRetire(release), { concurrency }),
        await queues.queue.consume(releaseRollbackQueue, handleReleaseRollback(release), { concurrency }),
        // Each check schedules the next one itself (delayed message); the sweep every minute
        // only re-arms chains that stopped (a message lost or given up on).
        await queues.queue.consume(domainChecksQueue, handleDomainCheck(domains), { concurrency }),
        await queues.queue.consume(domainSweepQueue, handleDomainSweep(domains)),
        await queues.queue.consume(webhookEventsQueue, handleWebhookEvent(webhooks), { concurrency }),
        await queues.queue.consume(webhookDeliveriesQueue, handleWebhookDelivery(webhooks), { concurrency }),
      ];
      await queues.scheduler.schedule(domainSweepSchedule, domainSweepCron, domainSweepQueue);
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
    },
  };
}

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i).replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: Number(address.slice(i + 1)) };
}
