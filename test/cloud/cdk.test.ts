/**
 * The cloud stack, synthesized offline and checked property by property with
 * aws-cdk-lib/assertions. Function code is a stub asset here (bundling is the bench's
 * and `node infra-cdk/app.ts`'s job); one test bundles for real.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleEntry, bundleLambdas, lambdaNames } from '../../infra-cdk/bundle.ts';
import { toProxyEventV2 } from './lambda-requester.ts';
import {
  SelfdevopStack,
  cloudQueues,
  maxReceiveCount,
  workerTimeoutSeconds,
  nodeChecksTimeoutSeconds,
  cloudBuildTimeoutSeconds,
  type LambdaName,
} from '../../infra-cdk/stack.ts';
import { scheduledJobs, type WorkerSystem } from '../../core/queues.ts';
import { cloudAlarmGaps, cloudWatchAlarms } from '../../core/alerts/cloudwatch-alarms.ts';
import { alertRules } from '../../core/alerts/rules.ts';
import { sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { cloudNodeCheckSession } from '../../adapters/modes/cloud.ts';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';

/** The settings the stack gives each function, with local stand-ins (nothing is called at start). */
const cloudEnv = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
  COGNITO_USER_POOL_ID: 'eu-west-1_Test1',
  COGNITO_CLIENT_ID: 'testclient',
  COGNITO_DOMAIN: 'selfdevop-test.auth.eu-west-1.amazoncognito.com',
  DASHBOARD_URL: 'https://console.example.com',
  SECRETS_KMS_KEY_ID: 'alias/test',
  OBJECTS_BUCKET: 'selfdevop-test',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::111122223333:role/test',
  MAIL_FROM: 'noreply@example.com',
  EDGE_DOMAIN: 'apps.example.com',
  CADDY_ADMIN_URL: 'http://127.0.0.1:1',
  LOG_LEVEL: 'silent',
};

let dir: string;
let template: Template;
let stack: SelfdevopStack;

type Resource = { Type: string; Properties: Record<string, unknown> };
const resources = (type: string) => Object.values(template.findResources(type)) as Resource[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-cdk-'));
  const code = {} as Record<LambdaName, string>;
  for (const name of lambdaNames) {
    code[name] = path.join(dir, name);
    await import('node:fs/promises').then((fs) => fs.mkdir(code[name], { recursive: true }));
    await writeFile(
      path.join(code[name], 'index.mjs'),
      'export const handler = async () => ({});\n',
    );
  }
  const app = new App({ outdir: path.join(dir, 'cdk.out') });
  stack = new SelfdevopStack(app, 'Selfdevop', {
    code,
    mailDomain: 'mail.example.com',
    edgeDomain: 'apps.example.com',
    caddyAdminUrl: 'http://10.0.0.10:2019',
    alarmEmail: 'ops@example.com',
    edgeIpv4: ['203.0.113.10', '203.0.113.11'],
    dnsServers: ['10.0.0.2'],
    edgeTlsAddress: '10.0.0.10:443',
    authDomainPrefix: 'selfdevop-test',
    env: { account: '111122223333', region: 'eu-west-1' },
  });
  template = Template.fromStack(stack);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('cloud stack', () => {
  it('has a VPC with public, private and isolated subnets in two zones and one NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.resourceCountIs('AWS::EC2::Subnet', 6);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
  });

  it("outputs the NAT gateway's address, which tenants open their Docker port to", () => {
    const [eipId] = Object.keys(template.findResources('AWS::EC2::EIP'));
    expect(eipId).toBeDefined();
    const nat = Object.values(template.findResources('AWS::EC2::NatGateway'))[0] as {
      Properties: { AllocationId: unknown };
    };
    expect(nat.Properties.AllocationId).toEqual({ 'Fn::GetAtt': [eipId, 'AllocationId'] });
    template.hasOutput('NodeEgressIp', { Value: { Ref: eipId } });
  });

  it('runs PostgreSQL on RDS, encrypted with the KMS key, private, backed up and protected', () => {
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'postgres',
      EngineVersion: Match.stringLikeRegexp('^17'),
      StorageEncrypted: true,
      KmsKeyId: Match.anyValue(),
      PubliclyAccessible: false,
      DeletionProtection: true,
      BackupRetentionPeriod: 14,
      DBName: 'selfdevop',
    });
    template.hasResource('AWS::RDS::DBInstance', { DeletionPolicy: 'Snapshot' });
    // The master user's (the tables' owner, for the migrator) and selfdevop_api's.
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
  });

  it("backs the control plane's database up with AWS Backup: 14 daily, 8 weekly, 6 monthly, in an encrypted vault", () => {
    template.hasResourceProperties('AWS::Backup::BackupVault', {
      EncryptionKeyArn: Match.anyValue(),
    });
    const [plan] = resources('AWS::Backup::BackupPlan') as unknown as {
      Properties: {
        BackupPlan: {
          BackupPlanRule: {
            RuleName: string;
            ScheduleExpression: string;
            Lifecycle: { DeleteAfterDays: number };
          }[];
        };
      };
    }[];
    expect(
      plan!.Properties.BackupPlan.BackupPlanRule.map((r) => [
        r.RuleName,
        r.ScheduleExpression,
        r.Lifecycle.DeleteAfterDays,
      ]),
    ).toEqual([
      ['daily', 'cron(0 2 * * ? *)', 14],
      ['weekly', 'cron(0 3 ? * SUN *)', 56],
      ['monthly', 'cron(0 4 1 * ? *)', 186],
    ]);
    // The selection names the one RDS instance.
    const [selection] = resources('AWS::Backup::BackupSelection') as unknown as {
      Properties: { BackupSelection: { Resources: unknown[] } };
    }[];
    expect(JSON.stringify(selection!.Properties.BackupSelection.Resources)).toContain(
      Object.keys(template.findResources('AWS::RDS::DBInstance'))[0]!,
    );
  });

  it('lets only the functions reach the database port', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: Match.anyValue(),
      SourceSecurityGroupId: Match.anyValue(),
      Description: 'functions to PostgreSQL',
    });
  });

  it('has six nodejs24.x functions in the private subnets; the API, worker, schedule and node-checks ones with the cloud configuration', () => {
    // The trigger adds a provider function of its own; ours are the index.handler ones.
    const ours = resources('AWS::Lambda::Function').filter(
      (f) => f.Properties.Handler === 'index.handler',
    );
    expect(ours).toHaveLength(6);
    // The extension layer brings its own settings (PARAMETERS_SECRETS_EXTENSION_*, SECRETS_MANAGER_*, SSM_*).
    const variables = (f: Resource) =>
      Object.keys((f.Properties.Environment as { Variables: object }).Variables)
        .filter(
          (v) => !/^(PARAMETERS_SECRETS_EXTENSION_|SECRETS_MANAGER_|SSM_PARAMETER_STORE_)/.test(v),
        )
        .sort();
    // The tokens trigger and the migrator get only the database: less to leak, and no cycle with the user pool.
    const tokens = ours.find((f) => f.Properties.Timeout === 5)!;
    const migrate = ours.find((f) => f.Properties.Timeout === 600)!;
    expect(variables(tokens)).toEqual(['DATABASE_SECRET_ARN', 'NODE_EXTRA_CA_CERTS']);
    expect(variables(migrate)).toEqual([
      'API_DATABASE_SECRET_ARN',
      'DATABASE_SECRET_ARN',
      'MIGRATIONS_DIR',
      'NODE_EXTRA_CA_CERTS',
    ]);
    // One secret per database role: the master (the tables' owner) for the migrator only;
    // every other function connects as selfdevop_api, whose secret the migrator also reads
    // to set that login's password.
    const secretOf = (f: Resource) =>
      JSON.stringify(
        (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables
          .DATABASE_SECRET_ARN,
      );
    const apiSecret = JSON.stringify(
      (migrate.Properties.Environment as { Variables: Record<string, unknown> }).Variables
        .API_DATABASE_SECRET_ARN,
    );
    for (const f of ours) {
      if (f === migrate) expect(secretOf(f)).not.toBe(apiSecret);
      else expect(secretOf(f), 'connects with the API login’s secret').toBe(apiSecret);
    }
    // The ARN is the attachment's (it adds the instance's host, port and dbname to the secret).
    const attachments = template.findResources('AWS::SecretsManager::SecretTargetAttachment');
    const attachmentId = Object.keys(attachments).find((id) => apiSecret.includes(`"${id}"`));
    expect(attachmentId, apiSecret).toBeDefined();
    const attached = attachments[attachmentId!] as {
      Properties: { SecretId: { Ref: string }; TargetType: string };
    };
    expect(attached.Properties.TargetType).toBe('AWS::RDS::DBInstance');
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    const apiSecretId = attached.Properties.SecretId.Ref;
    expect(
      JSON.stringify(
        (secrets[apiSecretId!] as { Properties: { GenerateSecretString: unknown } }).Properties
          .GenerateSecretString,
      ),
    ).toContain('selfdevop_api');
    for (const f of ours) {
      expect(f.Properties).toMatchObject({ Runtime: 'nodejs24.x', VpcConfig: expect.anything() });
      if (f === tokens || f === migrate) continue;
      expect(f.Properties).toMatchObject({
        Runtime: 'nodejs24.x',
        Architectures: ['arm64'],
        VpcConfig: { SubnetIds: expect.any(Array), SecurityGroupIds: expect.any(Array) },
        LoggingConfig: { LogFormat: 'JSON' },
        Layers: [expect.stringContaining('AWS-Parameters-and-Secrets-Lambda-Extension')],
      });
      const env = (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      for (const name of [
        'DATABASE_SECRET_ARN',
        'COGNITO_USER_POOL_ID',
        'COGNITO_CLIENT_ID',
        'SECRETS_KMS_KEY_ID',
        'OBJECTS_BUCKET',
        'QUEUE_NAME_PREFIX',
        'SCHEDULER_ROLE_ARN',
        'SCHEDULE_GROUP',
        'MAIL_FROM',
        'EDGE_DOMAIN',
        'CADDY_ADMIN_URL',
      ]) {
        expect(env[name], name).toBeDefined();
      }
      expect(env.AWS_REGION).toBeUndefined(); // reserved: Lambda sets it
    }
    expect(ours.map((f) => f.Properties.Timeout).sort((a, b) => Number(a) - Number(b))).toEqual([
      5,
      29,
      30,
      nodeChecksTimeoutSeconds,
      workerTimeoutSeconds,
      600,
    ]);
  });

  it('serves the API through an HTTP API with payload format 2.0', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: '$default' });
  });

  it('has a FIFO queue with a FIFO dead-letter queue per logical queue', () => {
    for (const name of cloudQueues) {
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: `selfdevop-${name}__dlq.fifo`,
        FifoQueue: true,
        MessageRetentionPeriod: 14 * 86400,
      });
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: `selfdevop-${name}.fifo`,
        FifoQueue: true,
        ContentBasedDeduplication: true,
        RedrivePolicy: { deadLetterTargetArn: Match.anyValue(), maxReceiveCount },
      });
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: `selfdevop-${name}__delay`,
        FifoQueue: Match.absent(),
      });
    }
    expect(maxReceiveCount).toBeGreaterThanOrEqual(5);
    for (const q of resources('AWS::SQS::Queue'))
      expect(q.Properties.SqsManagedSseEnabled, String(q.Properties.QueueName)).toBe(true);
  });

  it('gives every worker queue a visibility timeout of at least six times the worker timeout', () => {
    const worker = resources('AWS::Lambda::Function').find(
      (f) => f.Properties.Timeout === workerTimeoutSeconds,
    );
    const workQueues = resources('AWS::SQS::Queue').filter(
      (q) => !String(q.Properties.QueueName).includes('dlq'),
    );
    expect(workQueues).toHaveLength(cloudQueues.length * 2);
    for (const q of workQueues)
      expect(Number(q.Properties.VisibilityTimeout)).toBeGreaterThanOrEqual(
        6 * Number(worker?.Properties.Timeout),
      );
  });

  it('maps every work queue to the worker with ReportBatchItemFailures', () => {
    const mappings = resources('AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(cloudQueues.length * 2);
    for (const m of mappings)
      expect(m.Properties).toMatchObject({
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        BatchSize: 10,
      });
  });

  it('keeps objects in a private, KMS-encrypted, versioned bucket with a backups lifecycle', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: Match.anyValue(),
            },
            BucketKeyEnabled: true,
          },
        ],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Id: 'backups',
            Prefix: 'backups/',
            Status: 'Enabled',
            ExpirationInDays: 365,
            Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 30 }],
          }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
  });

  it('has a Cognito user pool (no self sign-up, users provisioned before each token) and an SRP app client without a secret', () => {
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      LambdaConfig: { PreTokenGeneration: Match.anyValue() },
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      UsernameAttributes: ['email'],
      Policies: { PasswordPolicy: Match.objectLike({ MinimumLength: 12 }) },
    });
    template.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: false,
      ExplicitAuthFlows: Match.arrayWith(['ALLOW_USER_SRP_AUTH']),
      PreventUserExistenceErrors: 'ENABLED',
      AccessTokenValidity: 60,
    });
  });

  it("serves the hosted sign-in UI on a domain prefix, for an authorization-code client with the dashboard's URLs", () => {
    template.resourceCountIs('AWS::Cognito::UserPoolDomain', 1);
    template.hasResourceProperties('AWS::Cognito::UserPoolDomain', {
      Domain: 'selfdevop-test',
      UserPoolId: Match.anyValue(),
    });
    const [client] = resources('AWS::Cognito::UserPoolClient');
    const p = client!.Properties;
    expect(p.GenerateSecret).toBe(false); // a public client: PKCE, not a secret, binds the code
    expect(p.AllowedOAuthFlowsUserPoolClient).toBe(true);
    expect(p.AllowedOAuthFlows).toEqual(['code']); // no implicit grant, no client credentials
    expect(p.AllowedOAuthScopes).toEqual(['openid', 'email']);
    expect(p.SupportedIdentityProviders).toEqual(['COGNITO']);
    expect(p.EnableTokenRevocation).toBe(true);
    // Without a dashboardUrl the dashboard is the HTTP API itself.
    const apiId = Object.keys(template.findResources('AWS::ApiGatewayV2::Api'))[0]!;
    const urls = JSON.stringify([p.CallbackURLs, p.LogoutURLs]);
    expect(urls).toContain(`{"Fn::GetAtt":["${apiId}","ApiEndpoint"]}`);
    expect(urls).toContain('/dashboard/auth/callback');
    expect(urls).toContain('/dashboard/signed-out');
    // Every function is told where the hosted UI and the dashboard are.
    const api = resources('AWS::Lambda::Function').find((f) =>
      JSON.stringify(f.Properties.Environment ?? {}).includes('COGNITO_DOMAIN'),
    )!;
    const env = (api.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.COGNITO_DOMAIN).toBe('selfdevop-test.auth.eu-west-1.amazoncognito.com');
    expect(JSON.stringify(env.DASHBOARD_URL)).toContain(
      `{"Fn::GetAtt":["${apiId}","ApiEndpoint"]}`,
    );
  });

  it('registers a given dashboard URL exactly, and refuses a bad prefix or URL', () => {
    const app = new App({ outdir: path.join(dir, 'cdk.out.console') });
    const code = Object.fromEntries(
      Object.entries(stack.functions).map(([name]) => [name, path.join(dir, name)]),
    ) as Record<LambdaName, string>;
    const base = {
      code,
      mailDomain: 'mail.example.com',
      edgeDomain: 'apps.example.com',
      caddyAdminUrl: 'http://10.0.0.10:2019',
      env: { account: '111122223333', region: 'eu-west-1' },
    };
    const console = Template.fromStack(
      new SelfdevopStack(app, 'Console', {
        ...base,
        authDomainPrefix: 'acme-deploys',
        dashboardUrl: 'https://console.example.com',
      }),
    );
    // The dashboard PUTs an import's object to its presigned URL, and GETs a backup to
    // decrypt in the page: only from its own origin.
    console.hasResourceProperties('AWS::S3::Bucket', {
      CorsConfiguration: {
        CorsRules: [
          {
            AllowedOrigins: ['https://console.example.com'],
            AllowedMethods: ['PUT', 'GET'],
            AllowedHeaders: ['content-type'],
            MaxAge: 600,
          },
        ],
      },
    });
    console.hasResourceProperties('AWS::Cognito::UserPoolClient', {
      CallbackURLs: ['https://console.example.com/dashboard/auth/callback'],
      LogoutURLs: ['https://console.example.com/dashboard/signed-out'],
    });
    console.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          DASHBOARD_URL: 'https://console.example.com',
          COGNITO_DOMAIN: 'acme-deploys.auth.eu-west-1.amazoncognito.com',
        }),
      },
    });
    expect(() => new SelfdevopStack(app, 'NoPrefix', base)).toThrow('authDomainPrefix is required');
    expect(
      () => new SelfdevopStack(app, 'BadPrefix', { ...base, authDomainPrefix: 'my-cognito' }),
    ).toThrow('without "aws", "amazon" or "cognito"');
    expect(
      () =>
        new SelfdevopStack(app, 'BadUrl', {
          ...base,
          authDomainPrefix: 'acme',
          dashboardUrl: 'http://console.example.com',
        }),
    ).toThrow('dashboardUrl must be an https origin');
  });

  it('rotates its KMS key and lets the functions use it', () => {
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    const policies = JSON.stringify(resources('AWS::IAM::Policy'));
    expect(policies).toContain('kms:GenerateDataKey*');
    expect(policies).toContain('kms:Decrypt');
  });

  it('runs the maintenance rule hourly on the schedule function, and has a schedule group and role', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: 'selfdevop-maintenance',
      ScheduleExpression: 'rate(1 hour)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 3600 },
        }),
      ],
    });
    template.hasResourceProperties('AWS::Scheduler::ScheduleGroup', { Name: 'selfdevop' });
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'scheduler.amazonaws.com' } })],
      },
    });
  });

  it('sends mail from an SES domain identity with a configuration set', () => {
    template.hasResourceProperties('AWS::SES::EmailIdentity', {
      EmailIdentity: 'mail.example.com',
      ConfigurationSetAttributes: { ConfigurationSetName: Match.anyValue() },
    });
    template.hasResourceProperties('AWS::SES::ConfigurationSet', { Name: 'selfdevop-mail' });
  });

  it('alarms on dead-letter depth, API 5xx and every function’s errors (six functions), to an SNS topic', () => {
    const alarms = resources('AWS::CloudWatch::Alarm');
    const dlqAlarms = alarms.filter(
      (a) => a.Properties.MetricName === 'ApproximateNumberOfMessagesVisible',
    );
    expect(dlqAlarms).toHaveLength(cloudQueues.length * 2);
    for (const a of dlqAlarms)
      expect(a.Properties).toMatchObject({
        Namespace: 'AWS/SQS',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmActions: [expect.anything()],
      });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/ApiGateway',
      MetricName: '5xx',
      Statistic: 'Sum',
      Threshold: 5,
    });
    expect(
      alarms.filter(
        (a) => a.Properties.Namespace === 'AWS/Lambda' && a.Properties.MetricName === 'Errors',
      ),
    ).toHaveLength(6);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it('alarms on every alert rule the core defines (the same thresholds Prometheus uses), each to the alarms topic', () => {
    const plans = cloudWatchAlarms({ usage: 'selfdevop/apps', control: 'selfdevop' });
    // Every rule has an alarm or a stated reason, never both, never neither.
    for (const r of alertRules) {
      const hasAlarm = plans.some((p) => p.rule === r.id);
      expect(hasAlarm !== r.id in cloudAlarmGaps, `${r.id}: an alarm or a gap`).toBe(true);
    }
    const ruleAlarms = resources('AWS::CloudWatch::Alarm').filter((a) =>
      String(a.Properties.AlarmName ?? '').startsWith('selfdevop-alert-'),
    );
    expect(ruleAlarms.map((a) => a.Properties.AlarmName).sort()).toEqual(
      plans.map((p) => `selfdevop-alert-${p.rule}`).sort(),
    );
    const topics = Object.keys(template.findResources('AWS::SNS::Topic'));
    expect(topics).toHaveLength(1);
    for (const plan of plans) {
      const rule = alertRules.find((r) => r.id === plan.rule)!;
      const alarm = ruleAlarms.find(
        (a) => a.Properties.AlarmName === `selfdevop-alert-${plan.rule}`,
      )!;
      expect(alarm.Properties, plan.rule).toMatchObject({
        ComparisonOperator: plan.comparison,
        Threshold: plan.threshold,
        EvaluationPeriods: plan.evaluationPeriods,
        TreatMissingData: 'notBreaching',
        AlarmActions: [{ Ref: topics[0] }],
        OKActions: [{ Ref: topics[0] }],
        Metrics: [
          {
            Id: expect.any(String),
            Expression: plan.query,
            Period: plan.periodSeconds,
            ReturnData: true,
          },
        ],
      });
      expect(alarm.Properties.AlarmDescription).toContain(`docs/runbooks/${rule.runbook}.md`);
    }
  });

  it('alarms on a certificate expiring within the rule’s 14 days, per org, service and domain, from the namespace the functions write', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'selfdevop-alert-cert_expiring',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 14,
      Metrics: [
        Match.objectLike({
          Expression:
            'SELECT MIN(CertificateDaysLeft) FROM SCHEMA("selfdevop/apps", Org, Service, Domain) GROUP BY Org, Service, Domain ORDER BY MIN() ASC',
        }),
      ],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'selfdevop-alert-disk_full',
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0.85,
      EvaluationPeriods: 5,
    });
    for (const fn of resources('AWS::Lambda::Function').filter(
      (f) =>
        (f.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables
          ?.EDGE_DOMAIN,
    ))
      expect(
        (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables
          .METRICS_NAMESPACE,
      ).toBe('selfdevop/apps');
  });

  it('alarms on a replica restarting 3 times within 15 minutes, per org, service and environment, from the collector’s windowed count', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'selfdevop-alert-crash_loop',
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Threshold: 3,
      EvaluationPeriods: 1,
      Metrics: [
        Match.objectLike({
          Expression:
            'SELECT MAX(RestartsInWindow) FROM SCHEMA("selfdevop/apps", Org, Service, Environment) GROUP BY Org, Service, Environment ORDER BY MAX() DESC',
          Period: 60,
        }),
      ],
    });
    // Every rule has its alarm now: the collector publishes the edge's figures.
    expect(cloudAlarmGaps).toEqual({});
  });

  it('alarms on the 5xx share and the p95 per org, service and environment, from the collector’s figures over each service’s own threshold', () => {
    for (const [rule, metric, periods] of [
      ['http_5xx_spike', 'Http5xxShareOfThreshold', 1],
      ['latency_p95', 'LatencyP95OfThreshold', 5],
    ] as const) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: `selfdevop-alert-${rule}`,
        // 1 is the service's threshold (its override, else the rule's default): the figure
        // is divided by it before it is written, so one alarm holds every service to its own.
        ComparisonOperator: 'GreaterThanThreshold',
        Threshold: 1,
        EvaluationPeriods: periods,
        TreatMissingData: 'notBreaching',
        Metrics: [
          Match.objectLike({
            Expression: `SELECT MAX(${metric}) FROM SCHEMA("selfdevop/apps", Org, Service, Environment) GROUP BY Org, Service, Environment ORDER BY MAX() DESC`,
            Period: 60,
          }),
        ],
      });
    }
    // The rules' forSeconds: 15 s of a one-minute figure is one period, 300 s five.
    expect(alertRules.find((r) => r.id === 'latency_p95')!.forSeconds).toBe(300);
  });

  it('has a queue for every queue the worker consumes, and no other', () => {
    // The handlers are closures over the engines: building them touches no port.
    const handlers = sqsWorkerHandlers({} as WorkerSystem);
    expect([...cloudQueues].sort()).toEqual(Object.keys(handlers).sort());
  });

  it('has an EventBridge rule for every scheduled job, and no other', () => {
    const jobs = scheduledJobs({
      maintenance: async () => undefined,
      // The cloud's worker function measures usage on a schedule (adapters/modes/cloud.ts).
      collectUsage: async () => undefined,
      routeCatalog: { liveRoutes: async () => [] },
    } as unknown as WorkerSystem).map((j) => `selfdevop-${j.name}`);
    const rules = Object.values(template.findResources('AWS::Events::Rule')).map(
      (r) => (r as { Properties: { Name?: string } }).Properties.Name,
    );
    // Besides the jobs, the node checks' rule, which fires the node-checks function itself.
    expect(rules.filter((n) => n !== undefined).sort()).toEqual(
      [...jobs, 'selfdevop-node-check'].sort(),
    );
  });

  it('fires the node-checks function every minute, with a timeout its session ends inside', () => {
    const fn = stack.functions['node-checks'].node.defaultChild as CfnFunction;
    const id = stack.getLogicalId(fn);
    const rules = template.findResources('AWS::Events::Rule', {
      Properties: { Name: 'selfdevop-node-check' },
    });
    const [rule] = Object.values(rules) as {
      Properties: { ScheduleExpression: string; Targets: { Arn: unknown }[] };
    }[];
    expect(rule!.Properties.ScheduleExpression).toBe('rate(1 minute)');
    expect(JSON.stringify(rule!.Properties.Targets[0]!.Arn)).toContain(id);
    const props = (template.toJSON() as { Resources: Record<string, Resource> }).Resources[id]!
      .Properties;
    expect(props.Timeout).toBe(nodeChecksTimeoutSeconds);
    // A session ends a margin before the timeout, about when the next minute's begins: the
    // rounds go on all minute with a Swarm node, without two sessions running long together.
    const sessionSeconds = nodeChecksTimeoutSeconds - cloudNodeCheckSession.marginMs / 1000;
    expect(sessionSeconds).toBeGreaterThanOrEqual(55);
    expect(sessionSeconds).toBeLessThanOrEqual(65);
    expect(cloudNodeCheckSession.maxRounds).toBeGreaterThanOrEqual(sessionSeconds);
  });

  it('lets the API invoke the worker, named in its WORKER_FUNCTION_NAME, for Swarm member calls', () => {
    const api = stack.functions.api.node.defaultChild as CfnFunction;
    const worker = stack.getLogicalId(stack.functions.worker.node.defaultChild as CfnFunction);
    const apiProps = (template.toJSON() as { Resources: Record<string, Resource> }).Resources[
      stack.getLogicalId(api)
    ]!.Properties as {
      Environment: { Variables: Record<string, unknown> };
      Role: { 'Fn::GetAtt': string[] };
    };
    expect(JSON.stringify(apiProps.Environment.Variables.WORKER_FUNCTION_NAME)).toContain(worker);
    const policies = Object.values(resources('AWS::IAM::Policy')).filter((p) =>
      JSON.stringify(p.Properties.Roles).includes(apiProps.Role['Fn::GetAtt'][0]!),
    );
    const invoke = policies
      .flatMap(
        (p) =>
          (p.Properties.PolicyDocument as { Statement: { Action: unknown; Resource: unknown }[] })
            .Statement,
      )
      .filter((st) => JSON.stringify(st.Action).includes('lambda:InvokeFunction'));
    expect(invoke.length).toBeGreaterThan(0);
    expect(JSON.stringify(invoke.map((st) => st.Resource))).toContain(worker);
  });

  it('gives the domain and webhook queues a FIFO queue, a FIFO dead-letter queue and a worker mapping', () => {
    const worker = stack.getLogicalId(stack.functions.worker.node.defaultChild as CfnFunction);
    const mappings = resources('AWS::Lambda::EventSourceMapping');
    for (const name of ['domain-checks', 'webhook-events', 'webhook-deliveries']) {
      const byName = (queueName: string) => {
        const found = Object.entries(
          template.findResources('AWS::SQS::Queue', { Properties: { QueueName: queueName } }),
        );
        expect(found, queueName).toHaveLength(1);
        return found[0]!;
      };
      const [dlqId] = byName(`selfdevop-${name}__dlq.fifo`);
      template.hasResourceProperties('AWS::SQS::Queue', {
        QueueName: `selfdevop-${name}__dlq.fifo`,
        FifoQueue: true,
        MessageRetentionPeriod: 14 * 86400,
      });
      const [mainId, main] = byName(`selfdevop-${name}.fifo`);
      expect(main).toMatchObject({
        Properties: {
          FifoQueue: true,
          ContentBasedDeduplication: true,
          VisibilityTimeout: 6 * workerTimeoutSeconds,
          RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount },
        },
      });
      const [delayId, delay] = byName(`selfdevop-${name}__delay`);
      expect((delay as Resource).Properties).toMatchObject({
        VisibilityTimeout: 6 * workerTimeoutSeconds,
        RedrivePolicy: { maxReceiveCount },
      });
      for (const queueId of [mainId, delayId]) {
        const mapping = mappings.find(
          (m) =>
            JSON.stringify(m.Properties.EventSourceArn) ===
            JSON.stringify({ 'Fn::GetAtt': [queueId, 'Arn'] }),
        );
        expect(mapping?.Properties, `${name}: ${queueId} mapped`).toMatchObject({
          FunctionName: { Ref: worker },
          FunctionResponseTypes: ['ReportBatchItemFailures'],
          BatchSize: 10,
        });
      }
    }
  });

  it('sweeps custom domains every minute through the schedule function, a sweep never older than its minute', () => {
    const schedule = stack.getLogicalId(stack.functions.schedule.node.defaultChild as CfnFunction);
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: 'selfdevop-domain-sweep',
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [schedule, 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 1, MaximumEventAgeInSeconds: 60 },
        }),
      ],
    });
    // The rule may invoke the schedule function (the job name is the rule's, minus the prefix).
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [schedule, 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DomainSweepRule'), 'Arn'] },
    });
  });

  it('gives the worker the custom-domain settings', () => {
    const worker = resources('AWS::Lambda::Function').find(
      (f) => f.Properties.Timeout === workerTimeoutSeconds,
    )!;
    expect(
      (worker.Properties.Environment as { Variables: Record<string, unknown> }).Variables,
    ).toMatchObject({
      EDGE_IPV4: '203.0.113.10,203.0.113.11',
      DNS_SERVERS: '10.0.0.2',
      EDGE_TLS_ADDRESS: '10.0.0.10:443',
    });
  });

  it('lets a build end inside the worker function, and gives the worker git from a layer when one is named', () => {
    const worker = resources('AWS::Lambda::Function').find(
      (f) => f.Properties.Timeout === workerTimeoutSeconds,
    )!;
    const env = (worker.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.BUILD_TIMEOUT_SECONDS).toBe(String(cloudBuildTimeoutSeconds));
    expect(cloudBuildTimeoutSeconds).toBeLessThan(workerTimeoutSeconds);
    expect(env.GIT_BIN).toBeUndefined();

    const app = new App({ outdir: path.join(dir, 'cdk.out.git') });
    const code = Object.fromEntries(
      Object.entries(stack.functions).map(([name]) => [name, path.join(dir, name)]),
    ) as Record<LambdaName, string>;
    const withGit = new SelfdevopStack(app, 'WithGit', {
      code,
      mailDomain: 'mail.example.com',
      edgeDomain: 'apps.example.com',
      caddyAdminUrl: 'http://10.0.0.10:2019',
      authDomainPrefix: 'selfdevop-git',
      gitLayerArn: 'arn:aws:lambda:eu-west-1:111122223333:layer:git:3',
      env: { account: '111122223333', region: 'eu-west-1' },
    });
    const fn = Template.fromStack(withGit).toJSON().Resources[
      withGit.getLogicalId(withGit.functions.worker.node.defaultChild as CfnFunction)
    ] as Resource;
    expect(fn.Properties.Layers).toContain('arn:aws:lambda:eu-west-1:111122223333:layer:git:3');
    expect(
      (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables.GIT_BIN,
    ).toBe('/opt/bin/git');
  });

  it('runs the migrations on every deploy before the functions are updated', () => {
    template.resourceCountIs('Custom::Trigger', 1);
    const trigger = Object.values(template.findResources('Custom::Trigger'))[0] as {
      DependsOn?: string[];
    };
    expect(trigger.DependsOn?.some((d) => d.startsWith('Database'))).toBe(true);
  });

  it('lets the functions send to the queues, schedule, mail and read the database secret, and nothing broader', () => {
    const policies = JSON.stringify(resources('AWS::IAM::Policy'));
    for (const action of [
      'sqs:SendMessage',
      'scheduler:CreateSchedule',
      'iam:PassRole',
      'ses:SendEmail',
      'secretsmanager:GetSecretValue',
      's3:PutObject',
    ]) {
      expect(policies).toContain(action);
    }
    expect(policies).not.toMatch(/"Action":"\*"/);
  });
});

describe('function bundles', () => {
  it('bundles each function into one ESM file that starts and answers, with the migrations beside the migrate bundle', async () => {
    const out = path.join(dir, 'bundles');
    const dirs = await bundleLambdas(out);
    for (const name of [
      'api',
      'worker',
      'schedule',
      'migrate',
      'cognito-tokens',
      'node-checks',
    ] as const) {
      const code = await readFile(path.join(dirs[name], 'index.mjs'), 'utf8');
      expect(code.length).toBeGreaterThan(1000);
      expect(code).toMatch(/export\s*\{[^}]*handler/);
    }
    expect(
      (await readdir(path.join(dirs.migrate, 'migrations'))).some((f) => f.endsWith('.sql')),
    ).toBe(true);

    // The API bundle starts in a fresh Node process and answers an API Gateway v2 event.
    const runner = path.join(dir, 'runner.mjs');
    await writeFile(
      runner,
      "const m = await import(process.argv[2]); const out = await m.handler(JSON.parse(process.argv[3]), {}); process.stdout.write('\\n' + JSON.stringify(out)); process.exit(0);\n",
    );
    const event = toProxyEventV2('GET', '/health', {}, undefined);
    const result = spawnSync(
      process.execPath,
      [runner, pathToFileURL(path.join(dirs.api, 'index.mjs')).href, JSON.stringify(event)],
      {
        env: { PATH: process.env.PATH ?? '', ...cloudEnv },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(result.status, result.stderr).toBe(0);
    // The handler's answer is the runner's last line; the lines before it are what the
    // function wrote to stdout: its metrics, as CloudWatch EMF.
    const lines = result.stdout.split('\n').filter((l) => l !== '');
    const answer = JSON.parse(lines.at(-1)!) as { statusCode: number; body: string };
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 'ok' });
    const emf = lines
      .slice(0, -1)
      .map(
        (l) => JSON.parse(l) as { _aws?: unknown; route?: string; http_requests_total?: number },
      );
    expect(emf).toContainEqual(
      expect.objectContaining({
        _aws: expect.anything(),
        route: '/health',
        http_requests_total: 1,
      }),
    );

    // The AWS SDKs are chunks loaded on first use: readiness loads S3's and SQS's, whose
    // requests then fail to connect (a closed loopback port), not to load.
    const ready = spawnSync(
      process.execPath,
      [
        runner,
        pathToFileURL(path.join(dirs.api, 'index.mjs')).href,
        JSON.stringify(toProxyEventV2('GET', '/health/ready', {}, undefined)),
      ],
      {
        env: {
          PATH: process.env.PATH ?? '',
          ...cloudEnv,
          AWS_ENDPOINT_URL: 'http://127.0.0.1:1',
          AWS_MAX_ATTEMPTS: '1',
        },
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(ready.status, ready.stderr).toBe(0);
    const readiness = JSON.parse(
      (JSON.parse(ready.stdout.trim().split('\n').at(-1)!) as { body: string }).body,
    ) as { checks: Record<string, string> };
    expect(readiness.checks.queue).toMatch(/^queue is unavailable: SQS: \w+: .*ECONNREFUSED/);
    expect(readiness.checks.objects).toMatch(
      /^object store is unavailable: s3:\/\/selfdevop-test: \w+$/,
    );
    expect(readiness.checks.objects).not.toMatch(/TypeError/);
  }, 120_000);

  it("loads ssh2 in the worker's bundle: an SSH node's engine call fails to connect, not to load", async () => {
    // ssh2 is CommonJS: from a split bundle its exports come only as the default export.
    const entry = path.join(dir, 'ssh-entry.ts');
    const agentModule = path.resolve('adapters/runtime/docker-ssh.ts');
    await writeFile(
      entry,
      `import http from 'node:http';
import { SshDockerAgent } from ${JSON.stringify(agentModule)};
const agent = new SshDockerAgent({ host: '127.0.0.1', port: 1, username: 'deploy', readyTimeout: 5000 });
const req = http.get({ host: 'docker', path: '/_ping', agent }, () => process.exit(1));
req.on('error', (e) => { process.stdout.write(e.message); agent.destroy(); process.exit(0); });
`,
    );
    const out = path.join(dir, 'ssh-bundle');
    await bundleEntry(entry, out);
    const run = spawnSync(process.execPath, [path.join(out, 'index.mjs')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/ECONNREFUSED/);
  }, 60_000);
});
