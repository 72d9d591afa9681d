/**
 * The self-hosted worker process (the compose `worker` service): consumes the release
 * queues and serves no HTTP. It is the only process with the Docker socket, and the one
 * that keeps the edge's config whole through the edge adapter: at start and periodically it
 * makes Caddy's control route (dashboard + API) match SELFDEVOP_DOMAIN, since Caddy resumes
 * its autosaved config across restarts, and puts back every route rebuilt from the database.
 * Liveness is a heartbeat file (functions/selfhost/healthcheck.ts reads it), written only
 * while the database answers.
 */
import { writeFile } from 'node:fs/promises';
import { ConfigError, fromEnv, requireSettings } from '../../adapters/modes/config.ts';
import { checkMigrations } from '../../adapters/db/migrator.ts';
import { openSession, type SqlSession } from '../../adapters/db/postgres.ts';
import { fromSelfhost } from '../../adapters/modes/selfhost.ts';
import { UpstreamDnsStartFailed } from '../../adapters/edge/upstream-dns.ts';
import { StartupError, waitingFor } from './start-errors.ts';
import { version } from './version.ts';

const heartbeatEveryMs = 5_000;

async function main() {
  const config = requireSettings(fromEnv(), 'the worker', [
    'DATABASE_URL',
    'JWT_SECRET',
    'ENCRYPTION_KEY_FILE',
  ]);
  const databaseUrl = config.DATABASE_URL;
  const heartbeatFile = config.WORKER_HEARTBEAT_FILE;
  const domain = config.SELFDEVOP_DOMAIN;
  // Every wait of the start is said and bounded: a worker that never writes its heartbeat
  // must say what it waits for (the DNS thread's lost "bound" left it silent before).
  const timeoutMs = config.START_TIMEOUT_SECONDS * 1000;
  const say = (line: string) => process.stderr.write(`selfdevop worker: ${line}\n`);

  // The migrate job runs first; a worker of another version must not touch the data.
  let session: SqlSession | null = null;
  const { pending } = await waitingFor(
    'the database (DATABASE_URL) to answer the migrations check',
    {
      timeoutMs,
      cause: 'PostgreSQL did not answer',
      fix: 'Check DATABASE_URL and that PostgreSQL runs.',
      say,
    },
    async () => {
      session = await openSession(databaseUrl);
      return checkMigrations(session);
    },
  );
  if (pending.length > 0) {
    throw new Error(
      `the database lacks migrations ${pending.map((m) => m.version).join(', ')}; run the migrate job first`,
    );
  }

  // This process serves the edge's upstream DNS; Caddy reaches it at EDGE_DNS_ADDRESS.
  const system = await waitingFor(
    `the control plane's connections and the edge's upstream DNS on ${config.EDGE_DNS_LISTEN}`,
    {
      timeoutMs,
      cause: 'the database pool or the DNS thread neither answered nor failed',
      fix: 'Check DATABASE_URL; set EDGE_DNS_LISTEN to a free address if the DNS cannot bind.',
      say,
    },
    () => fromSelfhost(config, { role: 'worker', version }),
  ).catch((e: unknown) => {
    if (!(e instanceof UpstreamDnsStartFailed) && !isBind(e)) throw e;
    throw new StartupError(
      `the edge's upstream DNS did not start on EDGE_DNS_LISTEN=${config.EDGE_DNS_LISTEN}`,
      e instanceof Error ? e.message : String(e),
      'Set EDGE_DNS_LISTEN to a free host:port (and EDGE_DNS_ADDRESS to where Caddy reaches it).',
    );
  });
  const log = system.logger.child({ component: 'worker' });
  // A Caddy that lost its config (autosave gone, config reset) is put back from the
  // database by the `edge-rebuild` job (core/queues.ts), which in this process also puts
  // back the control route and the edge's listeners first. pg-boss runs it every minute
  // (startWorkers schedules it); this timer runs the same job at the finer
  // EDGE_REBUILD_SECONDS, and once before the queues start. Runs are idempotent (If-Match,
  // adds only), so overlapping ones cost a read.
  const rebuildEdge = () => system.rebuildEdge();
  await waitingFor(
    `the edge's routes to be put back (Caddy at CADDY_ADMIN_URL=${config.CADDY_ADMIN_URL ?? ''})`,
    {
      timeoutMs,
      cause: "Caddy's admin API or the database did not answer",
      fix: 'Check CADDY_ADMIN_URL and that Caddy runs.',
      say,
    },
    rebuildEdge,
  );
  const rebuildTimer = setInterval(
    () =>
      void rebuildEdge().catch((e: Error) =>
        log.warn({ err: e.message }, 'rebuilding the edge from the database failed; retrying'),
      ),
    config.EDGE_REBUILD_SECONDS * 1000,
  );
  const stopWorkers = await waitingFor(
    'the queues (pg-boss) to start',
    {
      timeoutMs,
      cause: "pg-boss's schema check or its first queries did not finish",
      fix: 'Check QUEUE_DATABASE_URL, and that no other session holds locks on its schema.',
      say,
    },
    () => system.startWorkers(),
  );
  log.info(
    { version, edgeDomain: config.EDGE_DOMAIN, controlDomain: domain ?? null },
    'selfdevop worker is up',
  );

  const beat = async () => {
    try {
      session ??= await openSession(databaseUrl);
      await session.query('select 1');
      await writeFile(heartbeatFile, new Date().toISOString() + '\n');
    } catch (e) {
      log.warn(
        { err: (e as Error).message },
        'heartbeat withheld: the database check or the heartbeat write failed',
      );
      await session?.end().catch(() => undefined);
      session = null;
    }
  };
  await beat();
  const timer = setInterval(() => void beat(), heartbeatEveryMs);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(timer);
    clearInterval(rebuildTimer);
    log.info({ signal }, 'worker shutting down; waiting for steps in flight');
    await stopWorkers().catch((e: Error) =>
      log.error({ err: e.message }, 'stopping the workers failed'),
    );
    await system.close().catch((e: Error) => log.error({ err: e.message }, 'closing failed'));
    await session?.end().catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** An address the DNS could not bind (in use, not this machine's, privileged). */
const isBind = (e: unknown) => (e as { syscall?: string } | null)?.syscall === 'bind';

main().catch((e: unknown) => {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop worker: ${e.message}\n`);
  else if (e instanceof StartupError)
    process.stderr.write(`selfdevop worker failed to start: ${e.message}\n`);
  else
    process.stderr.write(
      `selfdevop worker failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
  process.exit(1);
});
