/**
 * The cloud composition root: every port wired to its AWS adapter (SQS, KMS, S3, SES,
 * Cognito, EventBridge Scheduler) beside the same PostgreSQL store the self-hosted mode
 * uses (RDS here). Plain TypeScript, no decisions: each Lambda builds it once per container.
 */
import os from 'node:os';
import path from 'node:path';
import { CloudWatchMetricsQuery } from '../metrics-query/cloudwatch.ts';
import type { DomainDeps } from '../../core/domains/deps.ts';
import type {
  ContainerRuntime,
  HttpSender,
  Logger,
  MetricsQuery,
  RouteCatalog,
  SourceRepository,
} from '../../core/ports.ts';
import { GitCliSource } from '../source/git-cli.ts';
import { buildLimitsOf } from './build-settings.ts';
import type { ReleaseDeps } from '../../core/releases/deps.ts';
import {
  dashboardCallbackPath,
  dashboardSignedOutPath,
  wireSystem,
  type ApiDeps,
} from '../../core/system.ts';
import type { WebhookDeps } from '../../core/webhooks/deliver.ts';
import type { NotificationDeps } from '../../core/notification-channels/notify.ts';
import { CognitoAuth } from '../auth/cognito.ts';
import { CognitoHostedUi } from '../auth/cognito-hosted-ui.ts';
import { SystemClock } from '../clock/system.ts';
import { fromDatabaseUrl } from '../db/postgres.ts';
import { NodeDnsResolver } from '../dns/node.ts';
import { CaddyEdgeRouter } from '../edge/caddy.ts';
import { RandomIds } from '../ids/random.ts';
import { NodeHttpSender } from '../http/node.ts';
import { fromPino } from '../logger/pino.ts';
import { SesMailer } from '../mail/ses.ts';
import { nodeKeyHasher } from '../hash/node-crypto.ts';
import { EmfMetrics } from '../metrics/cloudwatch-emf.ts';
import { EmfUsageSink } from '../metrics/usage-emf.ts';
import { UsageCollector, usageDepsOf } from '../../core/stats/collect.ts';
import type { NodeChecker, NodeCheckSession } from '../../core/nodes/checks.ts';
import { S3ObjectStore } from '../objects/s3.ts';

/** Why the cloud edition keeps no control-plane backups of its own; the API answers it. */
export const cloudControlBackupsReason =
  "the cloud edition's database is backed up by RDS itself (automated backups with point-in-time recovery, and an AWS Backup plan keeping 14 daily, 8 weekly and 6 monthly snapshots); restore it from the RDS or AWS Backup console";
import { NodeBackupCodec } from '../backup/node-codec.ts';
import { HttpHealthProbe } from '../probe/http.ts';
import { PostgresIdempotencyLedger } from '../queue/idempotency-postgres.ts';
import { SqsQueue, type IdempotencyLedger } from '../queue/sqs.ts';
import { NoEngineRuntime } from '../runtime/none.ts';
import { LambdaSwarmMembers } from '../swarm-members/lambda.ts';
import { EventBridgeScheduler } from '../scheduler/eventbridge.ts';
import { PostgresStore } from '../store/postgres.ts';
import { PostgresRouteCatalog } from '../edge/route-catalog-postgres.ts';
import { KmsKeyVault } from '../vault/kms.ts';
import type { CloudConfig } from './cloud-config.ts';
import { databaseUrlFromSecret, readSecretFromExtension } from './cloud-secrets.ts';
import { fromIdentityRepo } from './cloud-user.ts';

export { cognitoUserId, fromIdentityRepo } from './cloud-user.ts';

export interface CloudSystem {
  api: ApiDeps;
  release: ReleaseDeps;
  queue: SqsQueue;
  scheduler: EventBridgeScheduler;
  objects: S3ObjectStore;
  mailer: SesMailer;
  logger: Logger;
  /** Custom domains: the ports of the domain-checks worker and the sweep. */
  domains: DomainDeps;
  /** Webhooks: the ports of the webhook-events and webhook-deliveries workers. */
  webhooks: WebhookDeps;
  /** Notification channels (Slack, e-mail through SES): the ports of the notification-flushes worker. */
  notifications: NotificationDeps;
  /** The hourly maintenance job: forgets idempotency keys past their retention. */
  maintenance(): Promise<void>;
  /**
   * The worker function's usage job (every minute): measures replicas and nodes into EMF
   * lines. Only where an engine is reachable (the worker); kept across warm invocations,
   * which is where the CPU rates and the restart history come from.
   */
  collectUsage?(): Promise<void>;
  /** Every route the edge must serve: the `edge-rebuild` job puts back what Caddy lost. */
  routeCatalog: RouteCatalog;
  /** The node checks, run by the node-checks function's sessions (`cloudNodeCheckSession`). */
  nodeChecks: NodeChecker;
  close(): Promise<void>;
}

/**
 * One minute's session of node checks (the node-checks function, fired by EventBridge once a
 * minute, its timeout `nodeChecksTimeoutSeconds` in infra-cdk/stack.ts), rounds 1 s apart:
 *
 * - without a Swarm node, 5 rounds: enough misses in a row to lose an engine, which is then
 *   acted on about a minute and two seconds after it died. Checking all minute would keep a
 *   function busy all the time for a few seconds less.
 * - with one, rounds until 15 s before the function's timeout (~60 rounds): a Swarm's
 *   dead task is seen only by the rounds' task following (core/nodes/swarm-tasks.ts), so the
 *   cloud follows tasks every second as self-hosted does, and drops a dead task from the
 *   edge within ~2 s instead of within a minute. The cost: a function busy all the time,
 *   512 MB on ARM for ~60 s of every minute, about 43,000 GB-s a day (~$0.58 a day, ~$17 a
 *   month at $0.0000133/GB-s), paid only while some org has a Swarm node. The margin
 *   covers a last round's pings (5 s for SSH) and the loss or return it set off.
 */
export const cloudNodeCheckSession: NodeCheckSession = {
  rounds: 5,
  maxRounds: 120,
  marginMs: 15_000,
};

/** An idempotency ledger, with retention when it has one (prune is an optional capability). */
export type CloudLedger = IdempotencyLedger & { prune?(days: number): Promise<number> };

export interface CloudOverrides {
  /** Where JSON log lines (and the EMF metric lines) go; stdout (CloudWatch Logs) unless set. */
  logDestination?: { write(line: string): void };
  /** Keeps idempotency keys beyond SQS's 5-minute window; PostgreSQL (queue_idempotency) unless set. */
  ledger?: CloudLedger;
  /** Reads a Secrets Manager secret; the Parameters and Secrets Lambda extension unless set. */
  readSecret?: (arn: string) => Promise<string>;
  /**
   * Reaches the tenants' Docker engines. Only the worker function passes one (DockerRuntime);
   * the API and schedule functions hand Docker work to it, and ship without dockerode.
   */
  runtime?: ContainerRuntime;
  /** Reads git repositories; the git CLI unless set. */
  source?: SourceRepository;
  /** Tests only: services may build from git servers on loopback (where tests run theirs). Never configuration. */
  gitFromLoopback?: boolean;
  /** Delivers webhooks; one that refuses private addresses unless set. */
  webhookSender?: HttpSender;
  /**
   * Tests only: webhooks may be made for, and delivered to, loopback (their receivers listen
   * there). Never configuration: an install's webhooks never reach loopback.
   */
  webhooksToLoopback?: boolean;
  /** Where the user pool answers; AWS (the pool's JWKS, https://COGNITO_DOMAIN) unless set (tests). */
  cognito?: { jwksUrl?: string; hostedUiUrl?: string };
  /** Reads the charts' series; CloudWatch (GetMetricData in the region) unless set (tests). */
  metricsQuery?: MetricsQuery;
}

/**
 * Builds the cloud system from validated configuration.
 * @example const system = await fromCloud(fromCloudEnv())
 */
export async function fromCloud(
  config: CloudConfig,
  overrides: CloudOverrides = {},
): Promise<CloudSystem> {
  const logger = fromPino({ level: config.LOG_LEVEL, destination: overrides.logDestination });
  const clock = new SystemClock();
  const databaseUrl =
    config.DATABASE_URL ??
    databaseUrlFromSecret(
      await (overrides.readSecret ?? ((arn) => readSecretFromExtension(arn, config)))(
        config.DATABASE_SECRET_ARN ?? '',
      ),
    );
  const db = fromDatabaseUrl(databaseUrl, {
    max: config.DB_POOL_MAX,
    onIdleError: (e) =>
      logger.warn({ err: e.message }, 'database connection lost; the pool reconnects'),
  });
  const store = new PostgresStore(db);
  const aws = { region: config.AWS_REGION };
  // Shared by every container: a key claimed by one Lambda is a duplicate for all, for days.
  const ledger: CloudLedger = overrides.ledger ?? new PostgresIdempotencyLedger(db);
  const queue = new SqsQueue({
    client: aws,
    namePrefix: config.QUEUE_NAME_PREFIX,
    ledger,
    logger: logger.child({ component: 'queue' }),
  });
  const scheduler = new EventBridgeScheduler({
    client: aws,
    roleArn: config.SCHEDULER_ROLE_ARN,
    groupName: config.SCHEDULE_GROUP,
    queueArn: (q) => queue.arnOf(q),
  });
  const vault = new KmsKeyVault({ keyId: config.SECRETS_KMS_KEY_ID, client: aws, clock });
  const objects = new S3ObjectStore({
    bucket: config.OBJECTS_BUCKET,
    kmsKeyId: config.OBJECTS_KMS_KEY_ID,
    client: aws,
    // API Gateway takes 10 MB in and Lambda answers 6 MB out: a backup's object moves between
    // the client and S3 through presigned URLs (signed with the function's role, so one works
    // until the earlier of its own expiry and the role session's).
    directTransfers: true,
  });
  const mailer = new SesMailer({
    from: config.MAIL_FROM,
    client: aws,
    configurationSetName: config.SES_CONFIGURATION_SET,
  });
  const auth = new CognitoAuth({
    region: config.COGNITO_REGION ?? config.AWS_REGION,
    userPoolId: config.COGNITO_USER_POOL_ID,
    clientId: config.COGNITO_CLIENT_ID,
    resolveUserId: fromIdentityRepo(store.identity),
    jwksUrl: overrides.cognito?.jwksUrl,
    clock,
  });
  const hostedSignIn = new CognitoHostedUi({
    baseUrl: overrides.cognito?.hostedUiUrl ?? `https://${config.COGNITO_DOMAIN}`,
    clientId: config.COGNITO_CLIENT_ID,
    callbackUrl: `${config.DASHBOARD_URL}${dashboardCallbackPath}`,
    signedOutUrl: `${config.DASHBOARD_URL}${dashboardSignedOutPath}`,
  });
  // The API reaches no manager: it asks the worker function, which does. The worker itself
  // (a runtime given) reads and changes members in-process.
  const swarmMembers =
    !overrides.runtime && config.WORKER_FUNCTION_NAME
      ? new LambdaSwarmMembers({ functionName: config.WORKER_FUNCTION_NAME, client: aws })
      : null;
  const system = wireSystem(
    {
      ...(swarmMembers ? { swarmMembers } : {}),
      store,
      queue,
      vault,
      auth,
      // Cron jobs' schedules: EventBridge Scheduler sends each firing to the job-runs queue.
      scheduler,
      runtime: overrides.runtime ?? new NoEngineRuntime(),
      edge: new CaddyEdgeRouter({
        adminUrl: config.CADDY_ADMIN_URL,
        server: 'selfdevop',
        tlsAddress: config.EDGE_TLS_ADDRESS ?? `${new URL(config.CADDY_ADMIN_URL).hostname}:443`,
      }),
      probe: new HttpHealthProbe(),
      dns: new NodeDnsResolver({ servers: config.DNS_SERVERS?.split(',') }),
      // Hosts are checked when a webhook is made (allowPrivateWebhooks stays off) and again at
      // each delivery, against the address actually resolved: a name may be re-pointed later.
      http:
        overrides.webhookSender ??
        new NodeHttpSender({
          refusePrivateAddresses: true,
          acceptLoopback: overrides.webhooksToLoopback ?? false,
        }),
      clock,
      ids: new RandomIds(),
      logger,
      // EMF lines beside the log lines: CloudWatch sums every container's, where a /metrics
      // endpoint would show one container's; so the API answers /metrics with a 404 here.
      metrics: new EmfMetrics({ destination: overrides.logDestination }),
      hostedSignIn,
      // Deploy keys are made anywhere; refs are read where `git` is (the worker's image):
      // the API function, without it, leaves resolving to the build step.
      // A warm worker function keeps its /tmp: fetched commits stay there for the next build,
      // capped well inside the function's 512 MB of /tmp.
      source:
        overrides.source ??
        new GitCliSource({
          gitBin: config.GIT_BIN,
          mirrorDir: path.join(os.tmpdir(), 'selfdevop-git-mirrors'),
          mirrorMaxBytes: 128 * 1024 * 1024,
          // Build checkouts beside them, under their own cap: 256 MiB of the 512 in all.
          checkoutDir: path.join(os.tmpdir(), 'selfdevop-git-checkouts'),
          checkoutMaxBytes: 128 * 1024 * 1024,
        }),
      mailer,
      keyHasher: nodeKeyHasher,
      metricsQuery:
        overrides.metricsQuery ??
        new CloudWatchMetricsQuery({
          region: config.AWS_REGION,
          namespace: config.METRICS_NAMESPACE,
        }),
      objects,
      backupCodec: new NodeBackupCodec(),
    },
    {
      edgeDomain: config.EDGE_DOMAIN,
      edgeIpv4: config.EDGE_IPV4?.split(',') ?? [],
      domains: { changesPerOrgPerHour: config.DOMAIN_CHANGES_PER_HOUR },
      signupMode: config.SIGNUP_MODE,
      publicUrl: config.DASHBOARD_URL,
      ...(config.DATA_IMAGES ? { dataImages: config.DATA_IMAGES } : {}),
      maxBodyBytes: config.MAX_BODY_BYTES,
      // Lambda answers at most 6 MB, and API Gateway base64-encodes a binary body (4/3):
      // 4 MiB of dump leaves room for the encoding and the headers.
      maxResponseBytes: 4 * 1024 * 1024,
      version: config.VERSION,
      loginLimits: { perAccount: 10, perIp: 100 },
      // A SaaS must not let tenants make it call into its own network (SSRF).
      allowPrivateWebhooks: false,
      // Nor build from its own network.
      allowPrivateGitHosts: false,
      allowLoopbackGitHosts: overrides.gitFromLoopback ?? false,
      release: {
        build: buildLimitsOf(config),
        // A backup runs inside one worker invocation: past its limit the function is gone,
        // and the backup sweep fails what it left running.
        backupTimeoutMs: config.JOB_MAX_TIMEOUT_SECONDS * 1000,
      },
      allowLoopbackWebhooks: overrides.webhooksToLoopback ?? false,
      // Tenants' nodes at public addresses only (the VPC is the platform's); operators by
      // configuration alone, since no cloud account is an install's first.
      nodes: { operatorEmails: config.OPERATOR_EMAILS ?? [], tenantPrivateNodes: false },
      readiness: { objects: () => objects.ping() },
      // A run is waited for inside one worker invocation, which has its own time limit.
      jobMaxTimeoutSeconds: config.JOB_MAX_TIMEOUT_SECONDS,
      // The worker Lambda has no pg_dump, and RDS's master user cannot read past forced
      // row-level security: RDS keeps this database's backups (infra-cdk/stack.ts).
      controlBackups: { unavailableReason: cloudControlBackupsReason },
    },
  );
  const { api, release, domains, webhooks, notifications } = system;
  const usage = overrides.runtime
    ? new UsageCollector(
        usageDepsOf(
          release,
          new EmfUsageSink({
            namespace: config.METRICS_NAMESPACE,
            destination: overrides.logDestination,
          }),
          // A probe per minute at most: the job runs once a minute.
          { nodeProbeImage: config.NODE_PROBE_IMAGE, nodeProbeEverySeconds: 60 },
          undefined,
          // The edge's requests, 5xx and p95 per service: nothing else in the cloud sees
          // Caddy's histograms, and the 5xx and p95 alarms read these figures.
          { edge: release.edge, edgeDomain: config.EDGE_DOMAIN },
        ),
      )
    : null;
  return {
    api,
    release,
    queue,
    scheduler,
    objects,
    mailer,
    logger,
    domains,
    webhooks,
    notifications,
    routeCatalog: new PostgresRouteCatalog(db),
    ...(usage
      ? {
          async collectUsage() {
            await usage.collect();
          },
        }
      : {}),
    nodeChecks: system.nodeChecks,
    async maintenance() {
      if (!ledger.prune) return;
      const forgotten = await ledger.prune(config.IDEMPOTENCY_RETENTION_DAYS);
      logger.info(
        { forgotten, retentionDays: config.IDEMPOTENCY_RETENTION_DAYS },
        'idempotency keys past retention forgotten',
      );
    },
    async close() {
      await store.close();
      await db.close();
      // AWS clients are made on first use; one never used has nothing to close.
      await Promise.all([
        queue.destroy(),
        scheduler.destroy(),
        swarmMembers?.destroy(),
        vault.destroy(),
        objects.destroy(),
        mailer.destroy(),
      ]);
    },
  };
}
