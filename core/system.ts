/**
 * What a running selfdevop is, whatever the mode: the ports a composition root picks
 * adapters for, the mode-neutral settings, and `wireSystem`, which connects the use cases
 * to them. Self-hosted and cloud differ only in the adapters they pass and a few policy
 * flags (allowPrivateWebhooks, readiness checks, hosted sign-in, the API key cache).
 */
import { AskGate } from './domains/ask-gate.ts';
import { defaultDomainConfig, type DomainConfig, type DomainDeps } from './domains/deps.ts';
import { NegativeCachingResolver } from './domains/dns-cache.ts';
import type { ApiKey, DataEngine } from './models.ts';
import { addDataImages } from './data-services/plan.ts';
import type {
  AuthProvider,
  BackupCodec,
  Clock,
  ContainerRuntime,
  ControlDatabase,
  SwarmMembers,
  DnsResolver,
  EdgeRouter,
  EventQueue,
  HealthProbe,
  HostedSignIn,
  HttpSender,
  IdGenerator,
  KeyHasher,
  KeyVault,
  Logger,
  Mailer,
  Metrics,
  ObjectStore,
  Scheduler,
  MetricsQuery,
  Store,
  SourceRepository,
} from './ports.ts';
import { defaultMaxJobTimeoutSeconds } from './jobs/deps.ts';
import type { JobsSetup } from './jobs/use-cases.ts';
import { AttemptLimiter } from './rate-limit.ts';
import { defaultReleaseConfig, type ReleaseConfig, type ReleaseDeps } from './releases/deps.ts';
import { TtlCache } from './ttl-cache.ts';
import type { CoreDeps, SignupMode } from './deps.ts';
import type { WebhookDeps } from './webhooks/deliver.ts';
import { queueEventPublisher } from './webhooks/events.ts';
import { holdForChannels, type NotificationDeps } from './notification-channels/notify.ts';
import type { ControlBackupDeps } from './control-backups/deps.ts';
import { NodeChecker } from './nodes/checks.ts';
import type { NodeCheckPolicy } from './nodes/reachability.ts';

/** The dashboard paths a hosted sign-in provider must know (its callback and signed-out pages). */
export const dashboardCallbackPath = '/dashboard/auth/callback';
export const dashboardSignedOutPath = '/dashboard/signed-out';

/** What the HTTP app needs from a composition root. */
export interface ApiDeps extends CoreDeps {
  queue: EventQueue;
  /** The deploy engine's ports, for the release endpoints. */
  release: ReleaseDeps;
  /** Custom domains: the engine's ports and the on-demand TLS ask gate; 503 without. */
  domains?: { deps: DomainDeps; gate: AskGate };
  metrics: Metrics & { render?(): Promise<{ contentType: string; body: string }> };
  /** Extra readiness checks beyond the database and queue (name → check). */
  readiness?: Record<string, () => Promise<void>>;
  /** Data services' backups (download, on-demand backups, schedules); 503 without. */
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  scheduler?: Scheduler;
  /** Cloud mode: the dashboard signs users in on this hosted page instead of its own form. */
  hostedSignIn?: HostedSignIn;
  /** Cron jobs: where their schedules are kept; 503 without. */
  jobs?: JobsSetup;
  /** The control plane's own backups (operators only); a 409 says why where they cannot run. */
  controlBackups?: ControlBackupDeps;
  /**
   * Where a Swarm's members are read and changed: this process unless set (the cloud API
   * sets the worker function, the one that reaches the managers).
   */
  swarmMembers?: SwarmMembers;
  api: {
    /** Largest request body accepted, in bytes. */
    maxBodyBytes: number;
    /**
     * Largest response body this API can answer, where one is bounded (the cloud: Lambda
     * answers 6 MB, base64-encoded by API Gateway); streamed without bound when absent.
     */
    maxResponseBytes?: number;
    /** Version string shown in /health and the OpenAPI document. */
    version: string;
  };
}

/** The adapters a mode picked, one per port. */
export interface SystemPorts {
  store: Store;
  queue: EventQueue;
  vault: KeyVault;
  auth: AuthProvider;
  runtime: ContainerRuntime;
  edge: EdgeRouter;
  probe: HealthProbe;
  /** The resolver custom-domain records are checked with (uncached). */
  dns: DnsResolver;
  /** Delivers webhooks and Slack notifications. */
  http: HttpSender;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  metrics: ApiDeps['metrics'];
  /** Cloud mode: the dashboard's hosted sign-in page. */
  hostedSignIn?: HostedSignIn;
  /** Git repositories, for services built from a git source. */
  source?: SourceRepository;
  /** Sends invites and e-mail notifications (SMTP, SES); absent where no mail server is configured. */
  mailer?: Mailer;
  /** Hashes API keys; the pure SHA-256 in core/hash.ts when absent. */
  keyHasher?: KeyHasher;
  /** Data services' backups: where they are stored, how they are encoded. */
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  /** Keeps cron jobs' and backups' schedules (pg-boss cron, EventBridge Scheduler); both answer 503 without. */
  scheduler?: Scheduler;
  /** Time series for the charts (Prometheus, CloudWatch); the pages say what to install without. */
  metricsQuery?: MetricsQuery;
  /** The control plane's own database for its backups (self-hosted: the PostgreSQL client tools). */
  controlDatabase?: ControlDatabase;
  /** Reads and changes Swarm members where this process reaches no manager (the cloud API). */
  swarmMembers?: SwarmMembers;
}

/** The mode-neutral settings, read from each mode's validated configuration. */
export interface SystemConfig {
  edgeDomain: string;
  /** The edge's public IPv4 addresses, for apex A records of custom domains. */
  edgeIpv4: string[];
  signupMode: SignupMode;
  /** Where people open the dashboard, for links in emails (invites) and notifications. */
  publicUrl?: string;
  /** What Prometheus and Alertmanager present to selfdevop (alert targets, the receiver). */
  alertReceiverToken?: string;
  maxBodyBytes: number;
  /** Largest response body the API can answer (the cloud's Lambda); unbounded when absent. */
  maxResponseBytes?: number;
  version: string;
  /** Data-service images beyond this build's own (`DATA_IMAGES`): newer minors to upgrade to. */
  dataImages?: { engine: DataEngine; version: string; image: string }[];
  /**
   * Failed logins allowed per account from one source per 15 minutes, and login attempts
   * per source per minute.
   */
  loginLimits: { perAccount: number; perIp: number };
  /** Signups allowed per source per 10 minutes; 20 unless set. */
  signupLimits?: { perIp: number };
  /** Invites an org may send per hour; 100 unless set. */
  inviteLimits?: { perOrg: number };
  /** How long a session is believed not revoked without asking the database; 1 s unless set. */
  revokedSessionCacheMs?: number;
  /** Whether webhooks may target private addresses: a self-hosted install's own network, never a SaaS's. */
  allowPrivateWebhooks: boolean;
  /** Whether git sources may be on private and loopback hosts: a self-hosted install's own git server, never a SaaS's. */
  allowPrivateGitHosts?: boolean;
  /** Tests only, from a composition root's test override: git servers on loopback. */
  allowLoopbackGitHosts?: boolean;
  /** Tests only, from a composition root's test override: webhooks may target loopback. */
  allowLoopbackWebhooks?: boolean;
  /**
   * Who registers which nodes: operators named by email besides the store's, and whether
   * tenants' nodes may be in private ranges (self-hosted without open signup). Default:
   * no named operators, public addresses only.
   */
  nodes?: { operatorEmails?: readonly string[]; tenantPrivateNodes?: boolean };
  /** How long a valid API key is believed without the database; no cache when absent. */
  apiKeyCacheMs?: number;
  /** Extra readiness checks (name → check). */
  readiness?: Record<string, () => Promise<void>>;
  /** Engine tuning beyond the defaults (tests shorten delays). */
  release?: Partial<ReleaseConfig>;
  domains?: Partial<DomainConfig>;
  webhooks?: Partial<WebhookDeps['config']>;
  /** The longest timeout a cron job may ask for (the cloud's worker function has a limit); an hour unless set. */
  jobMaxTimeoutSeconds?: number;
  /** Control-plane backups: why this mode keeps none of its own (cloud), how long one may run. */
  controlBackups?: { unavailableReason?: string; timeoutMs?: number };
  /** How often nodes are checked and how many misses lose one (core/nodes/reachability.ts). */
  nodeChecks?: Partial<NodeCheckPolicy>;
}

/** The wired use cases: what the API serves and what the queue handlers run. */
export interface System {
  api: ApiDeps;
  release: ReleaseDeps;
  domains: DomainDeps;
  webhooks: WebhookDeps;
  notifications: NotificationDeps;
  controlBackups: ControlBackupDeps;
  /** Checks every node's engine; the workers run it (a timer self-hosted, a schedule in the cloud). */
  nodeChecks: NodeChecker;
}

/**
 * Connects the release, domain and webhook engines and the API to the ports. Pure: it
 * opens nothing, so both composition roots share it and differ only in their adapters.
 * @example const system = wireSystem({ store, queue, … }, { edgeDomain: 'apps.example.com', … })
 */
export function wireSystem(ports: SystemPorts, config: SystemConfig): System {
  const { store, queue, vault, clock, ids, logger } = ports;
  addDataImages(config.dataImages ?? []);
  const backupPorts = {
    ...(ports.objects ? { objects: ports.objects } : {}),
    ...(ports.backupCodec ? { backupCodec: ports.backupCodec } : {}),
    ...(ports.scheduler ? { scheduler: ports.scheduler } : {}),
  };
  const release: ReleaseDeps = {
    store,
    runtime: ports.runtime,
    edge: ports.edge,
    queue,
    vault,
    probe: ports.probe,
    clock,
    ids,
    logger: logger.child({ component: 'release' }),
    config: {
      ...defaultReleaseConfig,
      edgeDomain: config.edgeDomain,
      tenantPrivateNodes: config.nodes?.tenantPrivateNodes ?? false,
      ...config.release,
    },
    events: queueEventPublisher(queue),
    ...(ports.source ? { source: ports.source } : {}),
    ...backupPorts,
  };
  const webhooks: WebhookDeps = {
    store,
    queue,
    vault,
    http: ports.http,
    clock,
    ids,
    logger: logger.child({ component: 'webhooks' }),
    config: { deliveryTimeoutMs: 10_000, maxDeliveryAttempts: 8, ...config.webhooks },
  };
  const notifications: NotificationDeps = {
    store,
    queue,
    vault,
    http: ports.http,
    ...(ports.mailer ? { mailer: ports.mailer } : {}),
    clock,
    ids,
    logger: logger.child({ component: 'notifications' }),
    config: {
      ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
      deliveryTimeoutMs: webhooks.config.deliveryTimeoutMs,
      maxDeliveryAttempts: webhooks.config.maxDeliveryAttempts,
    },
  };
  webhooks.notify = async (m) => {
    await holdForChannels(notifications, m);
  };
  const domainConfig: DomainConfig = {
    ...defaultDomainConfig,
    edgeDomain: config.edgeDomain,
    edgeIpv4: config.edgeIpv4,
    ...config.domains,
  };
  const domains: DomainDeps = {
    store,
    // Per process (per Lambda container): each caches its own misses, briefly.
    dns: new NegativeCachingResolver(ports.dns, clock, domainConfig.negativeCacheSeconds),
    dnsFresh: ports.dns,
    edge: ports.edge,
    queue,
    clock,
    ids,
    logger: logger.child({ component: 'domains' }),
    config: domainConfig,
    events: release.events,
  };
  // Per process, like the login limits: Caddy's asks for one host land on few instances.
  const gate = new AskGate(clock, {
    perHostPerHour: domainConfig.askPerHostPerHour,
    baseBackoffSeconds: domainConfig.askBaseBackoffSeconds,
  });
  const controlBackups: ControlBackupDeps = {
    store,
    vault,
    clock,
    ids,
    logger: logger.child({ component: 'control-backups' }),
    queue,
    ...backupPorts,
    ...(ports.controlDatabase ? { database: ports.controlDatabase } : {}),
    // No org owns these events: the install's logs (emit) and metrics carry them, where
    // the operator's alerting (Prometheus, CloudWatch) picks them up.
    onEvent: (event) => ports.metrics.count('selfdevop_control_backup_events_total', { event }),
    config: { ...config.controlBackups },
  };
  const api: ApiDeps = {
    controlBackups,
    ...(ports.swarmMembers ? { swarmMembers: ports.swarmMembers } : {}),
    store,
    auth: ports.auth,
    vault,
    ids,
    clock,
    logger,
    queue,
    release,
    domains: { deps: domains, gate },
    metrics: ports.metrics,
    webhookTargets: ports.http,
    ...(ports.source ? { source: ports.source } : {}),
    events: release.events,
    ...(ports.mailer ? { mailer: ports.mailer } : {}),
    ...(ports.keyHasher ? { keyHasher: ports.keyHasher } : {}),
    ...(ports.metricsQuery ? { metricsQuery: ports.metricsQuery } : {}),
    ...(config.alertReceiverToken ? { alertReceiverToken: config.alertReceiverToken } : {}),
    ...(config.apiKeyCacheMs
      ? {
          apiKeyCache: new TtlCache<ApiKey>({
            ttlMs: config.apiKeyCacheMs,
            maxEntries: 10_000,
            clock,
          }),
        }
      : {}),
    ...(config.readiness ? { readiness: config.readiness } : {}),
    ...backupPorts,
    // In the Store, so that every API process counts the same attempts.
    loginLimits: {
      perAccountSource: new AttemptLimiter(
        store.authGuards,
        'login-account-source',
        { limit: config.loginLimits.perAccount, windowMs: 15 * 60_000 },
        clock,
      ),
      perIp: new AttemptLimiter(
        store.authGuards,
        'login-source',
        { limit: config.loginLimits.perIp, windowMs: 60_000 },
        clock,
      ),
    },
    signupLimits: {
      perIp: new AttemptLimiter(
        store.authGuards,
        'signup-source',
        { limit: config.signupLimits?.perIp ?? 20, windowMs: 10 * 60_000 },
        clock,
      ),
    },
    inviteLimits: {
      perOrg: new AttemptLimiter(
        store.authGuards,
        'invite-org',
        { limit: config.inviteLimits?.perOrg ?? 100, windowMs: 60 * 60_000 },
        clock,
      ),
    },
    pushHookLimits: {
      perHook: new AttemptLimiter(
        store.authGuards,
        'push-hook',
        { limit: 60, windowMs: 60_000 },
        clock,
      ),
    },
    revokedSessions: new TtlCache<boolean>({
      ttlMs: config.revokedSessionCacheMs ?? 1_000,
      maxEntries: 10_000,
      clock,
    }),
    config: {
      signupMode: config.signupMode,
      edgeDomain: config.edgeDomain,
      ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}),
      allowPrivateWebhooks: config.allowPrivateWebhooks,
      allowPrivateGitHosts: config.allowPrivateGitHosts ?? false,
      ...(config.allowLoopbackGitHosts ? { allowLoopbackGitHosts: true } : {}),
      ...(config.allowLoopbackWebhooks ? { allowLoopbackWebhooks: true } : {}),
      operatorEmails: (config.nodes?.operatorEmails ?? []).map((e) => e.toLowerCase()),
      tenantPrivateNodes: config.nodes?.tenantPrivateNodes ?? false,
    },
    api: {
      maxBodyBytes: config.maxBodyBytes,
      ...(config.maxResponseBytes ? { maxResponseBytes: config.maxResponseBytes } : {}),
      version: config.version,
    },
    ...(ports.hostedSignIn ? { hostedSignIn: ports.hostedSignIn } : {}),
    ...(ports.scheduler
      ? {
          jobs: {
            scheduler: ports.scheduler,
            maxTimeoutSeconds: config.jobMaxTimeoutSeconds ?? defaultMaxJobTimeoutSeconds,
          },
        }
      : {}),
  };
  const nodeChecks = new NodeChecker({
    release,
    metrics: ports.metrics,
    ...(config.nodeChecks ? { policy: config.nodeChecks } : {}),
  });
  return { api, release, domains, webhooks, notifications, controlBackups, nodeChecks };
}
