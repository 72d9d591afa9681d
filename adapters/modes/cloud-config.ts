import * as z from 'zod';
import { buildSettings } from './build-settings.ts';
import { dataImageList, emailList } from './config.ts';

const region = z
  .string()
  .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1');
const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  );

// Cognito accepts plain http callback URLs only for localhost; so does this.
const dashboardUrl = z
  .string()
  .refine((v) => {
    try {
      const u = new URL(v);
      const local = u.hostname === 'localhost' || u.hostname === '127.0.0.1';
      return (
        (u.protocol === 'https:' || (u.protocol === 'http:' && local)) &&
        u.pathname === '/' &&
        !u.search &&
        !u.hash &&
        !u.username
      );
    } catch {
      return false;
    }
  }, 'must be an https:// origin such as https://console.example.com (http:// only for localhost), with no path')
  .transform((v) => new URL(v).origin);

const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  .default('info');

/** Where the database is, and how its secret is read: every function needs these. */
const database = {
  /** Either DATABASE_URL, or the RDS secret's ARN (read through the Parameters and Secrets extension). */
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  DATABASE_SECRET_ARN: z
    .string()
    .startsWith('arn:aws', 'must be a Secrets Manager secret ARN')
    .optional(),
  /** Set by Lambda: the Parameters and Secrets extension's port, and the token it checks. */
  PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: z
    .string()
    .regex(/^\d{1,5}$/, 'must be a port number')
    .default('2773'),
  AWS_SESSION_TOKEN: z.string().optional(),
  LOG_LEVEL: logLevel,
};

const databaseGiven = {
  check: (c: { DATABASE_URL?: string; DATABASE_SECRET_ARN?: string }) =>
    c.DATABASE_URL !== undefined || c.DATABASE_SECRET_ARN !== undefined,
  issue: { path: ['DATABASE_URL'], message: 'is required (or DATABASE_SECRET_ARN)' },
};

/**
 * What the functions that only touch the database read (migrate, cognito-tokens): their
 * stack gives them no more, so the full schema would refuse them.
 */
const databaseSchema = z
  .object({
    ...database,
    /** Where the SQL files are in the migrate bundle; the repository's migrations/ unless set. */
    MIGRATIONS_DIR: z.string().min(1).optional(),
    /**
     * The migrate function: the secret of the API's login (`selfdevop_api`), whose password
     * it sets after migrating as the owner (DATABASE_SECRET_ARN, the master secret). The
     * other functions connect with this secret as their DATABASE_SECRET_ARN.
     */
    API_DATABASE_SECRET_ARN: z
      .string()
      .startsWith('arn:aws', 'must be a Secrets Manager secret ARN')
      .optional(),
  })
  .refine(databaseGiven.check, databaseGiven.issue);

export type CloudDatabaseConfig = z.infer<typeof databaseSchema>;

/**
 * Every setting the cloud mode reads (the stack sets them on each function), validated
 * once per container. A bad or missing value stops the function with a message naming it.
 */
const schema = z
  .object({
    AWS_REGION: region,
    ...database,
    DB_POOL_MAX: z.coerce.number().int().min(1).max(20).default(2),
    COGNITO_REGION: region.optional(),
    COGNITO_USER_POOL_ID: z
      .string()
      .regex(/^[\w-]+_[0-9a-zA-Z]+$/, 'must look like eu-west-1_AbC123'),
    COGNITO_CLIENT_ID: z.string().regex(/^[\w+]+$/, 'must be a Cognito app client id'),
    /** The user pool's hosted UI domain (prefix or custom), where the dashboard signs users in. */
    COGNITO_DOMAIN: z
      .string()
      .regex(
        /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/,
        'must be a domain name such as selfdevop.auth.eu-west-1.amazoncognito.com (no https://)',
      ),
    /** Where the dashboard is served; its /dashboard/auth/callback is the app client's callback URL. */
    DASHBOARD_URL: dashboardUrl,
    SECRETS_KMS_KEY_ID: z.string().min(1, 'must name a KMS key (id, ARN or alias/name)'),
    OBJECTS_BUCKET: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
    OBJECTS_KMS_KEY_ID: z.string().min(1).optional(),
    QUEUE_NAME_PREFIX: z
      .string()
      .regex(/^[\w-]*$/, 'may contain only letters, digits, - and _')
      .default('selfdevop-'),
    SCHEDULER_ROLE_ARN: z
      .string()
      .regex(/^arn:aws[\w-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN'),
    SCHEDULE_GROUP: z
      .string()
      .regex(/^[0-9a-zA-Z_.-]{1,64}$/, 'must be a schedule group name')
      .default('selfdevop'),
    MAIL_FROM: z.email('must be one plain e-mail address'),
    SES_CONFIGURATION_SET: z.string().min(1).optional(),
    /** The CloudWatch namespace the charts read apps' edge traffic and usage from. */
    METRICS_NAMESPACE: z.string().min(1).max(255).default('selfdevop/apps'),
    /**
     * The image of the one-off that reads a node's CPU, memory and disk (sh, head, grep,
     * df); it must be on every node, it is never pulled.
     */
    NODE_PROBE_IMAGE: z.string().min(1).max(255).default('selfdevop/debian:bookworm'),
    SIGNUP_MODE: z.enum(['open', 'first-user', 'closed']).default('closed'),
    /**
     * The platform's operators (emails, comma-separated): in the cloud edition nobody else
     * is one. Cognito has verified each address before it signs anyone in.
     */
    OPERATOR_EMAILS: emailList.optional(),
    DATA_IMAGES: dataImageList.optional(),
    EDGE_DOMAIN: z
      .string()
      .regex(
        /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
        'must be a lowercase domain name',
      ),
    CADDY_ADMIN_URL: url(['http:', 'https:']),
    /** Custom domains: where the worker reaches the edge's HTTPS port to read certificates; CADDY_ADMIN_URL's host, port 443, unless set. */
    EDGE_TLS_ADDRESS: z
      .string()
      .regex(/^.+:\d{1,5}$/, 'must be host:port')
      .optional(),
    /** Custom domains an org may add or remove per hour (each change reloads the shared edge). */
    DOMAIN_CHANGES_PER_HOUR: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(100_000)
      .default(30),
    /** Custom domains: the edge's public IPv4 addresses, for apex A records (comma-separated). */
    EDGE_IPV4: z
      .string()
      .regex(
        /^(\d{1,3}(\.\d{1,3}){3})(,\d{1,3}(\.\d{1,3}){3})*$/,
        'must be comma-separated IPv4 addresses',
      )
      .optional(),
    /** Custom domains: DNS resolvers to verify records with (comma-separated ip[:port]); the VPC's resolver when absent. */
    DNS_SERVERS: z
      .string()
      .regex(/^[0-9a-fA-F:.[\]]+(,[0-9a-fA-F:.[\]]+)*$/, 'must be comma-separated ip[:port]')
      .optional(),
    /** Days the queue's idempotency keys are kept in PostgreSQL (SQS itself forgets after 5 minutes); as long as dead-lettered messages by default. */
    IDEMPOTENCY_RETENTION_DAYS: z.coerce
      .number()
      .int('must be a whole number of days')
      .min(1, 'must be at least 1')
      .max(3650)
      .default(14),
    /** The schedule function: EventBridge rules are named `<prefix><job>`. */
    SCHEDULE_RULE_PREFIX: z
      .string()
      .regex(/^[\w.-]*$/, 'may contain only letters, digits, ., - and _')
      .default('selfdevop-'),
    /**
     * The worker function (name or ARN): the API invokes it to read and change Swarm
     * members, since only the worker reaches the managers. Without it the API says it cannot.
     */
    WORKER_FUNCTION_NAME: z
      .string()
      .regex(
        /^(arn:[\w-]+:lambda:[\w-]+:\d{12}:function:)?[\w-]{1,64}(:[\w$-]+)?$/,
        'must be a Lambda function name or ARN',
      )
      .optional(),
    MAX_BODY_BYTES: z.coerce
      .number()
      .int()
      .min(1024)
      .max(6 * 1024 * 1024)
      .default(256 * 1024),
    VERSION: z.string().min(1).default('cloud'),
    ...buildSettings,
    // The worker function holds a build's stream for the whole build: it must end inside
    // the function's own limit (120 s), fetch included.
    BUILD_TIMEOUT_SECONDS: z.coerce
      .number()
      .int()
      .min(10)
      .max(100, 'must be at most 100: a build runs inside the worker function (120 s)')
      .default(100),
    // A cron job's run is waited for inside one worker invocation (120 s), like a build.
    JOB_MAX_TIMEOUT_SECONDS: z.coerce
      .number()
      .int()
      .min(10)
      .max(100, 'must be at most 100: a job runs inside the worker function (120 s)')
      .default(100),
  })
  .refine(databaseGiven.check, databaseGiven.issue);

export type CloudConfig = z.infer<typeof schema>;

export class CloudConfigError extends Error {}

/** Reads and validates the cloud configuration; throws CloudConfigError naming each bad variable. */
export function fromCloudEnv(env: Record<string, string | undefined> = process.env): CloudConfig {
  return parse(schema, env);
}

/** The database settings alone, for the migrate and cognito-tokens functions; throws CloudConfigError naming each bad variable. */
export function fromCloudDatabaseEnv(
  env: Record<string, string | undefined> = process.env,
): CloudDatabaseConfig {
  return parse(databaseSchema, env);
}

function parse<T>(schema: z.ZodType<T>, env: Record<string, string | undefined>): T {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new CloudConfigError(`invalid cloud configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
