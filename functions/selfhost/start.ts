/**
 * `npm start`: selfdevop on its embedded defaults. With no configuration at all it runs
 * an embedded PostgreSQL under DATA_DIR, generates its secrets once, migrates, and serves
 * the API (and, unless RUN_WORKERS=false, the workers) in this one process.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, fromEnv, type Config } from '../../adapters/modes/config.ts';
import {
  EmbeddedPostgresFailed,
  startEmbeddedPostgres,
} from '../../adapters/db/embedded-postgres.ts';
import { migrate, MigrationsLocked } from '../../adapters/db/migrator.ts';
import { UpstreamDnsStartFailed } from '../../adapters/edge/upstream-dns.ts';
import { loginUrl, provisionLoginRoles, type LoginRole } from '../../adapters/db/roles.ts';
import { fromSelfhost } from '../../adapters/modes/selfhost.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { startOwnEdge } from './own-edge.ts';
import { ensureSecretFile } from './secrets.ts';
import {
  explained,
  isBindError,
  messageOf,
  osReason,
  StartupError,
  waitingFor,
} from './start-errors.ts';
import { serveApi } from './server.ts';
import { version } from './version.ts';
import type { Logger } from '../../core/ports.ts';

async function resolveSecrets(config: Config) {
  const dataDir = path.resolve(config.DATA_DIR);
  const secretsDir = path.join(dataDir, 'secrets');
  // The data dir must be traversable (not listable) by the embedded PostgreSQL's own user;
  // the secrets inside stay 0700/0600.
  const jwtSecret = await explained(
    `cannot use ${dataDir} as DATA_DIR`,
    'Set DATA_DIR to a directory this user can create and write.',
    async () => {
      await mkdir(dataDir, { recursive: true, mode: 0o711 });
      await chmod(dataDir, 0o711);
      await mkdir(secretsDir, { recursive: true, mode: 0o700 });
      return (
        config.JWT_SECRET ?? (await ensureSecretFile(path.join(secretsDir, 'jwt-secret'))).value
      );
    },
  );
  let encryptionKeyFile = config.ENCRYPTION_KEY_FILE;
  if (encryptionKeyFile) {
    // An explicit key file that is missing is a mistake (an unmounted volume, a typo):
    // generating a new key would make every stored secret unreadable.
    if (!existsSync(encryptionKeyFile)) {
      throw new ConfigError(
        `invalid configuration:\n  ENCRYPTION_KEY_FILE: ${encryptionKeyFile} does not exist; mount or restore it, or unset ENCRYPTION_KEY_FILE to keep the key under DATA_DIR`,
      );
    }
  } else {
    encryptionKeyFile = path.join(secretsDir, 'encryption.key');
    await ensureKeyFile(encryptionKeyFile);
  }
  return { dataDir, secretsDir, jwtSecret, encryptionKeyFile };
}

// What started so far, last first: a start-up that fails half way stops it all again, so
// no PostgreSQL or Caddy outlives the process that started it.
const stops: (() => Promise<void>)[] = [];
let logger: Logger | undefined;
let stopping = false;

/** A start-up wait said on the terminal (the logger comes later, with the system). */
const say = (line: string) => process.stderr.write(`selfdevop: ${line}\n`);

// Installed before anything starts: a Ctrl-C during start-up, or just after the banner,
// still stops what is running instead of leaving PostgreSQL or Caddy behind.
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger?.info({ signal }, 'shutting down');
  for (const stop of stops) {
    await stop().catch((e: unknown) =>
      process.stderr.write(`selfdevop: a shutdown step failed: ${messageOf(e)}\n`),
    );
  }
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

/**
 * Where each part connects. Migrations run as the tables' owner; the API and the workers
 * as `selfdevop_api`, pg-boss as `selfdevop_queue`: logins that are not superusers and own
 * nothing of the control plane's, so row-level security holds without relying on SET ROLE.
 */
interface DatabaseLogins {
  migrateUrl: string;
  databaseUrl: string;
  queueUrl: string;
  /** Login role passwords the migrate step sets (generated for the embedded database). */
  passwords: Partial<Record<LoginRole, string>>;
}

async function startDatabase(
  config: Config,
  secrets: Awaited<ReturnType<typeof resolveSecrets>>,
): Promise<DatabaseLogins> {
  if (config.DATABASE_URL) {
    return {
      migrateUrl: config.MIGRATE_DATABASE_URL ?? config.DATABASE_URL,
      databaseUrl: config.DATABASE_URL,
      queueUrl: config.QUEUE_DATABASE_URL ?? config.DATABASE_URL,
      passwords: { api: config.API_DATABASE_PASSWORD, queue: config.QUEUE_DATABASE_PASSWORD },
    };
  }
  const secret = async (name: string) =>
    (await ensureSecretFile(path.join(secrets.secretsDir, name), 24)).value;
  const password = await secret('postgres-password');
  const what = 'the embedded PostgreSQL did not start';
  const databaseDir = path.join(secrets.dataDir, 'postgres');
  const startTimeoutMs = config.START_TIMEOUT_SECONDS * 1000;
  const embedded = await waitingFor(
    `the embedded PostgreSQL under ${databaseDir} (a crash recovery after a killed run takes longer)`,
    {
      // Its own bound stops the server first and says what it printed; this one only speaks.
      timeoutMs: startTimeoutMs + 10_000,
      cause: 'PostgreSQL neither started nor failed',
      fix: `See ${databaseDir}'s log lines above; raise START_TIMEOUT_SECONDS if it was still recovering.`,
      say,
    },
    () =>
      startEmbeddedPostgres({
        dataDir: secrets.dataDir,
        port: config.EMBEDDED_PG_PORT,
        password,
        database: 'selfdevop',
        startTimeoutMs,
      }),
  ).catch((e: unknown) => {
    if (e instanceof StartupError) throw e;
    if (!(e instanceof EmbeddedPostgresFailed)) throw new StartupError(what, messageOf(e));
    if (e.reason === 'port-in-use') {
      throw new StartupError(
        what,
        e.message,
        `Set EMBEDDED_PG_PORT to a free port (e.g. EMBEDDED_PG_PORT=${config.EMBEDDED_PG_PORT + 1}), or stop what listens there.`,
      );
    }
    if (e.reason === 'data-dir-in-use') {
      throw new StartupError(
        what,
        e.message,
        'Stop the other selfdevop, or set DATA_DIR to another directory for this one. If no selfdevop runs on it, a killed one left that PostgreSQL running: stop it (kill <pid>) and start again.',
      );
    }
    if (e.reason === 'timeout') {
      throw new StartupError(
        what,
        e.message,
        `Raise START_TIMEOUT_SECONDS (now ${config.START_TIMEOUT_SECONDS}) if it was still recovering, or look into ${databaseDir}.`,
      );
    }
    throw new StartupError(what, e.message);
  });
  stops.unshift(embedded.stop);
  // Generated once beside the superuser's, like every other secret of the install.
  const passwords = {
    api: await secret('postgres-api-password'),
    queue: await secret('postgres-queue-password'),
  };
  return {
    migrateUrl: embedded.url,
    databaseUrl: loginUrl(embedded.url, 'api', passwords.api),
    queueUrl: loginUrl(embedded.url, 'queue', passwords.queue),
    passwords,
  };
}

function databaseTarget(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || 5432}${u.pathname}`;
}

async function main() {
  const config = fromEnv();
  const secrets = await resolveSecrets(config);
  const logins = await startDatabase(config, secrets);
  const databaseUrl = logins.databaseUrl;
  const timeoutMs = config.START_TIMEOUT_SECONDS * 1000;
  const databaseFix = config.DATABASE_URL
    ? 'Check DATABASE_URL (host, port, user, password, database), or unset it to use the embedded PostgreSQL under DATA_DIR.'
    : 'The embedded PostgreSQL stopped answering; see DATA_DIR/postgres.';
  const applied = await waitingFor(
    `the migrations of the database at ${databaseTarget(logins.migrateUrl)}`,
    {
      timeoutMs: timeoutMs + 10_000,
      cause: 'the database stopped answering',
      fix: databaseFix,
      say,
    },
    () =>
      explained(
        `cannot use the database at ${databaseTarget(logins.migrateUrl)}`,
        databaseFix,
        async () => {
          const done = await migrate(logins.migrateUrl, {
            lockWaitMs: timeoutMs,
            onLockWait: (pid) =>
              say(
                `waiting for the migrations lock, held by ${pid === null ? 'another session' : `PostgreSQL pid ${pid}`} (another selfdevop migrating this database?), up to ${config.START_TIMEOUT_SECONDS} s`,
              ),
          }).catch((e: unknown) => {
            if (!(e instanceof MigrationsLocked)) throw e;
            throw new StartupError(
              'the database could not be migrated',
              e.message,
              `Stop the other selfdevop migrating ${databaseTarget(logins.migrateUrl)}${e.holderPid === null ? '' : `, or end that session (select pg_terminate_backend(${e.holderPid}))`}; raise START_TIMEOUT_SECONDS if its migrations only take longer.`,
            );
          });
          await provisionLoginRoles(logins.migrateUrl, logins.passwords);
          return done;
        },
      ),
  );

  // Without CADDY_ADMIN_URL selfdevop runs its own Caddy; with it, the one named is used as it is.
  const edge = config.CADDY_ADMIN_URL
    ? null
    : await waitingFor(
        `the edge (Caddy, admin API at ${config.CADDY_ADMIN_LISTEN})`,
        {
          timeoutMs,
          cause: 'Caddy neither served its config nor failed',
          fix: `See ${path.join(secrets.dataDir, 'caddy')}; set CADDY_BIN to another Caddy, or CADDY_ADMIN_URL to one already running.`,
          say,
        },
        () => startOwnEdge(config, secrets.dataDir, config.PORT),
      );
  if (edge) stops.unshift(edge.stop);

  // The process running workers serves the edge's DNS; an API alone only points Caddy at it.
  const system = await waitingFor(
    `the control plane's connections (its database pool${config.RUN_WORKERS ? ", the edge's upstream DNS on " + config.EDGE_DNS_LISTEN : ''})`,
    {
      timeoutMs,
      cause: 'the database or the edge DNS neither answered nor failed',
      fix: `${databaseFix} Set EDGE_DNS_LISTEN to a free address if its thread cannot bind.`,
      say,
    },
    () =>
      fromSelfhost(
        {
          ...config,
          DATABASE_URL: databaseUrl,
          QUEUE_DATABASE_URL: logins.queueUrl,
          // The owner's login backs up the control plane (the embedded one is a superuser).
          CONTROL_BACKUP_DATABASE_URL: config.CONTROL_BACKUP_DATABASE_URL ?? logins.migrateUrl,
          JWT_SECRET: secrets.jwtSecret,
          ENCRYPTION_KEY_FILE: secrets.encryptionKeyFile,
          CADDY_ADMIN_URL: edge?.adminUrl ?? config.CADDY_ADMIN_URL,
          EDGE_TLS_ADDRESS: edge?.tlsAddress ?? config.EDGE_TLS_ADDRESS,
        },
        { role: config.RUN_WORKERS ? 'all' : 'api', version },
      ),
  ).catch((e: unknown) => {
    if (e instanceof StartupError) throw e;
    if (e instanceof UpstreamDnsStartFailed)
      throw new StartupError(
        `the edge's upstream DNS did not start on ${config.EDGE_DNS_LISTEN}`,
        e.message,
        'Set EDGE_DNS_LISTEN to another host:port, or EDGE_UPSTREAMS=static to run without it.',
      );
    // The upstream DNS server is the one thing fromSelfhost binds.
    if (!isBindError(e))
      throw new StartupError('the control plane did not start', osReason(e) ?? messageOf(e));
    const next = `${config.EDGE_DNS_LISTEN.slice(0, config.EDGE_DNS_LISTEN.lastIndexOf(':'))}:${Number(config.EDGE_DNS_LISTEN.split(':').pop()) + 1}`;
    throw new StartupError(
      `the edge's upstream DNS could not listen on ${config.EDGE_DNS_LISTEN}`,
      osReason(e)!,
      `Set EDGE_DNS_LISTEN to a free host:port (e.g. EDGE_DNS_LISTEN=${next}), or stop what listens there.`,
    );
  });
  stops.unshift(system.close);
  logger = system.logger;
  if (config.RUN_WORKERS)
    await waitingFor(
      'the queues (pg-boss) to start',
      {
        timeoutMs,
        cause: "pg-boss's schema check or its first queries did not finish",
        fix: config.QUEUE_DATABASE_URL
          ? 'Check QUEUE_DATABASE_URL, and that no other session holds locks on its schema.'
          : databaseFix,
        say,
      },
      () => system.startWorkers(),
    );
  const served = await explained(
    `the API could not listen on ${config.HOST}:${config.PORT}`,
    `Set PORT to a free port (e.g. PORT=${config.PORT + 1}), or HOST to an address of this machine.`,
    () =>
      serveApi(system.api, {
        host: config.HOST,
        port: config.PORT,
        trustProxy: config.TRUST_PROXY,
      }),
  );
  stops.unshift(served.close);

  const shownHost = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  const url = `http://${shownHost}:${served.port}`;
  system.logger.info(
    {
      url,
      migrationsApplied: applied.map((m) => m.version),
      embeddedDatabase: !config.DATABASE_URL,
      dataDir: secrets.dataDir,
    },
    'selfdevop is up',
  );
  process.stderr.write(
    [
      '',
      `  selfdevop ${version} is running at ${url}`,
      `  API docs:  ${url}/docs`,
      config.DATABASE_URL
        ? '  database:  DATABASE_URL'
        : `  data:      ${secrets.dataDir} (embedded PostgreSQL)`,
      ...(edge
        ? edge.banner
        : [`  edge:      the Caddy at CADDY_ADMIN_URL (${config.CADDY_ADMIN_URL})`]),
      '',
      '  Create the first user (the owner of a new org):',
      `    curl -s ${url}/api/auth/local/signup -H 'content-type: application/json' \\`,
      `      -d '{"email":"you@example.com","password":"at least 8 characters"}'`,
      '',
    ].join('\n') + '\n',
  );
}

main().catch(async (e: unknown) => {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop: ${e.message}\n`);
  else if (e instanceof StartupError)
    process.stderr.write(`selfdevop failed to start: ${e.message}\n`);
  else
    process.stderr.write(
      `selfdevop failed to start: ${e instanceof Error ? (e.stack ?? messageOf(e)) : messageOf(e)}\n`,
    );
  for (const stop of stops) await stop().catch(() => undefined);
  process.exit(1);
});
