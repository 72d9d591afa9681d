import { isPlainAddress } from '../mail/mail-rules.ts';
import * as z from 'zod';
import { buildSettings } from './build-settings.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const port = z.coerce
  .number({ message: 'must be a port number' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65535, 'must be between 1 and 65535');

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

const domainName = z
  .string()
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
    'must be a lowercase domain name',
  );

/** Comma-separated e-mail addresses, lowercased (sign-in compares them so). */
export const emailList = z.string().transform((v, ctx) => {
  const list = v
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter(Boolean);
  if (list.length === 0 || list.some((e) => !z.email().safeParse(e).success)) {
    ctx.addIssue({ code: 'custom', message: 'must be e-mail addresses separated by commas' });
    return z.NEVER;
  }
  return list;
});

/**
 * `engine:version=image,…`: data-service images the operator built beyond this build's own
 * (a newer minor of an engine line, for `upgrade`). Checked when the process starts.
 */
export const dataImageList = z.string().transform((v, ctx) => {
  const list = v
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((e) => /^(redis|mariadb|postgres):(\d+(?:\.\d+){0,2})=([\w./:@-]+)$/.exec(e));
  if (list.length === 0 || list.some((m) => !m)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'must be engine:version=image entries separated by commas (postgres:15.8=selfdevop/postgres:15.8)',
    });
    return z.NEVER;
  }
  return list.map((m) => ({
    engine: m![1] as 'redis' | 'mariadb' | 'postgres',
    version: m![2]!,
    image: m![3]!,
  }));
});

const hostPort = z.string().regex(/^.+:\d{1,5}$/, 'must be host:port');

/**
 * Every setting selfdevop reads, from the environment, validated once at start-up. A bad
 * value stops the process with a message that names the variable.
 */
const schema = z.object({
  MODE: z.enum(['selfhost', 'cloud']).default('selfhost'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: port.default(3000),
  /**
   * Where the API and the workers connect: the `selfdevop_api` login (a member of
   * selfdevop_app that owns nothing). An owner's URL still works (every connection takes
   * the selfdevop_app role) but holds more than the control plane needs.
   * Absent: an embedded PostgreSQL under DATA_DIR (the `npm start` default).
   */
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** pg-boss's connection: the `selfdevop_queue` login, which owns pg-boss's schema. DATABASE_URL when absent. */
  QUEUE_DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** The tables' owner, which migrations run as (the migrate job, `npm start`). DATABASE_URL when absent. */
  MIGRATE_DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** Given to the migrate job: it makes `selfdevop_api` a login with this password. */
  API_DATABASE_PASSWORD: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Given to the migrate job: it makes `selfdevop_queue` a login with this password. */
  QUEUE_DATABASE_PASSWORD: z.string().min(16, 'must be at least 16 characters').optional(),
  /**
   * Where the worker backs up the control plane's own database (pg_dump): a superuser's or
   * BYPASSRLS role's URL, since row-level security is forced on tenant tables. MIGRATE_DATABASE_URL
   * when absent (`npm start` passes its embedded superuser's); without either, control-plane
   * backups are off and the API says why.
   */
  CONTROL_BACKUP_DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  /** Where psql, pg_dump and pg_restore are (e.g. /usr/lib/postgresql/15/bin); PATH when absent. */
  PG_BIN_DIR: z.string().min(1).optional(),
  DATA_DIR: z.string().min(1).default('./.selfdevop'),
  /**
   * Where data services' backups are stored on the local filesystem; DATA_DIR/objects when
   * absent. The API (downloads) and the worker (backups) must share it.
   */
  OBJECTS_DIR: z.string().min(1).optional(),
  /**
   * Any S3-compatible store instead of the local filesystem: the bucket, and its endpoint
   * (MinIO, Garage, R2…; absent for AWS S3). Credentials from the usual AWS_* variables.
   */
  OBJECTS_S3_BUCKET: z.string().min(3).max(63).optional(),
  OBJECTS_S3_ENDPOINT: url(['http:', 'https:']).optional(),
  OBJECTS_S3_REGION: z.string().min(1).default('us-east-1'),
  /** Keys for the S3-compatible store; the AWS SDK's usual chain (AWS_*) when absent. */
  OBJECTS_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  OBJECTS_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  /**
   * A backup's object moves between clients (CLI, browser) and the bucket through presigned
   * URLs instead of through this API: for a bucket clients reach, behind a proxy whose body
   * limit a backup exceeds. The cloud edition always does this (its API cannot carry one).
   */
  OBJECTS_S3_DIRECT: bool.default(false),
  EMBEDDED_PG_PORT: port.default(54329),
  /** Absent: generated once into DATA_DIR/secrets/jwt-secret (0600) and reused after. */
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  ENCRYPTION_KEY_FILE: z.string().min(1).optional(),
  SIGNUP_MODE: z.enum(['open', 'first-user', 'closed']).default('first-user'),
  /**
   * Webhooks may target private ranges (services on the operator's own network). Off by
   * default, refused with open signup: a stranger's webhook would reach that network.
   * Loopback, link-local and the platform's own endpoints are refused whatever this says.
   */
  WEBHOOKS_ALLOW_PRIVATE: bool.default(false),
  /**
   * Services may build from git servers on private and loopback addresses (the operator's
   * own Gitea or GitLab). On by default here; the cloud never allows it.
   */
  GIT_ALLOW_PRIVATE_HOSTS: bool.default(true),
  ...buildSettings,
  /**
   * Operators besides the install's first account: emails, comma-separated. An operator
   * registers local sockets and loopback engines, which are the control plane's own host.
   * Refused with open signup: anyone could sign up as a listed address not yet taken.
   */
  OPERATOR_EMAILS: emailList.optional(),
  DATA_IMAGES: dataImageList.optional(),
  EDGE_DOMAIN: domainName.default('localhost'),
  /** A Caddy you run yourself. Absent: `npm start` runs its own (CADDY_BIN, else a CADDY_IMAGE container). */
  CADDY_ADMIN_URL: url(['http:']).optional(),
  /** Where `npm start` looks for a caddy binary named without a slash (CADDY_BIN, or `caddy`). */
  PATH: z.string().default(''),
  /** The caddy binary `npm start` runs; `caddy` on PATH when absent. */
  CADDY_BIN: z.string().min(1).optional(),
  /** The Caddy image `npm start` runs on the local Docker Engine when there is no caddy binary. */
  CADDY_IMAGE: z.string().min(1).default('selfdevop/caddy:2.11'),
  /** The admin API of the Caddy `npm start` runs; loopback only, since it accepts any config. */
  CADDY_ADMIN_LISTEN: z
    .string()
    .regex(
      /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):\d{1,5}$/,
      'must be a loopback host:port, e.g. 127.0.0.1:2019',
    )
    .default('127.0.0.1:2019'),
  /** The Caddy server selfdevop manages routes in, and where it listens when created. */
  CADDY_SERVER: z
    .string()
    .regex(/^[a-z0-9_-]+$/, 'must be a simple name')
    .default('selfdevop'),
  EDGE_HTTP_LISTEN: z.string().default(':80'),
  /** HTTPS (custom domains' on-demand certificates) of the Caddy `npm start` runs. */
  EDGE_HTTPS_LISTEN: z.string().default(':443'),
  /**
   * `dynamic`: Caddy reads upstreams from selfdevop's DNS server, so deploys never reload
   * Caddy (no dropped keep-alive connections or WebSockets); `static` writes them into routes.
   */
  EDGE_UPSTREAMS: z.enum(['dynamic', 'static']).default('dynamic'),
  /** Where the upstream DNS server listens (in the process that runs workers). */
  EDGE_DNS_LISTEN: hostPort.default('127.0.0.1:5354'),
  /** Where Caddy reaches it, when that differs (another container); EDGE_DNS_LISTEN by default. */
  EDGE_DNS_ADDRESS: hostPort.optional(),
  /** Custom domains: where the control plane reaches Caddy's HTTPS port to read certificates. */
  EDGE_TLS_ADDRESS: hostPort.default('127.0.0.1:443'),
  /**
   * How often the worker puts back edge routes Caddy lost (a lost autosave, a config reset),
   * rebuilt from the database; it also does so at start.
   */
  EDGE_REBUILD_SECONDS: z.coerce.number().int().min(5).max(86_400).default(60),
  /**
   * How long each wait of a self-hosted start may take (the embedded PostgreSQL's recovery,
   * the migrations lock, Caddy, the edge DNS, pg-boss) before start-up fails naming it.
   */
  START_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(3_600).default(120),
  /** Custom domains an org may add or remove per hour (each change reloads the shared edge). */
  DOMAIN_CHANGES_PER_HOUR: z.coerce
    .number()
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100_000)
    .default(30),
  /**
   * Node checks (in the process that runs workers): seconds between two pings of every
   * node's engine, and the misses in a row that make a node lost (its replicas then leave
   * the edge and are replaced). 1 s × 2: a dead node is acted on within about 2 s.
   */
  NODE_CHECK_SECONDS: z.coerce.number().min(0.5).max(300).default(1),
  NODE_CHECK_MISSES: z.coerce.number().int().min(1).max(20).default(2),
  /** Custom domains: the edge's public IPv4 addresses, for apex A records (comma-separated). */
  EDGE_IPV4: z
    .string()
    .regex(
      /^(\d{1,3}(\.\d{1,3}){3})(,\d{1,3}(\.\d{1,3}){3})*$/,
      'must be comma-separated IPv4 addresses',
    )
    .optional(),
  /** Custom domains: DNS resolvers to verify records with (comma-separated ip[:port]); the system's when absent. */
  DNS_SERVERS: z
    .string()
    .regex(/^[0-9a-fA-F:.[\]]+(,[0-9a-fA-F:.[\]]+)*$/, 'must be comma-separated ip[:port]')
    .optional(),
  /** The mail server invites and e-mail notifications are sent through; without it inviting answers 503 and e-mail channels are refused. */
  SMTP_URL: url(['smtp:', 'smtps:']).optional(),
  /** One plain address (a display name could smuggle in recipients). */
  MAIL_FROM: z
    .string()
    .refine(isPlainAddress, 'must be one plain e-mail address, like selfdevop@example.com')
    .default('noreply@localhost'),
  /**
   * Where people open the dashboard, for links in emails (invites, notifications); https://SELFDEVOP_DOMAIN
   * when absent and that is set, else http://HOST:PORT.
   */
  PUBLIC_URL: url(['http:', 'https:']).optional(),
  /**
   * The Prometheus the dashboard's charts read (its HTTP API). A local one by default, so
   * `npm start` uses it when installed; the pages say what to install when it does not answer.
   */
  PROMETHEUS_URL: url(['http:', 'https:']).default('http://127.0.0.1:9090'),
  /**
   * The bearer token Prometheus (scraping /metrics/alert-targets) and Alertmanager (posting
   * to /api/alerts/alertmanager) present; without it neither endpoint answers.
   */
  ALERT_RECEIVER_TOKEN: z.string().min(32, 'must be at least 32 characters').optional(),
  /**
   * How often the process that runs the workers measures every replica and node (CPU,
   * memory, restarts; the node's disk) for the charts and the crash-loop, node and disk
   * alerts; 0 turns the collector off.
   */
  STATS_INTERVAL_SECONDS: z.coerce
    .number()
    .int()
    .refine((v) => v === 0 || (v >= 5 && v <= 3_600), 'must be 0 (off) or 5 to 3600')
    .default(15),
  /** Where the worker serves the usage it measured to Prometheus (`GET /metrics`). */
  STATS_LISTEN: hostPort.default('127.0.0.1:9464'),
  /**
   * The image of the one-off that reads a node's CPU, memory and disk (it needs sh, head,
   * grep and df); it must be on every node, it is never pulled.
   */
  NODE_PROBE_IMAGE: z.string().min(1).max(255).default('selfdevop/debian:bookworm'),
  /**
   * The image an app-logs search's scanner runs in on each node (any image with `node` on its
   * PATH; never pulled). Empty: searches read through the Engine API (slower, same answer).
   */
  LOG_SCAN_IMAGE: z.string().max(255).default('selfdevop/node:24'),
  /** A node is probed at most this often (each probe is a one-off container on it). */
  NODE_PROBE_SECONDS: z.coerce.number().int().min(15).max(3_600).default(60),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(10 * 1024 * 1024)
    .default(256 * 1024),
  /** Trust X-Forwarded-For (only behind the bundled Caddy or another proxy you run). */
  TRUST_PROXY: bool.default(false),
  /** Run the deploy and domain workers inside the API process (the single-process default). */
  RUN_WORKERS: bool.default(true),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** The ssh-agent that reaches nodes added with an ssh:// Docker host and no stored key. */
  SSH_AUTH_SOCK: z.string().min(1).optional(),
  /** The worker: the dashboard and API's host name on the edge (HTTPS); any host when absent. */
  SELFDEVOP_DOMAIN: domainName.optional(),
  /** The worker: where the edge reaches the control API (the compose `api` service). */
  CONTROL_UPSTREAM: hostPort.default('api:3000'),
  /** The worker writes it while the database answers; the healthcheck reads it. */
  WORKER_HEARTBEAT_FILE: z.string().min(1).default('/run/selfdevop/worker.heartbeat'),
  /** The healthcheck: which process this container runs. */
  SELFDEVOP_ROLE: z.enum(['api', 'worker']).default('api'),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {}

/** Where a Caddy's admin API listens when nothing says otherwise (Caddy's own default). */
export const defaultCaddyAdminUrl = 'http://127.0.0.1:2019';

/** Reads and validates the configuration; throws ConfigError naming each bad variable. */
export function fromEnv(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ''),
  );
  const parsed = schema
    .refine((c) => !(c.WEBHOOKS_ALLOW_PRIVATE && c.SIGNUP_MODE === 'open'), {
      path: ['WEBHOOKS_ALLOW_PRIVATE'],
      message:
        'must not be true while SIGNUP_MODE=open: anyone signing up could reach your private network',
    })
    .refine((c) => !(c.OPERATOR_EMAILS?.length && c.SIGNUP_MODE === 'open'), {
      path: ['OPERATOR_EMAILS'],
      message:
        'must not be set while SIGNUP_MODE=open: anyone could sign up as a listed address not yet taken; the first account is the operator',
    })
    .safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

/** The settings a process needs that `npm start` fills in itself (embedded database, generated secrets). */
type Provided = 'DATABASE_URL' | 'JWT_SECRET' | 'ENCRYPTION_KEY_FILE';

/** A configuration with the database and secrets settled: what fromSelfhost builds from. */
export type SelfhostConfig = Config & Required<Pick<Config, Provided>>;

const hints: Record<Provided, string> = {
  DATABASE_URL: 'postgres://user:password@host:5432/db',
  JWT_SECRET: 'the same value the API uses',
  ENCRYPTION_KEY_FILE: 'the key file the API uses',
};

/**
 * For processes that generate nothing (the worker, the migrate job): the named settings
 * must be given; throws ConfigError naming each missing one.
 * @example const config = requireSettings(fromEnv(), 'the worker', ['DATABASE_URL', 'JWT_SECRET', 'ENCRYPTION_KEY_FILE'])
 */
export function requireSettings<K extends Provided>(
  config: Config,
  who: string,
  names: K[],
): Config & Required<Pick<Config, K>> {
  const missing = names.filter((n) => !config[n]);
  if (missing.length > 0) {
    throw new ConfigError(
      `invalid configuration:\n${missing.map((n) => `  ${n}: required by ${who} (${hints[n]})`).join('\n')}`,
    );
  }
  return config as Config & Required<Pick<Config, K>>;
}
