/**
 * The self-hosted worker process (the compose `worker` service): consumes the release
 * queues and serves no HTTP. It is the only process with the Docker socket, and the one
 * that owns the edge's config: at start it makes Caddy's control route (dashboard + API)
 * match SELFDEVOP_DOMAIN, since Caddy resumes its autosaved config across restarts.
 * Liveness is a heartbeat file (functions/selfhost/healthcheck.ts reads it), written only
 * while the database answers.
 */
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { ConfigError, defaultCaddyAdminUrl, fromEnv, requireSettings } from '../../adapters/modes/config.ts';
import { checkMigrations } from '../../adapters/db/migrator.ts';
import { openSession, type SqlSession } from '../../adapters/db/postgres.ts';
import { fromSelfhost } from '../../adapters/modes/selfhost.ts';
import { version } from './version.ts';

const heartbeatEveryMs = 5_000;

type Json = Record<string, unknown>;

/** The route that sends the dashboard and API to the control API: by host, or catch-all. */
function controlRoute(domain: string | undefined, upstream: string): Json {
  const proxy = { handler: 'reverse_proxy', upstreams: [{ dial: upstream }] };
  if (!domain) return { '@id': 'selfdevop-control', handle: [proxy], terminal: true };
  // Credentials never travel in clear text: plain HTTP to the dashboard host is redirected.
  const redirect = {
    match: [{ protocol: 'http' }],
    handle: [
      {
        handler: 'static_response',
        status_code: 308,
        headers: { Location: ['https://{http.request.host}{http.request.uri}'] },
      },
    ],
  };
  return {
    '@id': 'selfdevop-control',
    match: [{ host: [domain] }],
    handle: [{ handler: 'subroute', routes: [redirect, { handle: [proxy] }] }],
    terminal: true,
  };
}

/** Listen addresses and automatic HTTPS of the edge server: TLS only when a domain is set. */
function edgeServerSettings(domain: string | undefined): {
  listen: string[];
  automatic_https: Json;
} {
  return domain
    ? { listen: [':80', ':443'], automatic_https: { disable_redirects: true } }
    : { listen: [':80'], automatic_https: { disable: true } };
}

function adminRequest(
  adminUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; etag?: string; body: string }> {
  const url = new URL(path, adminUrl);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    // node:http, not fetch: Caddy's admin API refuses browser fetch metadata.
    const req = http.request(
      url,
      {
        method,
        timeout: 10_000,
        headers: {
          ...headers,
          ...(payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            etag: typeof res.headers.etag === 'string' ? res.headers.etag : undefined,
            body: text,
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`caddy admin ${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * Makes the edge server's listen list, automatic HTTPS and control route match the
 * configuration, leaving every app route where it is. Writes carry If-Match, so a deploy
 * changing routes at the same moment is never overwritten (a 412 reads again).
 */
async function reconcileEdge(options: {
  adminUrl: string;
  server: string;
  domain?: string;
  upstream: string;
}): Promise<string[]> {
  const base = `/config/apps/http/servers/${encodeURIComponent(options.server)}`;
  const changed: string[] = [];
  for (let attempt = 1; attempt <= 10; attempt += 1) {
    const res = await adminRequest(options.adminUrl, 'GET', base);
    if (res.status !== 200 || res.body.trim() === 'null') {
      throw new Error(
        `caddy has no server ${options.server} (GET ${base} → ${res.status}); is the edge's base config loaded?`,
      );
    }
    const server = JSON.parse(res.body) as Json;
    const routes = Array.isArray(server.routes) ? (server.routes as Json[]) : [];
    const desiredRoute = controlRoute(options.domain, options.upstream);
    const others = routes.filter((r) => r['@id'] !== 'selfdevop-control');
    // A host route goes first; the catch-all last, behind every app route.
    const nextRoutes = options.domain ? [desiredRoute, ...others] : [...others, desiredRoute];
    const settings = edgeServerSettings(options.domain);
    const next = { ...server, ...settings, routes: nextRoutes };
    if (isDeepStrictEqual(next, server)) return changed;
    const put = await adminRequest(
      options.adminUrl,
      'PATCH',
      base,
      next,
      res.etag ? { 'If-Match': res.etag } : {},
    );
    if (put.status === 412) continue;
    if (put.status !== 200)
      throw new Error(`caddy refused the edge settings: ${put.status} ${put.body}`);
    if (!isDeepStrictEqual(server.listen, settings.listen))
      changed.push(`listen ${settings.listen.join(' ')}`);
    if (!isDeepStrictEqual(server.automatic_https, settings.automatic_https))
      changed.push('automatic_https');
    if (
      !isDeepStrictEqual(
        routes.find((r) => r['@id'] === 'selfdevop-control'),
        desiredRoute,
      )
    ) {
      changed.push(`control route ${options.domain ?? '(any host)'} → ${options.upstream}`);
    }
    return changed;
  }
  throw new Error(
    'caddy config kept changing under the edge reconciliation; gave up after 10 attempts',
  );
}

async function main() {
  const config = requireSettings(fromEnv(), 'the worker', ['DATABASE_URL', 'JWT_SECRET', 'ENCRYPTION_KEY_FILE']);
  const databaseUrl = config.DATABASE_URL;
  const heartbeatFile = config.WORKER_HEARTBEAT_FILE;
  const domain = config.SELFDEVOP_DOMAIN;
  const upstream = config.CONTROL_UPSTREAM;

  // The migrate job runs first; a worker of another version must not touch the data.
  let session: SqlSession | null = await openSession(databaseUrl);
  const { pending } = await checkMigrations(session);
  if (pending.length > 0) {
    throw new Error(
      `the database lacks migrations ${pending.map((m) => m.version).join(', ')}; run the migrate job first`,
    );
  }

  // This process serves the edge's upstream DNS; Caddy reaches it at EDGE_DNS_ADDRESS.
  const system = await fromSelfhost(config, { role: 'worker', version });
  const log = system.logger.child({ component: 'worker' });
  const changed = await reconcileEdge({
    adminUrl: config.CADDY_ADMIN_URL ?? defaultCaddyAdminUrl,
    server: config.CADDY_SERVER,
    domain,
    upstream,
  });
  if (changed.length > 0) log.info({ changed }, 'edge settings updated');
  const stopWorkers = await system.startWorkers();
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

main().catch((e: unknown) => {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop worker: ${e.message}\n`);
  else
    process.stderr.write(
      `selfdevop worker failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
  process.exit(1);
});
