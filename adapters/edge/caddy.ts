/**
 * EdgeRouter on Caddy's admin API: route writes. Routes carry `@id`s and live in one HTTP
 * server of the Caddy config. Every change is a full Caddy reload, so changes are serialised
 * in-process and bulk changes go in one load. Writes address one position of the routes
 * array and carry Caddy's `If-Match`, so two control-plane processes cannot clobber each
 * other's routes; every write is read back before it counts as done.
 *
 * Siblings, one concern each: caddy-admin.ts (the admin transport), caddy-upstreams.ts
 * (dynamic upstreams), caddy-certificate.ts (the certificate probe), caddy-control.ts (the
 * control route and edge server settings).
 */
import { isDeepStrictEqual } from 'node:util';
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import type {
  EdgeCertificate,
  EdgeHostCounters,
  EdgeRestored,
  EdgeRouter,
  RouteSpec,
} from '../../core/ports.ts';
import {
  assertRouteSpec,
  type DynamicUpstreamsPlan,
  caddyRouteFromSpec,
  caddyServer,
  inFlightFromCaddy,
  mergeRoutes,
  restoreRoutes,
  routeInsertIndex,
  routeSpecFromCaddy,
} from '../../core/edge/caddy-route.ts';
import { CaddyAdmin, CaddyRejected } from './caddy-admin.ts';
import { readEdgeCertificate } from './caddy-certificate.ts';
import { caddyTrafficFromMetrics } from './caddy-traffic.ts';
import { reconcileControl, type ControlSettings } from './caddy-control.ts';
import { CaddyUpstreams, type DynamicUpstreams } from './caddy-upstreams.ts';

export { CaddyRejected } from './caddy-admin.ts';

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
  dynamicUpstreams?: DynamicUpstreams;
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

const defaultServer = 'selfdevop';
const defaultTimeoutMs = 30_000;
// Bounded retries of a write another writer beat (412).
const maxConflicts = 12;

export class CaddyEdgeRouter implements EdgeRouter {
  /** The admin transport this router writes through; tests may read Caddy with it. */
  readonly admin: CaddyAdmin;
  readonly #server: string;
  readonly #listen: CaddyEdgeRouterOptions['listen'];
  readonly #tlsAddress: string | undefined;
  readonly #tlsTimeoutMs: number;
  readonly #dynamic: CaddyUpstreams | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: CaddyEdgeRouterOptions) {
    this.admin = new CaddyAdmin(options.adminUrl, {
      timeoutMs: options.timeoutMs ?? defaultTimeoutMs,
    });
    this.#server = options.server ?? defaultServer;
    this.#listen = options.listen;
    this.#tlsAddress = options.tlsAddress;
    this.#tlsTimeoutMs = options.tlsTimeoutMs ?? 20_000;
    this.#dynamic = options.dynamicUpstreams && new CaddyUpstreams(options.dynamicUpstreams);
  }

  get #dynamicPlan(): DynamicUpstreamsPlan | undefined {
    return this.#dynamic?.plan;
  }

  #plan(spec: RouteSpec) {
    return caddyRouteFromSpec(spec, this.#dynamicPlan);
  }

  /** With dynamic upstreams a route read from Caddy names none: they are in the registry. */
  async #withUpstreams(spec: RouteSpec | null): Promise<RouteSpec | null> {
    if (!spec || !this.#dynamic) return spec;
    return this.#dynamic.withUpstreams(spec);
  }

  get #routesPath(): string {
    return `/config/apps/http/servers/${encodeURIComponent(this.#server)}/routes`;
  }

  async ping(): Promise<void> {
    const res = await this.admin.request('GET', '/config/');
    if (res.status !== 200)
      throw new Unavailable('caddy', `${this.admin.origin}: GET /config/ answered ${res.status}`);
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
      if (this.#dynamic) await this.#dynamic.publishOrRestore([route]);
    });
    // Caddy's cached answer (kept across reloads) is at most one refresh old; past that
    // every request is routed by the new one.
    if (this.#dynamic) await this.#dynamic.settle();
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
          ? { method: 'PUT', suffix: '', body: mergeRoutes([], routes, this.#dynamicPlan) }
          : { method: 'PATCH', suffix: '', body: mergeRoutes(current, routes, this.#dynamicPlan) },
      );
      await this.#verify(routes);
      if (this.#dynamic) await this.#dynamic.publishOrRestore(routes);
    });
    if (this.#dynamic) await this.#dynamic.settle();
  }

  /**
   * Custom domains: changes only the host matcher of route `id`, in one If-Match write of
   * that element with its handler sent back exactly as read, so an upstream switched by a
   * concurrent deploy is never undone. Null when there is no such route.
   */
  async updateHosts(
    id: string,
    change: { add?: string[]; remove?: string[] },
  ): Promise<RouteSpec | null> {
    return this.#serialised(async () => {
      let result: RouteSpec | null = null;
      // Dynamic routes do not carry their upstreams; the registry does (and is not changed here).
      const dynamicUpstreams = this.#dynamic ? await this.#dynamic.of(id) : null;
      await this.#changeRoutes(`update hosts of route ${id}`, false, (routes) => {
        const at = indexOfId(routes ?? [], id);
        result = null;
        if (routes === null || at === -1) return null;
        const element = routes[at];
        const read = routeSpecFromCaddy(element);
        const current = read && dynamicUpstreams ? { ...read, upstreams: dynamicUpstreams } : read;
        if (current === null || !isRecord(element))
          throw new Error(
            `caddy object ${id} is not a route selfdevop manages: ${JSON.stringify(element)}`,
          );
        const remove = new Set(change.remove ?? []);
        const hosts = current.hosts.filter((h) => !remove.has(h));
        for (const h of change.add ?? []) if (!hosts.includes(h)) hosts.push(h);
        // A route always keeps at least one host (its default host is never removed here).
        const next = hosts.length === 0 ? current : { ...current, hosts };
        assertRouteSpec(next);
        result = next;
        if (isDeepStrictEqual(next.hosts, current.hosts)) return null;
        return {
          method: 'PATCH',
          suffix: `/${at}`,
          body: { ...element, match: [{ host: next.hosts }] },
        };
      });
      const changed = result as RouteSpec | null;
      if (changed !== null) {
        const readBack = await this.get(id);
        if (!isDeepStrictEqual(readBack?.hosts, changed.hosts))
          throw new Error(
            `caddy route ${id} read back with hosts ${JSON.stringify(readBack?.hosts)}, not ${JSON.stringify(changed.hosts)}`,
          );
        return readBack;
      }
      return changed;
    });
  }

  /** Custom domains: the certificate Caddy serves for `hostname` (caddy-certificate.ts). */
  async certificate(hostname: string): Promise<EdgeCertificate> {
    const address = this.#tlsAddress;
    if (address === undefined)
      throw new Error('no tlsAddress configured: the Caddy edge cannot read certificates');
    return readEdgeCertificate(address, hostname, this.#tlsTimeoutMs);
  }

  async get(id: string): Promise<RouteSpec | null> {
    const path = `/id/${encodeURIComponent(id)}`;
    const res = await this.admin.request('GET', path);
    if (res.status === 404) return null;
    this.admin.expect(`GET ${path}`, res, 200);
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
      await this.#dynamic?.remove(id);
    });
  }

  /**
   * Caddy's own count of requests in flight per upstream (`GET /reverse_proxy/upstreams`,
   * which lists dynamic upstreams by their SRV target), read once no request can still pick
   * an upstream a put of this router dropped.
   */
  async inFlight(upstreams: readonly string[]): Promise<Record<string, number>> {
    await this.#dynamic?.quiet();
    const res = await this.admin.request('GET', '/reverse_proxy/upstreams');
    this.admin.expect('GET /reverse_proxy/upstreams', res, 200);
    return inFlightFromCaddy(JSON.parse(res.body), upstreams, this.#dynamic?.plan.zone);
  }

  /** Caddy's per-host request counters of this server, from the admin API's `/metrics`. */
  async traffic(): Promise<EdgeHostCounters[]> {
    const res = await this.admin.request('GET', '/metrics');
    this.admin.expect('GET /metrics', res, 200);
    return caddyTrafficFromMetrics(res.body, this.#server);
  }

  async list(): Promise<RouteSpec[]> {
    const { routes } = await this.#readRoutes();
    const specs = (routes ?? []).map(routeSpecFromCaddy).filter((r): r is RouteSpec => r !== null);
    return Promise.all(specs.map(async (spec) => (await this.#withUpstreams(spec))!));
  }

  /**
   * Puts back, in one config load, every route of `routes` the edge lacks and every host a
   * route lacks (core/edge/live-routes.ts plans them from the database). Routes that are
   * there keep their handler, so a deploy that switched since the database was read stands.
   */
  async restore(routes: RouteSpec[]): Promise<EdgeRestored> {
    for (const route of routes) assertRouteSpec(route);
    return this.#serialised(async () => {
      // Upstreams first: a route put back is never without its upstreams, even for a moment.
      await this.#dynamic?.fillMissing(routes);
      let restored: EdgeRestored = { routes: [], hosts: [] };
      await this.#changeRoutes(`restore ${routes.length} routes`, true, (current) => {
        const plan = restoreRoutes(current ?? [], routes, this.#dynamicPlan);
        restored = plan?.restored ?? { routes: [], hosts: [] };
        if (plan === null) return null;
        return { method: current === null ? 'PUT' : 'PATCH', suffix: '', body: plan.routes };
      });
      await this.#verify(routes.filter((r) => restored.routes.includes(r.id)));
      return restored;
    });
  }

  /**
   * Makes the control route (dashboard and API) and the edge server's settings match the
   * configuration, leaving every app route where it is (caddy-control.ts). Resolves to what
   * changed, for the log.
   */
  async reconcileControl(settings: ControlSettings): Promise<string[]> {
    return this.#serialised(() => reconcileControl(this.admin, this.#server, settings));
  }

  /** Creates the HTTP server (and the http app) when the config does not have them yet. */
  async ensureServer(): Promise<void> {
    const segments = ['apps', 'http', 'servers', this.#server];
    for (let depth = 1; depth <= segments.length; depth += 1) {
      const path = `/config/${segments.slice(0, depth).map(encodeURIComponent).join('/')}`;
      const res = await this.admin.request('GET', path);
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
      this.admin.expect(`PUT ${path}`, await this.admin.request('PUT', path, value), 200);
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
      const res = await this.admin.request(
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
      this.admin.expect(`${what} (${write.method} ${this.#routesPath}${write.suffix})`, res, 200);
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
    const res = await this.admin.request('GET', this.#routesPath);
    // Caddy answers 400 "invalid traversal path" when a parent of the path is missing.
    if (res.status === 400 && /invalid traversal path/.test(res.body))
      return { routes: null, etag: undefined, missingServer: true };
    this.admin.expect(`GET ${this.#routesPath}`, res, 200);
    const parsed: unknown = JSON.parse(res.body);
    if (parsed !== null && !Array.isArray(parsed))
      throw new Error(`caddy server ${this.#server} routes is not an array: ${res.body}`);
    return { routes: parsed, etag: res.etag, missingServer: false };
  }
}
