import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import { CoreError, InvalidInput, NotFound } from '../../core/errors.ts';
import { authenticate } from '../../core/auth/use-cases.ts';
import type { Principal } from '../../core/deps.ts';
import type { ApiDeps } from '../../core/system.ts';
import { describeZodError, errorBody, respondWithError } from './errors.ts';
import type { RouteDef } from './route.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { auditRoutes } from './routes/audit.ts';
import { authRoutes } from './routes/auth.ts';
import { deployJobRoutes } from './routes/deploy-jobs.ts';
import { domainRoutes } from './routes/domains.ts';
import { environmentRoutes } from './routes/environments.ts';
import { inviteRoutes } from './routes/invites.ts';
import { memberRoutes } from './routes/members.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { orgRoutes } from './routes/orgs.ts';
import { projectRoutes } from './routes/projects.ts';
import { releaseRoutes } from './routes/releases.ts';
import { secretRoutes } from './routes/secrets.ts';
import { serviceRoutes } from './routes/services.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { notificationChannelRoutes } from './routes/notification-channels.ts';
import { registryRoutes } from './routes/registries.ts';
import { alertRoutes } from './routes/alerts.ts';
import { exportAlertTargets } from '../../core/alerts/targets.ts';
import { edgeRoutes } from './routes/edge.ts';
import { dataServiceRoutes } from './routes/data-services.ts';
import { controlBackupRoutes } from './routes/control-backups.ts';
import { jobRoutes } from './routes/jobs.ts';

export const defaultRoutes: RouteDef[] = [
  ...authRoutes,
  ...orgRoutes,
  ...apiKeyRoutes,
  ...memberRoutes,
  ...inviteRoutes,
  ...projectRoutes,
  ...environmentRoutes,
  ...serviceRoutes,
  ...nodeRoutes,
  ...auditRoutes,
  ...secretRoutes,
  ...releaseRoutes,
  ...deployJobRoutes,
  ...webhookRoutes,
  ...notificationChannelRoutes,
  ...registryRoutes,
  ...alertRoutes,
  ...edgeRoutes,
  ...dataServiceRoutes,
  ...controlBackupRoutes,
  ...jobRoutes,
  ...domainRoutes,
];

type Env = { Variables: { requestId: string; dashboardRoutePath?: string } };

/** How a mode learns the caller's address (node socket, Lambda event, trusted proxy). */
export type ClientIp = (c: Context) => string | null;

const idParam = /^[a-z]+_[0-9a-z]+$/;
const unsafeRequestId = /[^\w\-=]/;

/** JSON strings selfdevop stores must be storable: PostgreSQL text refuses NUL, and lone surrogates are not UTF-8. */
function parseJson(text: string): unknown {
  return JSON.parse(text, (key, value) => {
    if (typeof value === 'string' && (value.includes('\u0000') || !value.isWellFormed())) {
      throw new InvalidInput(
        `${key || 'body'}: strings must not contain NUL characters or unpaired surrogates`,
        {
          field: key,
        },
      );
    }
    return value;
  });
}

async function readBody(c: Context, schema: z.ZodType): Promise<unknown> {
  const text = await c.req.text();
  if (!text.trim())
    throw new InvalidInput('request body is required: send a JSON object', { field: 'body' });
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (e) {
    if (e instanceof CoreError) throw e;
    throw new CoreError(
      'invalid',
      'invalid_json',
      `request body is not valid JSON: ${(e as Error).message}`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidInput('request body must be a JSON object', { field: 'body' });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw describeZodError(parsed.error, 'body');
  return parsed.data;
}

/** How many distinct query strings each route remembers the parse of. */
const queryCacheSize = 100;

/**
 * A route's query, parsed and validated. A client repeats the same query string (a list's
 * `?limit=20`), so each route remembers what its last few valid ones parsed to and hands
 * out a copy (the schemas' outputs are flat): splitting, decoding and validating them again
 * was most of what a read's input cost. Invalid ones are parsed every time, to say why.
 */
function readQuery(c: Context, schema: z.ZodType, cache: Map<string, object>): unknown {
  const url = c.req.url;
  const at = url.indexOf('?');
  const search = at < 0 ? '' : url.slice(at);
  const known = cache.get(search);
  if (known) return { ...known };
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw describeZodError(parsed.error, 'query');
  const value = parsed.data;
  if (typeof value === 'object' && value !== null) {
    // Bounded: a paging cursor is new every time; starting over keeps the repeated ones.
    if (cache.size >= queryCacheSize) cache.clear();
    cache.set(search, { ...value });
  }
  return value;
}

function bearer(c: Context): string | null {
  const header = c.req.header('authorization');
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m)
    throw new CoreError(
      'unauthorized',
      'unauthenticated',
      'Authorization header must be "Bearer <token>"',
    );
  return m[1]!;
}

/**
 * The control API as a Hono app, the same in both modes: the Node server and the Lambda
 * handler only differ in how a request reaches it.
 */
const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function createApiApp(
  deps: ApiDeps,
  options: { routes?: RouteDef[]; clientIp?: ClientIp } = {},
) {
  const routes = options.routes ?? defaultRoutes;
  const clientIp = options.clientIp ?? (() => null);
  const app = new Hono<Env>();

  // One middleware for the request id, the metrics and the request line: each layer of
  // middleware is a closure and a promise per request. The id is the caller's when it is
  // short and plain (as hono/request-id would take it), else a fresh UUID.
  app.use(async (c, next) => {
    const started = performance.now();
    let id = c.req.header('x-request-id');
    if (!id || id.length > 100 || unsafeRequestId.test(id)) id = crypto.randomUUID();
    c.set('requestId', id);
    // Under /api/ every response this app builds names the id itself (stampId, jsonReply):
    // c.header() before the response exists makes a WHATWG Headers object per request,
    // which @hono/node-server must then copy back into plain headers to write.
    if (!c.req.path.startsWith('/api/')) stampId(c);
    await next();
    const ms = performance.now() - started;
    const routePath = c.get('dashboardRoutePath') ?? (c.req.routePath || 'unmatched');
    // Labels stay a small fixed set: a made-up method would otherwise become a new series.
    const method = knownMethods.has(c.req.method) ? c.req.method : 'OTHER';
    const labels = { method, route: routePath, status: String(c.res.status) };
    deps.metrics.count('http_requests_total', labels);
    deps.metrics.observe('http_request_duration_seconds', ms / 1000, { method, route: routePath });
    // Paths carry ids but never secrets; bodies and headers are never logged.
    deps.logger.info(
      {
        requestId: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(ms * 10) / 10,
      },
      'request',
    );
  });
  const limitBody = bodyLimit({
    maxSize: deps.api.maxBodyBytes,
    onError: (c) =>
      stampId(c).json(
        errorBody(
          'payload_too_large',
          `request body is larger than ${deps.api.maxBodyBytes} bytes`,
        ),
        413,
      ),
  });
  // Reads carry no body; skipping them keeps Node from building a full Request per GET.
  // Routes that stream their body (backup objects of any size) are the only exception.
  const streamed = routes
    .filter((r) => r.streamsBody)
    .map((r) => ({
      method: r.method.toUpperCase(),
      path: new RegExp(`^${r.path.replace(/\{\w+\}/g, '[^/]+')}$`),
    }));
  app.use('/api/*', (c, next) =>
    c.req.method === 'GET' ||
    c.req.method === 'HEAD' ||
    streamed.some((r) => r.method === c.req.method && r.path.test(c.req.path))
      ? next()
      : limitBody(c, next),
  );

  app.onError((err, c) =>
    respondWithError(stampId(c), err, deps.logger.child({ requestId: c.get('requestId') })),
  );
  const routeNotFound = (c: Context) =>
    stampId(c).json(
      errorBody('route_not_found', `no route for ${c.req.method} ${c.req.path}`),
      404,
    );
  app.notFound(routeNotFound);

  app.get('/health', (c) => c.json({ status: 'ok', version: deps.api.version }));
  app.get('/health/ready', async (c) => {
    const checks: Record<string, () => Promise<void>> = {
      database: () => deps.store.ping(),
      queue: () => deps.queue.ping(),
      ...deps.readiness,
    };
    const results = await Promise.all(
      Object.entries(checks).map(async ([name, check]) => {
        try {
          await withTimeout(check(), 2_000, `${name} did not answer within 2 s`);
          return [name, 'ok'] as const;
        } catch (e) {
          return [name, (e as Error).message] as const;
        }
      }),
    );
    const failed = results.filter(([, r]) => r !== 'ok');
    return c.json(
      { status: failed.length ? 'unavailable' : 'ok', checks: Object.fromEntries(results) },
      failed.length ? 503 : 200,
    );
  });
  app.get('/metrics', async (c) => {
    if (!deps.metrics.render) return c.text('metrics are not exposed in this mode\n', 404);
    const { contentType, body } = await deps.metrics.render();
    return c.body(body, 200, { 'Content-Type': contentType });
  });
  // For Prometheus only (bearer ALERT_RECEIVER_TOKEN): which host is which org's service,
  // and each service's alert thresholds, for the rules of core/alerts/rules.ts.
  app.get('/metrics/alert-targets', async (c) => {
    const header = c.req.header('authorization') ?? '';
    const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : null;
    const body = await exportAlertTargets(deps, token);
    return c.body(body, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });
  // Loaded and written on first request: converting every route's schemas is work a cold
  // start that serves the API does not need.
  let document: object | undefined;
  app.get('/openapi.json', async (c) => {
    document ??= (await import('./openapi.ts')).openApiDocument(routes, deps.api.version);
    return c.json(document);
  });
  app.get('/docs', async (c) => c.html((await import('./openapi.ts')).docsPage));

  for (const r of routes) {
    const honoPath = r.path.replace(/\{(\w+)\}/g, ':$1');
    // The path's id parameters, found once: an id that cannot exist is simply not found
    // (never a 500 from the database).
    const ids = Array.from(r.path.matchAll(/\{(\w+)\}/g), (m) => m[1]!)
      .filter((name) => name === 'id' || name.endsWith('Id'))
      .map((name) => ({ name, subject: name.replace(/Id$/, '') || 'resource' }));
    const queries = new Map<string, object>();
    app.on(r.method.toUpperCase(), honoPath, async (c) => {
      const params = c.req.param() as Record<string, string>;
      for (const { name, subject } of ids) {
        const value = params[name];
        if (value !== undefined && (!idParam.test(value) || value.length > 64)) {
          throw new NotFound(subject, value.slice(0, 64));
        }
      }
      const ctx = { requestId: c.get('requestId'), ip: clientIp(c) };
      let principal: Principal;
      if (r.auth) {
        const orgHeader = c.req.header('x-org-id') ?? null;
        if (orgHeader !== null && !idParam.test(orgHeader))
          throw new NotFound('org', orgHeader.slice(0, 64));
        principal = await authenticate(deps, bearer(c), orgHeader);
      } else {
        principal = {
          actorType: 'user',
          actorId: 'anonymous',
          userId: null,
          orgId: null,
          role: null,
        };
      }
      const body = r.body ? await readBody(c, r.body) : undefined;
      const query = r.query ? readQuery(c, r.query, queries) : undefined;
      const result = await r.handle({
        deps,
        principal,
        body,
        query,
        params,
        ctx,
        // On Node the standard Request is built lazily and costs more than the route itself.
        get request() {
          return c.req.raw;
        },
      });
      if (result instanceof Response) return result;
      if (r.status === 204) return stampId(c).body(null, 204);
      return jsonReply(result, r.status, ctx.requestId);
    });
  }
  // The web dashboard (functions/api/dashboard): HTML pages that call this same app in
  // process with the user's token, so they are clients of the public API like the CLI.
  // Its pages load with the first request for one, not with the API: most cold starts
  // serve the API alone. It answers as if mounted with app.route(): the API's JSON 404
  // and error handling, and its own route patterns in the request metrics.
  let dashboard: Promise<Hono<Env>> | undefined;
  const loadDashboard = () =>
    (dashboard ??= import('./dashboard/app.ts').then(
      ({ dashboardApp }) => {
        const mounted = new Hono<Env>();
        mounted.use(async (c, next) => {
          try {
            await next();
          } finally {
            routePaths.set(c.req.raw, c.req.routePath);
          }
        });
        mounted.route(
          '/',
          dashboardApp((request, env) => app.fetch(request, env), {
            hostedSignIn: deps.hostedSignIn,
            logger: deps.logger.child({ component: 'dashboard' }),
            ...(deps.objects?.direct
              ? { directUploadOrigin: deps.objects.direct.origin.bind(deps.objects.direct) }
              : {}),
          }),
        );
        mounted.notFound(routeNotFound);
        mounted.onError((err) => {
          throw err; // to the API's onError, with the request's id
        });
        return mounted;
      },
      (e: unknown) => {
        dashboard = undefined;
        throw e;
      },
    ));
  const routePaths = new WeakMap<Request, string>();
  const toDashboard = async (c: Context<Env>) => {
    const request = c.req.raw;
    try {
      const res = await (await loadDashboard()).fetch(request, c.env);
      // Through this context, so the headers set before it (X-Request-Id) are on the page too.
      return c.newResponse(res.body, res);
    } finally {
      const routePath = routePaths.get(request);
      if (routePath !== undefined) c.set('dashboardRoutePath', routePath);
    }
  };
  app.get('/', toDashboard);
  app.all('/dashboard/*', toDashboard); // '/dashboard' itself too
  return app;
}

/** Names the request's id on the response the context will build (`X-Request-Id`). */
function stampId<C extends Context>(c: C): C {
  c.header('X-Request-Id', c.get('requestId') as string);
  return c;
}

/**
 * What `c.json()` sends, with the request id, in plain headers: the shape @hono/node-server
 * writes straight to the socket (two headers through `c` would cost a Headers object).
 */
function jsonReply(body: unknown, status: number, requestId: string): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'x-request-id': requestId },
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}
