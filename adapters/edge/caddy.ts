/**
 * EdgeRouter on Caddy's admin API. Routes carry `@id`s and live in one HTTP server of the
 * Caddy config. Every change is a full Caddy reload, so changes are serialised in-process
 * and bulk changes go in one load. Writes address one position of the routes array and
 * carry Caddy's `If-Match`, so two control-plane processes cannot clobber each other's
 * routes; every write is read back before it counts as done.
 */
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import http from 'node:http';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import type { EdgeCertificate, EdgeRouter, RouteSpec, UpstreamRegistry } from '../../core/ports.ts';
import {
  assertRouteSpec,
  hostOfTarget,
  srvNameOf,
  upstreamLabel,
  type DynamicUpstreamsPlan,
  caddyRouteFromSpec,
  caddyServer,
  mergeRoutes,
  routeInsertIndex,
  routeSpecFromCaddy,
} from '../../core/edge/caddy-route.ts';

export interface CaddyEdgeRouterOptions {
  /** e.g. `http://127.0.0.1:2019`; the admin API must stay on loopback or a private socket. */
  adminUrl: string;
  /** The HTTP server (under apps.http.servers) that holds selfdevop's routes. */
  server?: string;
  /** Listen addresses used only when that server does not exist yet and must be created. */
  listen?: { httpListen: string; httpsListen?: string };
  /** Per admin request; a config load with thousands of routes takes a while. */
  timeoutMs?: number;
  /**
   * Custom domains: host:port of Caddy's HTTPS listener, where certificate() makes a TLS
   * handshake with SNI to read the certificate served (e.g. `127.0.0.1:443`).
   */
  tlsAddress?: string;
  /** A handshake may wait for an on-demand issuance; give up on it after this long. */
  tlsTimeoutMs?: number;
  /**
   * Upstreams served by the control plane's DNS server (adapters/edge/upstream-dns.ts)
   * instead of written into routes: switching traffic then writes the registry and never
   * reloads Caddy, so no idle keep-alive connection or WebSocket is cut by a deploy.
   */
  dynamicUpstreams?: DynamicUpstreamsPlan & { registry: UpstreamRegistry };
}

/** A registry write reaches every DNS server's answer within this long, or the switch fails. */
const dnsPropagationTimeoutMs = 5_000;

/** Caddy answered, but refused the change (bad config, conflicting id, lost race). */
export class CaddyRejected extends Error {
  readonly status: number;
  constructor(what: string, status: number, body: string) {
    super(`caddy refused ${what}: ${status} ${errorText(body)}`);
    this.name = 'CaddyRejected';
    this.status = status;
  }
}

interface RoutesWrite {
  method: 'PUT' | 'PATCH' | 'DELETE';
  /** After the routes path: '' for the whole array, '/<index>' for one element. */
  suffix: string;
  body?: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const indexOfId = (routes: readonly unknown[], id: string): number =>
  routes.findIndex((r) => isRecord(r) && r['@id'] === id);

interface AdminResponse {
  status: number;
  etag: string | undefined;
  body: string;
}

const defaultServer = 'selfdevop';
const defaultTimeoutMs = 30_000;
// Bounded retries: of a dropped admin connection, and of a write another writer beat (412).
const maxAttempts = 5;
const maxConflicts = 12;

function errorText(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed)
      return String(parsed.error);
  } catch {
    // not JSON: Caddy's message is the body itself
  }
  return body.trim() || 'no message';
}

export class CaddyEdgeRouter implements EdgeRouter {
  readonly #admin: URL;
  readonly #server: string;
  readonly #listen: CaddyEdgeRouterOptions['listen'];
  readonly #timeoutMs: number;
  readonly #tlsAddress: string | undefined;
  readonly #tlsTimeoutMs: number;
  readonly #dynamic: CaddyEdgeRouterOptions['dynamicUpstreams'];
  #dns: Resolver | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: CaddyEdgeRouterOptions) {
    this.#admin = new URL(options.adminUrl);
    this.#server = options.server ?? defaultServer;
    this.#listen = options.listen;
    this.#timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.#tlsAddress = options.tlsAddress;
    this.#tlsTimeoutMs = options.tlsTimeoutMs ?? 20_000;
    this.#dynamic = options.dynamicUpstreams;
  }

  /**
   * Asks the DNS server the way Caddy will. Node's resolver takes IP addresses only, so a
   * server named by host (`worker:5354` on a Compose network) is looked up first.
   */
  async #dnsClient(): Promise<Resolver> {
    if (this.#dns) return this.#dns;
    const address = this.#dynamic!.resolver;
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = address.slice(i + 1);
    const ip = isIP(host) ? host : (await lookup(host)).address;
    const resolver = new Resolver({ timeout: 1_000, tries: 1 });
    resolver.setServers([isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`]);
    this.#dns = resolver;
    return resolver;
  }

  #plan(spec: RouteSpec) {
    return caddyRouteFromSpec(spec, this.#dynamic);
  }

  /**
   * Publishes a route's upstreams and waits until the DNS server answers them, as Caddy
   * will ask it; then Caddy's own cached answer is at most one refresh old.
   */
  async #publishUpstreams(spec: RouteSpec): Promise<void> {
    const dyn = this.#dynamic!;
    const label = upstreamLabel(spec.id);
    await dyn.registry.set(label, spec.upstreams);
    const want = [...spec.upstreams].sort();
    const deadline = Date.now() + dnsPropagationTimeoutMs;
    let seen: string;
    for (;;) {
      try {
        const records = await (await this.#dnsClient()).resolveSrv(srvNameOf(label, dyn.zone));
        const got = records.map((r) => `${hostOfSrvTarget(r.name, dyn.zone)}:${r.port}`).sort();
        if (isDeepStrictEqual(got, want)) return;
        seen = got.join(', ') || 'no upstreams';
      } catch (e) {
        seen = e instanceof Error ? e.message : String(e);
      }
      if (Date.now() > deadline) {
        throw new Unavailable('edge dns', `${dyn.resolver} still answers ${seen} for route ${spec.id} after ${dnsPropagationTimeoutMs} ms`);
      }
      await sleep(50);
    }
  }

  /**
   * Publishes the routes' upstreams; when one cannot be confirmed, every route touched gets
   * its previous upstreams back, so a failed switch does not leave traffic half moved.
   */
  async #publishOrRestore(routes: readonly RouteSpec[]): Promise<void> {
    const registry = this.#dynamic!.registry;
    const previous = await Promise.all(routes.map((r) => registry.get(upstreamLabel(r.id))));
    try {
      for (const route of routes) await this.#publishUpstreams(route);
    } catch (e) {
      await Promise.all(
        routes.map((r, i) => {
          const label = upstreamLabel(r.id);
          const before = previous[i];
          return (before ? registry.set(label, before) : registry.remove(label)).catch(() => undefined);
        }),
      );
      throw e;
    }
  }

  /** With dynamic upstreams a route read from Caddy names none: they are in the registry. */
  async #withUpstreams(spec: RouteSpec | null): Promise<RouteSpec | null> {
    if (!spec || !this.#dynamic || spec.upstreams.length > 0) return spec;
    return { ...spec, upstreams: (await this.#dynamic.registry.get(upstreamLabel(spec.id))) ?? [] };
  }

  get #routesPath(): string {
    return `/config/apps/http/servers/${encodeURIComponent(this.#server)}/routes`;
  }

  async ping(): Promise<void> {
    const res = await this.#request('GET', '/config/');
    if (res.status !== 200)
      throw new Unavailable('caddy', `${this.#admin.origin}: GET /config/ answered ${res.status}`);
  }

  async put(route: RouteSpec): Promise<void> {
    assertRouteSpec(route);
    const planned = this.#plan(route);
    const plannedJson: unknown = JSON.parse(JSON.stringify(planned));
    await this.#serialised(async () => {
      // The route first, upstreams after: if Caddy's admin API cannot be reached the put
      // fails before traffic moves, so a failed switch leaves the previous release serving.
      await this.#changeRoutes(`put route ${route.id}`, true, (routes) => {
        if (routes === null) return { method: 'PUT', suffix: '', body: [planned] };
        const at = indexOfId(routes, route.id);
        // Same route, new upstreams only: nothing for Caddy to load, nothing to reload.
        if (at !== -1 && isDeepStrictEqual(routes[at], plannedJson)) return null;
        // Only this one element is sent, so the other routes are never rewritten.
        if (at !== -1) return { method: 'PATCH', suffix: `/${at}`, body: planned };
        return { method: 'PUT', suffix: `/${routeInsertIndex(routes, planned)}`, body: planned };
      });
      await this.#verify([route]);
      if (this.#dynamic) await this.#publishOrRestore([route]);
    });
    // Caddy's cached answer (kept across reloads) is at most one refresh old; past that
    // every request is routed by the new one.
    if (this.#dynamic) await sleep(this.#dynamic.refreshMs + 50);
  }

  /** Puts every route with one config load: Caddy reloads in full on each change anyway. */
  async putMany(routes: RouteSpec[]): Promise<void> {
    for (const route of routes) assertRouteSpec(route);
    const ids = new Set(routes.map((r) => r.id));
    if (ids.size !== routes.length)
      throw new InvalidInput('putMany was given the same route id twice', { field: 'id' });
    if (routes.length === 0) return;
    await this.#serialised(async () => {
      await this.#changeRoutes(`put ${routes.length} routes`, true, (current) =>
        current === null
          ? { method: 'PUT', suffix: '', body: mergeRoutes([], routes, this.#dynamic) }
          : { method: 'PATCH', suffix: '', body: mergeRoutes(current, routes, this.#dynamic) },
      );
      await this.#verify(routes);
      if (this.#dynamic) await this.#publishOrRestore(routes);
    });
    if (this.#dynamic) await sleep(this.#dynamic.refreshMs + 50);
  }

  /**
   * Custom domains: changes only the host matcher of route `id`, in one If-Match write of
   * that element with its handler sent back exactly as read, so an upstream switched by a
   * concurrent deploy is never undone. Null when there is no such route.
   */
  async updateHosts(id: string, change: { add?: string[]; remove?: string[] }): Promise<RouteSpec | null> {
    return this.#serialised(async () => {
      let result: RouteSpec | null = null;
      // Dynamic routes do not carry their upstreams; the registry does (and is not changed here).
      const dynamicUpstreams = this.#dynamic ? ((await this.#dynamic.registry.get(upstreamLabel(id))) ?? []) : null;
      await this.#changeRoutes(`update hosts of route ${id}`, false, (routes) => {
        const at = indexOfId(routes ?? [], id);
        result = null;
        if (routes === null || at === -1) return null;
        const element = routes[at];
        const read = routeSpecFromCaddy(element);
        const current = read && dynamicUpstreams ? { ...read, upstreams: dynamicUpstreams } : read;
        if (current === null || !isRecord(element))
          throw new Error(`caddy object ${id} is not a route selfdevop manages: ${JSON.stringify(element)}`);
        const remove = new Set(change.remove ?? []);
        const hosts = current.hosts.filter((h) => !remove.has(h));
        for (const h of change.add ?? []) if (!hosts.includes(h)) hosts.push(h);
        // A route always keeps at least one host (its default host is never removed here).
        const next = hosts.length === 0 ? current : { ...current, hosts };
        assertRouteSpec(next);
        result = next;
        if (isDeepStrictEqual(next.hosts, current.hosts)) return null;
        return { method: 'PATCH', suffix: `/${at}`, body: { ...element, match: [{ host: next.hosts }] } };
      });
      const changed = result as RouteSpec | null;
      if (changed !== null) {
        const readBack = await this.get(id);
        if (!isDeepStrictEqual(readBack?.hosts, changed.hosts))
          throw new Error(`caddy route ${id} read back with hosts ${JSON.stringify(readBack?.hosts)}, not ${JSON.stringify(changed.hosts)}`);
        return readBack;
      }
      return changed;
    });
  }

  /**
   * Custom domains: the certificate Caddy serves for `hostname`, read with a TLS handshake
   * (SNI = hostname) on `tlsAddress`. Under on-demand TLS the handshake itself makes Caddy
   * obtain the certificate when the control API's `ask` allows it. Chain trust is not
   * checked here (the CA may be private); the name, the dates and a real issuer are.
   */
  async certificate(hostname: string): Promise<EdgeCertificate> {
    const address = this.#tlsAddress;
    if (address === undefined) throw new Error('no tlsAddress configured: the Caddy edge cannot read certificates');
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = Number(address.slice(i + 1));
    const missing = (detail: string): EdgeCertificate => ({ status: 'missing', issuer: null, notAfter: null, detail });
    return new Promise<EdgeCertificate>((resolve, reject) => {
      const socket = tls.connect({ host, port, servername: hostname, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      const done = (result: EdgeCertificate | Error) => {
        socket.destroy();
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      socket.setTimeout(this.#tlsTimeoutMs, () =>
        done(missing(`TLS handshake for ${hostname} got no certificate within ${this.#tlsTimeoutMs} ms`)),
      );
      socket.once('secureConnect', () => {
        const cert = socket.getPeerCertificate();
        const names = (cert.subjectaltname ?? '').split(/,\s*/);
        const issuer = [cert.issuer?.CN, cert.issuer?.O].filter(Boolean).join(', ') || null;
        const notAfter = cert.valid_to ? new Date(cert.valid_to).toISOString() : null;
        if (!names.includes(`DNS:${hostname}`)) return done(missing(`the edge serves a certificate for ${cert.subjectaltname ?? 'another name'}, not ${hostname}`));
        if (notAfter !== null && Date.parse(notAfter) <= Date.now()) return done(missing(`the certificate for ${hostname} expired at ${notAfter}`));
        // Caddy's internal CA (self-signed fallback) is not a publicly trusted certificate.
        if (issuer === null || /Caddy Local Authority/i.test(issuer)) return done(missing(`the certificate for ${hostname} is from ${issuer ?? 'no issuer'}, not the ACME CA`));
        done({ status: 'active', issuer, notAfter, detail: null });
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNREFUSED' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT') {
          const error = new Unavailable('caddy', `${address}: ${e.message}`);
          error.cause = e;
          return done(error);
        }
        const alert = /alert ([a-z ]+)/i.exec(e.message)?.[0] ?? e.code ?? e.message;
        done(missing(`the edge has no certificate for ${hostname} (TLS ${alert}): ask refused it or the CA has not issued it yet`));
      });
    });
  }

  async get(id: string): Promise<RouteSpec | null> {
    const path = `/id/${encodeURIComponent(id)}`;
    const res = await this.#request('GET', path);
    if (res.status === 404) return null;
    this.#expect(`GET ${path}`, res, 200);
    let found: unknown = JSON.parse(res.body);
    // /id/ resolves the id to an array position and reads that position in two separate
    // steps; a concurrent insert from another process can shift the array in between.
    if (!isRecord(found) || found['@id'] !== id) {
      const { routes } = await this.#readRoutes();
      const at = indexOfId(routes ?? [], id);
      if (at === -1) return null;
      found = routes?.[at];
    }
    const spec = routeSpecFromCaddy(found);
    if (spec === null)
      throw new Error(
        `caddy object ${id} is not a route selfdevop manages: ${JSON.stringify(found)}`,
      );
    return this.#withUpstreams(spec);
  }

  async remove(id: string): Promise<void> {
    await this.#serialised(async () => {
      await this.#changeRoutes(`remove route ${id}`, false, (routes) => {
        const at = indexOfId(routes ?? [], id);
        // Already gone: removing is idempotent.
        return at === -1 ? null : { method: 'DELETE', suffix: `/${at}` };
      });
      await this.#dynamic?.registry.remove(upstreamLabel(id));
    });
  }

  async list(): Promise<RouteSpec[]> {
    const { routes } = await this.#readRoutes();
    const specs = (routes ?? []).map(routeSpecFromCaddy).filter((r): r is RouteSpec => r !== null);
    return Promise.all(specs.map(async (spec) => (await this.#withUpstreams(spec))!));
  }

  /** Creates the HTTP server (and the http app) when the config does not have them yet. */
  async ensureServer(): Promise<void> {
    const segments = ['apps', 'http', 'servers', this.#server];
    for (let depth = 1; depth <= segments.length; depth += 1) {
      const path = `/config/${segments.slice(0, depth).map(encodeURIComponent).join('/')}`;
      const res = await this.#request('GET', path);
      if (res.status === 200 && res.body.trim() !== 'null') continue;
      if (res.status !== 200 && res.status !== 400 && res.status !== 404)
        throw new CaddyRejected(`GET ${path}`, res.status, res.body);
      if (this.#listen === undefined) {
        throw new Error(
          `caddy has no server ${this.#server} and no listen address was configured to create it`,
        );
      }
      let value: unknown = caddyServer(this.#listen);
      for (const key of segments.slice(depth).reverse()) value = { [key]: value };
      this.#expect(`PUT ${path}`, await this.#request('PUT', path, value), 200);
      return;
    }
  }

  #serialised<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work, work);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads the routes with their ETag, plans one write against that exact array and sends it
   * with If-Match, so a position computed here is still right when Caddy applies it; when
   * another writer got there first (412) it reads and plans again. Positions are used
   * instead of /id/<id> because Caddy resolves an id and applies the change in two steps.
   */
  async #changeRoutes(
    what: string,
    createServer: boolean,
    plan: (routes: unknown[] | null) => RoutesWrite | null,
  ): Promise<void> {
    for (let attempt = 1; attempt <= maxConflicts; attempt += 1) {
      let read = await this.#readRoutes();
      if (read.missingServer) {
        if (!createServer) return;
        await this.ensureServer();
        read = await this.#readRoutes();
      }
      const write = plan(read.routes);
      if (write === null) return;
      const headers: Record<string, string> =
        read.etag === undefined ? {} : { 'If-Match': read.etag };
      const res = await this.#request(
        write.method,
        `${this.#routesPath}${write.suffix}`,
        write.body,
        headers,
      );
      if (res.status === 412) {
        // Jitter, so writers that collided do not collide again in lockstep.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
        continue;
      }
      this.#expect(`${what} (${write.method} ${this.#routesPath}${write.suffix})`, res, 200);
      return;
    }
    throw new Error(
      `caddy routes kept changing under ${what}; gave up after ${maxConflicts} attempts`,
    );
  }

  /**
   * Reads the routes back and checks each is there with the handler as planned. The host
   * list is not compared: a custom domain joining the route (updateHosts, another process)
   * between the write and this read is a legitimate change, not a failed one.
   */
  async #verify(specs: readonly RouteSpec[]): Promise<void> {
    const { routes } = await this.#readRoutes();
    for (const spec of specs) {
      const stored = routes?.[indexOfId(routes, spec.id)];
      const planned = JSON.parse(JSON.stringify(this.#plan(spec))) as { handle: unknown };
      if (!isRecord(stored) || !isDeepStrictEqual(stored.handle, planned.handle)) {
        throw new Error(
          `caddy route ${spec.id} read back differs from what was put: ${JSON.stringify(stored) ?? 'missing'}`,
        );
      }
    }
  }

  async #readRoutes(): Promise<{
    routes: unknown[] | null;
    etag: string | undefined;
    missingServer: boolean;
  }> {
    const res = await this.#request('GET', this.#routesPath);
    // Caddy answers 400 "invalid traversal path" when a parent of the path is missing.
    if (res.status === 400 && /invalid traversal path/.test(res.body))
      return { routes: null, etag: undefined, missingServer: true };
    this.#expect(`GET ${this.#routesPath}`, res, 200);
    const parsed: unknown = JSON.parse(res.body);
    if (parsed !== null && !Array.isArray(parsed))
      throw new Error(`caddy server ${this.#server} routes is not an array: ${res.body}`);
    return { routes: parsed, etag: res.etag, missingServer: false };
  }

  #expect(what: string, res: AdminResponse, status: number): void {
    if (res.status !== status) throw new CaddyRejected(what, res.status, res.body);
  }

  /**
   * Caddy restarts its admin listener on every config load, so a request that lands during
   * another writer's reload can see its connection reset or refused. Every call here is
   * safe to repeat (PATCH and DELETE by id are idempotent, inserts carry If-Match and are
   * read back), so such failures are retried a few times before the edge counts as down.
   */
  async #request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AdminResponse> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#requestOnce(method, path, body, headers);
      } catch (error) {
        const code = (error as { cause?: { code?: unknown } }).cause?.code;
        if (attempt >= maxAttempts || (code !== 'ECONNRESET' && code !== 'ECONNREFUSED'))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** (attempt - 1)));
      }
    }
  }

  // node:http, not fetch: Caddy 2.11's admin refuses requests carrying browser fetch
  // metadata (Sec-Fetch-*), which undici's fetch sends.
  #requestOnce(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AdminResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          protocol: this.#admin.protocol,
          hostname: this.#admin.hostname,
          port: this.#admin.port,
          method,
          path,
          headers: {
            ...headers,
            ...(payload === undefined
              ? {}
              : {
                  'Content-Type': 'application/json',
                  'Content-Length': Buffer.byteLength(payload),
                }),
          },
          timeout: this.#timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const etag = res.headers.etag;
            resolve({
              status: res.statusCode ?? 0,
              etag: typeof etag === 'string' ? etag : undefined,
              body: Buffer.concat(chunks).toString('utf8'),
            });
          });
          res.on('error', (e) => reject(this.#unavailable(e)));
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${path} got no answer within ${this.#timeoutMs} ms`)),
      );
      req.on('error', (e) => reject(this.#unavailable(e)));
      req.end(payload);
    });
  }

  #unavailable(cause: Error): Unavailable {
    const error = new Unavailable('caddy', `${this.#admin.origin}: ${cause.message}`);
    error.cause = cause;
    return error;
  }
}

/** The host an SRV target names: `ip-10-0-0-5.<zone>` is 10.0.0.5, `<host>.<zone>` is host. */
function hostOfSrvTarget(target: string, zone: string): string {
  const name = target.toLowerCase().replace(/\.$/, '');
  const ip = hostOfTarget(name, zone);
  if (ip) return ip;
  const suffix = `.${zone.toLowerCase()}`;
  return name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
}
