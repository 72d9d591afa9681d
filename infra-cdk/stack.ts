/**
 * The cloud-managed stack: RDS PostgreSQL in a VPC, the control API on API Gateway (HTTP
 * API) + Lambda, the deploy worker on SQS FIFO queues, S3 for artifacts and backups,
 * Cognito for users, KMS for secrets, EventBridge for schedules, SES for mail, and
 * CloudWatch alarms on the things that need a human. Function code comes in as asset
 * folders bundled beforehand (infra-cdk/bundle.ts), so synth needs no Docker.
 */
import { CfnOutput, Duration, Lazy, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { HttpApi, PayloadFormatVersion } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { CfnScheduleGroup } from 'aws-cdk-lib/aws-scheduler';
import * as ses from 'aws-cdk-lib/aws-ses';
import * as sns from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Trigger } from 'aws-cdk-lib/triggers';
import type { Construct } from 'constructs';
import { cloudWatchAlarms } from '../core/alerts/cloudwatch-alarms.ts';
import { scheduledJobsQueue, workerQueueNames } from '../core/queues.ts';
import { dashboardCallbackPath, dashboardSignedOutPath } from '../core/system.ts';

export type LambdaName =
  'api' | 'worker' | 'schedule' | 'migrate' | 'cognito-tokens' | 'node-checks';

export interface SelfdevopStackProps extends StackProps {
  /** The bundled asset folder of each function (index.mjs inside). */
  code: Record<LambdaName, string>;
  /** The SES domain identity mail is sent from (`noreply@<mailDomain>`). */
  mailDomain: string;
  /** Default app hosts live under it. */
  edgeDomain: string;
  /** The Caddy admin API of the edge, reachable from the VPC. */
  caddyAdminUrl: string;
  /** Alarms are mailed here when set. */
  alarmEmail?: string;
  /** Custom domains: the edge's public IPv4 addresses (apex A records), resolvers to verify with, and where the worker reads certificates (`host:port`). */
  edgeIpv4?: string[];
  dnsServers?: string[];
  edgeTlsAddress?: string;
  /** Prefix of queue, rule and schedule names; `selfdevop-` unless set. */
  namePrefix?: string;
  multiAz?: boolean;
  /**
   * The hosted sign-in page's domain prefix (`<prefix>.auth.<region>.amazoncognito.com`),
   * unique within the region; the `selfdevop:authDomainPrefix` context value unless set.
   */
  authDomainPrefix?: string;
  /**
   * The namespace the worker's usage collector writes (its `METRICS_NAMESPACE`), which the
   * alert rules' alarms read; `selfdevop/apps` (the config's default) unless set.
   */
  metricsNamespace?: string;
  /** Where the dashboard is served (an https origin); the HTTP API's own URL unless set. */
  dashboardUrl?: string;
  /**
   * A Lambda layer carrying `git` (and `ssh`) at /opt/bin for the worker, which fetches the
   * source of builds; without it a release built from git fails, saying git is missing.
   */
  gitLayerArn?: string;
}

/**
 * How long a build may run in the cloud: the worker holds the engine's build stream for the
 * whole build, so it must end well inside the worker's own time limit.
 */
export const cloudBuildTimeoutSeconds = 100;

/** Cognito's rules for a domain prefix: lowercase, digits and hyphens, none of its reserved words. */
export function checkAuthDomainPrefix(prefix: string | undefined): string {
  if (!prefix)
    throw new Error(
      'authDomainPrefix is required: pass it as a prop or with -c selfdevop:authDomainPrefix=<prefix>',
    );
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(prefix) || /aws|amazon|cognito/.test(prefix))
    throw new Error(
      `authDomainPrefix ${JSON.stringify(prefix)} must be lowercase letters, digits and hyphens, without "aws", "amazon" or "cognito"`,
    );
  return prefix;
}

/**
 * The logical queues the functions use, from the workers' table (core/queues.ts): each
 * becomes a FIFO queue, its FIFO DLQ and a delay queue, with a mapping to the worker.
 */
export const cloudQueues = [...workerQueueNames, scheduledJobsQueue] as const;

/** The worker's time limit; queue visibility is six times it, as AWS advises for SQS sources. */
export const workerTimeoutSeconds = 120;
export const maxReceiveCount = 10;

/**
 * The node-checks function's time limit. Fired once a minute, with a Swarm node it runs
 * rounds until `cloudNodeCheckSession.marginMs` (15 s) before this limit, so each session
 * lasts about the minute and the next one takes over (adapters/modes/cloud.ts weighs the cost).
 */
export const nodeChecksTimeoutSeconds = 75;

export class SelfdevopStack extends Stack {
  readonly api: HttpApi;
  readonly functions: Record<LambdaName, lambda.Function>;
  readonly deadLetterQueues: sqs.Queue[] = [];

  constructor(scope: Construct, id: string, props: SelfdevopStackProps) {
    super(scope, id, props);
    const prefix = props.namePrefix ?? 'selfdevop-';
    const metricsNamespace = props.metricsNamespace ?? 'selfdevop/apps';

    // ------------------------------------------------------------ keys, network, database
    const key = new kms.Key(this, 'Key', {
      description: 'selfdevop: envelope keys of org secrets, S3 objects and the database',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      ],
    });
    const functionsSg = new ec2.SecurityGroup(this, 'FunctionsSg', {
      vpc,
      description: 'selfdevop functions',
    });
    const db = new rds.DatabaseInstance(this, 'Database', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_17_9 }),
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.SMALL),
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      credentials: rds.Credentials.fromGeneratedSecret('selfdevop'),
      databaseName: 'selfdevop',
      storageEncrypted: true,
      storageEncryptionKey: key,
      allocatedStorage: 20,
      maxAllocatedStorage: 200,
      multiAz: props.multiAz ?? false,
      // Point-in-time recovery over the same 14 days the daily backups below keep.
      backupRetention: Duration.days(14),
      deletionProtection: true,
      publiclyAccessible: false,
      removalPolicy: RemovalPolicy.SNAPSHOT,
    });
    db.connections.allowDefaultPortFrom(functionsSg, 'functions to PostgreSQL');
    // The control plane's own backups (issue 15): the self-hosted edition's pg_dump path
    // cannot run here (no PostgreSQL client tools in the worker Lambda, and the master user
    // cannot read past forced row-level security), so AWS Backup snapshots the instance on
    // the same 14 daily / 8 weekly / 6 monthly retention, in a vault encrypted by the
    // stack's key. Restores are RDS's: a snapshot becomes a new instance.
    const backupVault = new backup.BackupVault(this, 'DatabaseBackupVault', {
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const backupPlan = new backup.BackupPlan(this, 'DatabaseBackupPlan', { backupVault });
    backupPlan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'daily',
        scheduleExpression: events.Schedule.cron({ minute: '0', hour: '2' }),
        deleteAfter: Duration.days(14),
      }),
    );
    backupPlan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'weekly',
        scheduleExpression: events.Schedule.cron({ minute: '0', hour: '3', weekDay: 'SUN' }),
        deleteAfter: Duration.days(8 * 7),
      }),
    );
    backupPlan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'monthly',
        scheduleExpression: events.Schedule.cron({ minute: '0', hour: '4', day: '1' }),
        deleteAfter: Duration.days(6 * 31),
      }),
    );
    backupPlan.addSelection('Database', {
      resources: [backup.BackupResource.fromRdsDatabaseInstance(db)],
    });
    // The functions connect as selfdevop_api (migrations/0008: no superuser, owns nothing,
    // cannot read users or bypass row-level security), one secret per role. The master
    // secret, the tables' owner, goes to the migrate function alone, which sets this
    // login's password from its secret after migrating. attach() adds host, port and dbname.
    const apiDbSecret = new rds.DatabaseSecret(this, 'DatabaseApiSecret', {
      username: 'selfdevop_api',
    }).attach(db);

    // ------------------------------------------------------------ objects, users, mail
    const bucket = new s3.Bucket(this, 'Objects', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      bucketKeyEnabled: true,
      enforceSSL: true,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'backups',
          prefix: 'backups/',
          transitions: [
            {
              storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
              transitionAfter: Duration.days(30),
            },
          ],
          expiration: Duration.days(365),
          noncurrentVersionExpiration: Duration.days(30),
        },
        {
          id: 'old-versions',
          noncurrentVersionExpiration: Duration.days(90),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
    });
    const userPool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      passwordPolicy: { minLength: 12, requireSymbols: false },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { sms: false, otp: true },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The dashboard signs users in on the hosted UI: authorization code grant only, and no
    // secret (a public client, so the dashboard binds each code to its browser with PKCE).
    const authDomainPrefix = checkAuthDomainPrefix(
      props.authDomainPrefix ?? this.node.tryGetContext('selfdevop:authDomainPrefix'),
    );
    userPool.addDomain('HostedUi', { cognitoDomain: { domainPrefix: authDomainPrefix } });
    const cognitoDomain = `${authDomainPrefix}.auth.${this.region}.amazoncognito.com`;
    if (
      props.dashboardUrl !== undefined &&
      !/^https:\/\/[a-z0-9.-]+(:\d+)?$/.test(props.dashboardUrl)
    )
      throw new Error(
        `dashboardUrl must be an https origin such as https://console.example.com, got ${JSON.stringify(props.dashboardUrl)}`,
      );
    // The HTTP API is made further down; its URL is read when the template is written.
    const dashboardUrl = props.dashboardUrl ?? Lazy.string({ produce: () => this.api.apiEndpoint });
    // A backup's object moves between the browser and the bucket through presigned URLs (the
    // API cannot carry it): the dashboard's page PUTs an import's object, and GETs a backup
    // to decrypt it in the page (`…/download-url`); nothing else, from nowhere else.
    bucket.addCorsRule({
      allowedOrigins: [dashboardUrl],
      allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET],
      allowedHeaders: ['content-type'],
      maxAge: 600,
    });
    const client = userPool.addClient('Dashboard', {
      authFlows: { userSrp: true },
      generateSecret: false,
      oAuth: {
        flows: { authorizationCodeGrant: true, implicitCodeGrant: false, clientCredentials: false },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
        callbackUrls: [`${dashboardUrl}${dashboardCallbackPath}`],
        logoutUrls: [`${dashboardUrl}${dashboardSignedOutPath}`],
      },
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      enableTokenRevocation: true,
      preventUserExistenceErrors: true,
      accessTokenValidity: Duration.hours(1),
      idTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
    });
    const mailConfig = new ses.ConfigurationSet(this, 'MailConfig', {
      configurationSetName: `${prefix}mail`,
    });
    const mailIdentity = new ses.EmailIdentity(this, 'MailIdentity', {
      identity: ses.Identity.domain(props.mailDomain),
      configurationSet: mailConfig,
    });

    // ------------------------------------------------------------ queues and schedules
    const queues = cloudQueues.map((name) => {
      const visibilityTimeout = Duration.seconds(6 * workerTimeoutSeconds);
      const dlq = new sqs.Queue(this, `${name}-dlq`, {
        queueName: `${prefix}${name}__dlq.fifo`,
        fifo: true,
        retentionPeriod: Duration.days(14),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      const main = new sqs.Queue(this, `${name}-queue`, {
        queueName: `${prefix}${name}.fifo`,
        fifo: true,
        // Schedules send without a dedup id; selfdevop's own sends carry one, which wins.
        contentBasedDeduplication: true,
        visibilityTimeout,
        retentionPeriod: Duration.days(4),
        deadLetterQueue: { queue: dlq, maxReceiveCount },
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      const delayDlq = new sqs.Queue(this, `${name}-delay-dlq`, {
        queueName: `${prefix}${name}__delay__dlq`,
        retentionPeriod: Duration.days(14),
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      const delay = new sqs.Queue(this, `${name}-delay`, {
        queueName: `${prefix}${name}__delay`,
        visibilityTimeout,
        deadLetterQueue: { queue: delayDlq, maxReceiveCount },
        encryption: sqs.QueueEncryption.SQS_MANAGED,
        enforceSSL: true,
      });
      this.deadLetterQueues.push(dlq, delayDlq);
      return { name, main, dlq, delay };
    });
    const scheduleGroupName = 'selfdevop';
    new CfnScheduleGroup(this, 'ScheduleGroup', { name: scheduleGroupName });
    const schedulerRole = new iam.Role(this, 'SchedulerRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
      description: 'EventBridge Scheduler sends schedule payloads to the selfdevop queues',
    });
    for (const q of queues) q.main.grantSendMessages(schedulerRole);

    // ------------------------------------------------------------ functions
    const environment: Record<string, string> = {
      // Node 20+ runtimes no longer trust the RDS CA by default; the runtime ships its bundle here.
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
      DATABASE_SECRET_ARN: apiDbSecret.secretArn,
      COGNITO_USER_POOL_ID: userPool.userPoolId,
      COGNITO_CLIENT_ID: client.userPoolClientId,
      COGNITO_DOMAIN: cognitoDomain,
      DASHBOARD_URL: dashboardUrl,
      SECRETS_KMS_KEY_ID: key.keyArn,
      OBJECTS_BUCKET: bucket.bucketName,
      OBJECTS_KMS_KEY_ID: key.keyArn,
      QUEUE_NAME_PREFIX: prefix,
      SCHEDULER_ROLE_ARN: schedulerRole.roleArn,
      SCHEDULE_GROUP: scheduleGroupName,
      SCHEDULE_RULE_PREFIX: prefix,
      MAIL_FROM: `noreply@${props.mailDomain}`,
      SES_CONFIGURATION_SET: mailConfig.configurationSetName,
      EDGE_DOMAIN: props.edgeDomain,
      CADDY_ADMIN_URL: props.caddyAdminUrl,
      // Where the usage collector writes and the charts and the alert rules' alarms read.
      METRICS_NAMESPACE: metricsNamespace,
      MIGRATIONS_DIR: '/var/task/migrations',
      ...(props.edgeIpv4?.length ? { EDGE_IPV4: props.edgeIpv4.join(',') } : {}),
      ...(props.dnsServers?.length ? { DNS_SERVERS: props.dnsServers.join(',') } : {}),
      ...(props.edgeTlsAddress ? { EDGE_TLS_ADDRESS: props.edgeTlsAddress } : {}),
    };
    const make = (name: LambdaName, timeout: Duration, memorySize: number, env = environment) =>
      new lambda.Function(this, `${name}-fn`, {
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        handler: 'index.handler',
        code: lambda.Code.fromAsset(props.code[name]),
        timeout,
        memorySize,
        environment: env,
        vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [functionsSg],
        paramsAndSecrets: lambda.ParamsAndSecretsLayerVersion.fromVersion(
          lambda.ParamsAndSecretsVersions.V1_0_103,
        ),
        loggingFormat: lambda.LoggingFormat.JSON,
        logGroup: new logs.LogGroup(this, `${name}-logs`, {
          retention: logs.RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
      });
    this.functions = {
      api: make('api', Duration.seconds(29), 1024),
      worker: make('worker', Duration.seconds(workerTimeoutSeconds), 1024, {
        ...environment,
        BUILD_TIMEOUT_SECONDS: String(cloudBuildTimeoutSeconds),
        ...(props.gitLayerArn ? { GIT_BIN: '/opt/bin/git' } : {}),
      }),
      schedule: make('schedule', Duration.seconds(30), 512),
      migrate: make('migrate', Duration.minutes(10), 512, {
        NODE_EXTRA_CA_CERTS: environment.NODE_EXTRA_CA_CERTS ?? '',
        DATABASE_SECRET_ARN: db.secret?.secretArn ?? '',
        API_DATABASE_SECRET_ARN: apiDbSecret.secretArn,
        MIGRATIONS_DIR: environment.MIGRATIONS_DIR ?? '',
      }),
      // Reaches the tenants' engines as the worker does (the same NAT address).
      'node-checks': make('node-checks', Duration.seconds(nodeChecksTimeoutSeconds), 512),
      // Only the database: the user pool's ids in its environment would make the stack circular.
      'cognito-tokens': make('cognito-tokens', Duration.seconds(5), 512, {
        NODE_EXTRA_CA_CERTS: environment.NODE_EXTRA_CA_CERTS ?? '',
        DATABASE_SECRET_ARN: environment.DATABASE_SECRET_ARN ?? '',
      }),
    };
    const { api, worker, schedule, migrate } = this.functions;
    const nodeChecks = this.functions['node-checks'];
    // The API reaches no engine: it invokes the worker to read and change Swarm members.
    api.addEnvironment('WORKER_FUNCTION_NAME', worker.functionName);
    worker.grantInvoke(api);
    if (props.gitLayerArn)
      worker.addLayers(
        lambda.LayerVersion.fromLayerVersionArn(this, 'git-layer', props.gitLayerArn),
      );
    const tokens = this.functions['cognito-tokens'];
    // Before each sign-in's tokens are issued, the selfdevop user for the Cognito subject is made.
    userPool.addTrigger(cognito.UserPoolOperation.PRE_TOKEN_GENERATION, tokens);
    const all = [api, worker, schedule, migrate, tokens, nodeChecks];
    for (const fn of all) apiDbSecret.grantRead(fn);
    db.secret?.grantRead(migrate);
    for (const fn of [api, worker, schedule, nodeChecks]) {
      key.grantEncryptDecrypt(fn);
      for (const q of queues) {
        q.main.grantSendMessages(fn);
        q.delay.grantSendMessages(fn);
      }
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['sqs:ListQueues'], resources: ['*'] }),
      );
    }
    // The charts read CloudWatch (adapters/metrics-query/cloudwatch.ts); GetMetricData has
    // no resource-level permissions, so '*' is the only scope AWS accepts.
    api.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['cloudwatch:GetMetricData'], resources: ['*'] }),
    );
    for (const fn of [api, worker]) {
      bucket.grantReadWrite(fn);
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['ses:SendEmail'],
          resources: [
            mailIdentity.emailIdentityArn,
            this.formatArn({
              service: 'ses',
              resource: 'configuration-set',
              resourceName: mailConfig.configurationSetName,
            }),
          ],
        }),
      );
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: [
            'scheduler:CreateSchedule',
            'scheduler:UpdateSchedule',
            'scheduler:DeleteSchedule',
            'scheduler:GetSchedule',
          ],
          resources: [
            this.formatArn({
              service: 'scheduler',
              resource: 'schedule',
              resourceName: `${scheduleGroupName}/*`,
            }),
          ],
        }),
      );
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['scheduler:ListSchedules'], resources: ['*'] }),
      );
      schedulerRole.grantPassRole(fn.grantPrincipal);
    }
    for (const q of queues) {
      // The worker dead-letters spent messages itself, so their group moves on at once.
      q.dlq.grantSendMessages(worker);
      worker.addEventSource(
        new SqsEventSource(q.main, { batchSize: 10, reportBatchItemFailures: true }),
      );
      worker.addEventSource(
        new SqsEventSource(q.delay, { batchSize: 10, reportBatchItemFailures: true }),
      );
    }
    new events.Rule(this, 'MaintenanceRule', {
      ruleName: `${prefix}maintenance`,
      description: 'hourly maintenance jobs, run by the worker through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.hours(1)),
      targets: [new LambdaFunction(schedule, { retryAttempts: 2, maxEventAge: Duration.hours(1) })],
    });
    new events.Rule(this, 'DomainSweepRule', {
      ruleName: `${prefix}domain-sweep`,
      description:
        're-arms custom-domain checks whose message chain stopped, every minute, through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A sweep that could not start within its minute is superseded by the next one.
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new events.Rule(this, 'EdgeRebuildRule', {
      ruleName: `${prefix}edge-rebuild`,
      description:
        'puts back edge routes Caddy lost (autosave gone, a new edge) from the database, every minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new events.Rule(this, 'UsageCollectRule', {
      ruleName: `${prefix}usage-collect`,
      description:
        'measures every replica and node (CPU, memory, restarts, disk) into CloudWatch, every minute, through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A collection that could not start within its minute is superseded by the next one.
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new events.Rule(this, 'BuildPruneRule', {
      ruleName: `${prefix}build-prune`,
      description:
        "removes built images no release needs and trims each engine's build cache, hourly, through the scheduled-jobs queue",
      schedule: events.Schedule.cron({ minute: '23' }),
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(30) }),
      ],
    });
    new events.Rule(this, 'GitPollRule', {
      ruleName: `${prefix}git-poll`,
      description:
        'polls the followed branch of services with a poll interval (git hosts without push webhooks) and deploys a moved head, every minute, through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // A poll that could not start within its minute is superseded by the next one.
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new events.Rule(this, 'NodeCheckRule', {
      ruleName: `${prefix}node-check`,
      description:
        "checks every node's engine (a session of rounds 1 s apart per invocation; all minute with a Swarm node, to follow its tasks); a lost node's replicas leave the edge and are replaced",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      // Straight to the node-checks function: its session reads the invocation's remaining time.
      targets: [
        new LambdaFunction(nodeChecks, { retryAttempts: 0, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new events.Rule(this, 'BackupSweepRule', {
      ruleName: `${prefix}backup-sweep`,
      description:
        'fails data-service backups and drills a dead worker left running (and removes their partial objects), every five minutes, through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.minutes(5)),
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(5) }),
      ],
    });
    new events.Rule(this, 'ReleaseSweepRule', {
      ruleName: `${prefix}release-sweep`,
      description:
        're-sends the first step of releases whose first message was lost, every minute, through the scheduled-jobs queue',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [
        new LambdaFunction(schedule, { retryAttempts: 1, maxEventAge: Duration.minutes(1) }),
      ],
    });
    new Trigger(this, 'MigrateOnDeploy', {
      handler: migrate,
      executeAfter: [db],
      executeBefore: [api, worker, schedule],
      executeOnHandlerChange: true,
      timeout: Duration.minutes(10),
    });

    // ------------------------------------------------------------ HTTP API
    this.api = new HttpApi(this, 'HttpApi', {
      description: 'selfdevop control API',
      defaultIntegration: new HttpLambdaIntegration('ApiIntegration', api, {
        payloadFormatVersion: PayloadFormatVersion.VERSION_2_0,
      }),
    });

    // ------------------------------------------------------------ alarms
    const topic = new sns.Topic(this, 'Alarms', { displayName: 'selfdevop alarms' });
    if (props.alarmEmail) topic.addSubscription(new EmailSubscription(props.alarmEmail));
    const alarm = (
      id: string,
      metric: cloudwatch.IMetric,
      threshold: number,
      description: string,
    ) => {
      const a = new cloudwatch.Alarm(this, id, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(new SnsAction(topic));
      return a;
    };
    for (const dlq of this.deadLetterQueues) {
      alarm(
        `${dlq.node.id}-depth`,
        dlq.metricApproximateNumberOfMessagesVisible({
          period: Duration.minutes(1),
          statistic: 'Maximum',
        }),
        1,
        `messages were given up on in ${dlq.node.id}`,
      );
    }
    alarm(
      'api-5xx',
      this.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' }),
      5,
      'the control API answered 5xx',
    );
    for (const [name, fn] of Object.entries(this.functions)) {
      alarm(
        `${name}-errors`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        1,
        `the ${name} function failed`,
      );
    }

    // The alert rules (core/alerts/rules.ts), as Prometheus evaluates them self-hosted: one
    // Metrics Insights alarm per rule, each org's node, domain or data service a contributor.
    const comparisons = {
      GreaterThanOrEqualToThreshold:
        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      GreaterThanThreshold: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      LessThanThreshold: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    } as const;
    for (const plan of cloudWatchAlarms({
      usage: metricsNamespace,
      control: 'selfdevop',
    })) {
      const a = new cloudwatch.Alarm(this, `alert-${plan.rule}`, {
        alarmName: `${prefix}alert-${plan.rule}`,
        metric: new cloudwatch.MathExpression({
          expression: plan.query,
          usingMetrics: {},
          period: Duration.seconds(plan.periodSeconds),
          label: plan.rule,
        }),
        threshold: plan.threshold,
        evaluationPeriods: plan.evaluationPeriods,
        comparisonOperator: comparisons[plan.comparison],
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: plan.description,
      });
      a.addAlarmAction(new SnsAction(topic));
      a.addOkAction(new SnsAction(topic));
    }

    new CfnOutput(this, 'ApiUrl', { value: this.api.apiEndpoint });
    new CfnOutput(this, 'UserPoolId', { value: userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: client.userPoolClientId });
    new CfnOutput(this, 'HostedUiDomain', { value: cognitoDomain });
    new CfnOutput(this, 'DashboardUrl', { value: `${dashboardUrl}/dashboard` });
    new CfnOutput(this, 'ObjectsBucket', { value: bucket.bucketName });
    // Tenants open their Docker port (2376, or SSH) to this address only: the worker reaches
    // their nodes through the VPC's NAT gateway.
    new CfnOutput(this, 'NodeEgressIp', {
      value: vpc.publicSubnets
        .map((s) => s.node.tryFindChild('EIP'))
        .filter((eip): eip is ec2.CfnEIP => eip instanceof ec2.CfnEIP)
        .map((eip) => eip.ref)
        .join(','),
      description: 'the address tenant nodes see the deploy worker connect from',
    });
  }
}
