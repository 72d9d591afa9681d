/**
 * Plans Caddy JSON for selfdevop's edge routes. Pure: the Caddy adapter sends what these
 * functions return to the admin API and compares what it reads back with them.
 */
import { InvalidInput } from '../errors.ts';
import type { RouteSpec } from '../ports.ts';

/** The cookie Caddy sets to pin a client to one upstream of a sticky route. */
export const stickyCookieName = 'sdo_sticky';

/**
 * How long Caddy keeps trying replicas for one request whose connection to an upstream
 * could not be made. Only a failed dial is retried for every method (the request never
 * reached the app, so it cannot run twice); Caddy retries a request the app saw only for
 * GET. Why: an app whose accept queue overflows under a burst drops SYNs, and the dial
 * times out (busybox httpd listens with a backlog of 9: bench:scale's scale-up saw
 * "dial tcp …: i/o timeout" 502s on the one replica while the engine started the new
 * ones); past Caddy's 3 s dial timeout the request gets a second dial instead of a 502.
 */
export const dialRetryDuration = '5s';

/** How long an upstream that failed requests is skipped (passive health checking). */
export const defaultFailDuration = '10s';
export const defaultMaxFails = 3;

export type CaddySelectionPolicy =
  | { policy: 'round_robin' }
  | { policy: 'least_conn' }
  | { policy: 'cookie'; name: string; fallback?: { policy: 'round_robin' | 'least_conn' } };

export interface CaddyReverseProxy {
  handler: 'reverse_proxy';
  upstreams?: { dial: string }[];
  dynamic_upstreams?: {
    source: 'srv';
    name: string;
    refresh: string;
    grace_period: string;
    resolver: { addresses: string[] };
  };
  transport?: { protocol: 'http'; resolver: { addresses: string[] } };
  stream_close_delay?: string;
  load_balancing: { selection_policy: CaddySelectionPolicy; try_duration?: string };
  health_checks?: { passive: { fail_duration: string; max_fails: number } };
  /** The request id goes back to the client with the app's answer. */
  headers?: { response: { set: Record<string, string[]> } };
}

/** The header that follows one request from the edge through the app to the logs. */
export const requestIdHeader = 'X-Request-Id';

/**
 * Gives a request without an `X-Request-Id` one (Caddy's per-request UUID) before it is
 * proxied: the app receives it, the edge's access log has it (`resp_headers` and `uuid`),
 * and the client gets it back, so one request can be followed end to end. A client's own
 * id is kept as it is, so a caller's id flows through.
 */
export interface CaddyRequestId {
  handler: 'subroute';
  routes: [
    {
      match: [{ not: [{ header: Record<string, string[]> }] }];
      handle: [{ handler: 'headers'; request: { set: Record<string, string[]> } }];
    },
  ];
}

export function caddyRequestId(): CaddyRequestId {
  return {
    handler: 'subroute',
    routes: [
      {
        match: [{ not: [{ header: { [requestIdHeader]: ['*'] } }] }],
        handle: [
          { handler: 'headers', request: { set: { [requestIdHeader]: ['{http.request.uuid}'] } } },
        ],
      },
    ],
  };
}

export interface CaddyRoute {
  '@id': string;
  match: [{ host: string[] }];
  handle: [CaddyRequestId, CaddyReverseProxy];
  terminal: true;
}

export interface CaddyServer {
  listen: string[];
  routes: unknown[];
  /** Access logging; `{}` logs every request to Caddy's default logger. */
  logs?: Record<string, never>;
  automatic_https?: { disable: boolean } | { disable_redirects: boolean };
}

export interface CaddyBaseOptions {
  /** host:port of the admin API; keep it on loopback or a private network. */
  adminListen: string;
  /** Host headers the admin API accepts (Caddy's `admin.origins`), when it is reached by name. */
  adminOrigins?: string[];
  /** Listen address for plain HTTP, e.g. `:80` or `127.0.0.1:8080`. */
  httpListen: string;
  /** Listen address for HTTPS; without it automatic HTTPS is off (plain-HTTP edges, tests). */
  httpsListen?: string;
  serverName: string;
  /** Where Caddy keeps certificates and locks; Caddy's default data dir when absent. */
  storageRoot?: string;
  /**
   * Custom domains: on-demand TLS gated by the control API's `ask` endpoint. Without
   * httpsListen it is configured but idle until the server listens for HTTPS.
   */
  onDemandTls?: CaddyOnDemandTlsOptions;
  /** Routes the server starts with (the control route of a self-hosted edge). */
  routes?: unknown[];
}

/** Custom domains' certificates: obtained by Caddy at the first handshake, if `askUrl` says yes. */
export interface CaddyOnDemandTlsOptions {
  /** The control API's `GET /api/domains/ask`; Caddy appends `?domain=<host>`. */
  askUrl: string;
  /** ACME directory; Let's Encrypt's when absent. */
  acmeCa?: string;
  /** PEM files Caddy trusts for the ACME server's own HTTPS (a private or test CA). */
  trustedRootsPemFiles?: string[];
  email?: string;
}

/**
 * The `apps.tls` of an edge with custom domains: one automation policy, on-demand, with the
 * ACME issuer; Caddy calls `askUrl` before every certificate it would obtain, so only
 * hostnames the control plane verified ever reach the CA.
 */
export function caddyOnDemandTls(options: CaddyOnDemandTlsOptions): Record<string, unknown> {
  const issuer: Record<string, unknown> = { module: 'acme' };
  if (options.acmeCa !== undefined) issuer.ca = options.acmeCa;
  if (options.trustedRootsPemFiles !== undefined)
    issuer.trusted_roots_pem_files = options.trustedRootsPemFiles;
  if (options.email !== undefined) issuer.email = options.email;
  return {
    automation: {
      policies: [{ issuers: [issuer], on_demand: true }],
      on_demand: { permission: { module: 'http', endpoint: options.askUrl } },
    },
  };
}

const idPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;
const hostLabel = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const hostPattern = new RegExp(`^(?:\\*\\.)?${hostLabel}(?:\\.${hostLabel})*$`);
const upstreamPattern = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;
const maxDrainSeconds = 7 * 24 * 3600;

/** Throws InvalidInput naming the first field of `spec` Caddy could not be given safely. */
export function assertRouteSpec(spec: RouteSpec): void {
  if (typeof spec.id !== 'string' || !idPattern.test(spec.id)) {
    throw new InvalidInput(
      `route id ${JSON.stringify(spec.id)} must be 1-200 of A-Z a-z 0-9 . _ : - and start alphanumeric`,
      { field: 'id' },
    );
  }
  if (!Array.isArray(spec.hosts) || spec.hosts.length === 0) {
    throw new InvalidInput(`route ${spec.id} needs at least one host`, { field: 'hosts' });
  }
  for (const host of spec.hosts) {
    if (typeof host !== 'string' || host.length > 253 || !hostPattern.test(host)) {
      throw new InvalidInput(`route ${spec.id} host ${JSON.stringify(host)} is not a hostname`, {
        field: 'hosts',
      });
    }
  }
  if (new Set(spec.hosts).size !== spec.hosts.length) {
    throw new InvalidInput(`route ${spec.id} lists a host twice`, { field: 'hosts' });
  }
  if (!Array.isArray(spec.upstreams) || spec.upstreams.length === 0) {
    throw new InvalidInput(`route ${spec.id} needs at least one upstream`, { field: 'upstreams' });
  }
  for (const upstream of spec.upstreams) {
    const port = typeof upstream === 'string' ? upstreamPattern.exec(upstream)?.[1] : undefined;
    if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
      throw new InvalidInput(
        `route ${spec.id} upstream ${JSON.stringify(upstream)} is not host:port`,
        { field: 'upstreams' },
      );
    }
  }
  if (new Set(spec.upstreams).size !== spec.upstreams.length) {
    throw new InvalidInput(`route ${spec.id} lists an upstream twice`, { field: 'upstreams' });
  }
  if (typeof spec.sticky !== 'boolean') {
    throw new InvalidInput(`route ${spec.id} sticky must be true or false`, { field: 'sticky' });
  }
  if (
    !Number.isInteger(spec.drainSeconds) ||
    spec.drainSeconds < 0 ||
    spec.drainSeconds > maxDrainSeconds
  ) {
    throw new InvalidInput(
      `route ${spec.id} drainSeconds must be a whole number from 0 to ${maxDrainSeconds}`,
      { field: 'drainSeconds' },
    );
  }
}

/**
 * Upstreams looked up at request time instead of written into the route: Caddy asks the
 * control plane's DNS server (`resolver`, host:port) for `SRV _<label>._tcp.<zone>` at most
 * every `refreshMs`, so a blue/green switch is a DNS answer that changes, not a reload.
 */
export interface DynamicUpstreamsPlan {
  zone: string;
  resolver: string;
  refreshMs: number;
}

/**
 * How long Caddy serves its last good answer after a lookup fails before it asks again. A
 * failure does not drop the route: each failed retry keeps the last answer for another
 * period, so the edge rides out a worker that is down for as long as it is down. It is
 * short because Caddy marks the stale answer fresh for this whole period, and a lookup also
 * fails when the request that started it is cancelled: at 1 h (as before) one client
 * hanging up mid-lookup froze a route's upstreams for an hour, so later switches were
 * ignored and retired replicas kept getting traffic (found by bench:scale).
 */
export const dynamicUpstreamsGracePeriod = '2s';

/** A route id as one DNS label: ids are longer than 63 characters and carry underscores. */
export function upstreamLabel(routeId: string): string {
  const slug = routeId
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (slug.length <= 63 && slug.length > 0) return slug;
  // Too long: keep the distinctive tail (ids end in their random part) and a checksum of the whole.
  let h = 0;
  for (const ch of routeId) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return `${slug.slice(-54)}-${h.toString(36).padStart(7, '0')}`.replace(/^-+/, '');
}

export const srvNameOf = (label: string, zone: string): string =>
  `_${label}._tcp.${zone.toLowerCase()}`;

/** The route label a `SRV _<label>._tcp.<zone>` question asks for, or null for another name. */
export function labelOfSrvName(name: string, zone: string): string | null {
  const m = /^_([a-z0-9-]{1,63})\._tcp\.(.+)$/.exec(name.toLowerCase().replace(/\.$/, ''));
  return m && m[2] === zone.toLowerCase() ? m[1]! : null;
}

/** The IPv4 address an SRV target `ip-10-0-0-5.<zone>` stands for, or null. */
export function hostOfTarget(name: string, zone: string): string | null {
  const m = /^ip-(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})\.(.+)$/.exec(
    name.toLowerCase().replace(/\.$/, ''),
  );
  if (!m || m[5] !== zone.toLowerCase()) return null;
  const parts = m.slice(1, 5).map(Number);
  return parts.every((p) => p <= 255) ? parts.join('.') : null;
}

/**
 * The Caddy route for `spec`, addressable at `/id/<spec.id>`. With `dynamic`, the route
 * names its upstreams by DNS and does not change when they do.
 * @example caddyRouteFromSpec({ id: 'svc_1', hosts: ['a.example'], upstreams: ['10.0.0.5:32768'], sticky: false, drainSeconds: 600 })
 */
export function caddyRouteFromSpec(spec: RouteSpec, dynamic?: DynamicUpstreamsPlan): CaddyRoute {
  const resolver = dynamic ? { addresses: [`udp/${dynamic.resolver}`] } : undefined;
  const proxy: CaddyReverseProxy = {
    handler: 'reverse_proxy',
    ...(dynamic && resolver
      ? {
          dynamic_upstreams: {
            source: 'srv' as const,
            name: srvNameOf(upstreamLabel(spec.id), dynamic.zone),
            refresh: `${dynamic.refreshMs}ms`,
            grace_period: dynamicUpstreamsGracePeriod,
            resolver,
          },
          // SRV targets are names in the same zone; the transport resolves them there too.
          transport: { protocol: 'http' as const, resolver },
        }
      : { upstreams: spec.upstreams.map((dial) => ({ dial })) }),
    load_balancing: {
      // A sticky client without the cookie yet, or whose pinned upstream left the set (a
      // replica removed, drained or lost), is placed by the cookie policy's `fallback` and
      // pinned again by the new cookie Caddy sets with that answer. Caddy's fallback is
      // `random` unless set (CookieHashSelection.Provision in
      // modules/caddyhttp/reverseproxy/selectionpolicies.go), so it is always set: to the
      // route's own balancing, which keeps new sessions spread as without stickiness.
      selection_policy: spec.sticky
        ? {
            policy: 'cookie',
            name: stickyCookieName,
            fallback: { policy: spec.loadBalancing ?? 'round_robin' },
          }
        : { policy: spec.loadBalancing ?? 'round_robin' },
      try_duration: dialRetryDuration,
    },
    headers: {
      response: { set: { [requestIdHeader]: [`{http.request.header.${requestIdHeader}}`] } },
    },
  };
  // Every config change, even to another route, is a full reload; without a close delay
  // Caddy cuts every proxied WebSocket at once. With it, old streams live out the window.
  if (spec.drainSeconds > 0) proxy.stream_close_delay = `${spec.drainSeconds}s`;
  // With a single upstream there is nothing to fail over to: marking it down would turn
  // one failed request into fail_duration of 503s, so passive checks need two or more.
  if (!dynamic && spec.upstreams.length > 1) {
    proxy.health_checks = {
      passive: { fail_duration: defaultFailDuration, max_fails: defaultMaxFails },
    };
  }
  return {
    '@id': spec.id,
    match: [{ host: [...spec.hosts] }],
    handle: [caddyRequestId(), proxy],
    terminal: true,
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Caddy durations as seconds: `"90s"`, `"10m"`, `"1h"`, `"1500ms"` or integer nanoseconds. */
export function durationSeconds(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return Math.round(value / 1e9);
  if (typeof value !== 'string') return null;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!m) return null;
  const scale = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * scale);
}

/**
 * The RouteSpec a Caddy route stands for, or null when the JSON is not shaped like the
 * routes caddyRouteFromSpec plans (routes someone else put in the same server).
 */
export function routeSpecFromCaddy(json: unknown): RouteSpec | null {
  if (!isRecord(json) || typeof json['@id'] !== 'string') return null;
  const match = json.match;
  const handle = json.handle;
  // One handler (routes planned before request ids) or the request id, then the proxy.
  if (!Array.isArray(match) || match.length !== 1 || !Array.isArray(handle)) return null;
  if (handle.length !== 1 && handle.length !== 2) return null;
  if (handle.length === 2 && (!isRecord(handle[0]) || handle[0].handler !== 'subroute'))
    return null;
  const [matcher] = match;
  const proxy = handle.at(-1);
  if (!isRecord(matcher) || !isStringArray(matcher.host) || Object.keys(matcher).length !== 1)
    return null;
  if (!isRecord(proxy) || proxy.handler !== 'reverse_proxy') return null;
  const dynamic = isRecord(proxy.dynamic_upstreams);
  if (!dynamic && !Array.isArray(proxy.upstreams)) return null;
  // Dynamic upstreams are not in the route: the caller reads them from the registry.
  const upstreams: string[] = [];
  for (const u of dynamic ? [] : (proxy.upstreams as unknown[])) {
    if (!isRecord(u) || typeof u.dial !== 'string') return null;
    upstreams.push(u.dial);
  }
  const policy =
    isRecord(proxy.load_balancing) && isRecord(proxy.load_balancing.selection_policy)
      ? proxy.load_balancing.selection_policy
      : undefined;
  const drainSeconds =
    proxy.stream_close_delay === undefined ? 0 : durationSeconds(proxy.stream_close_delay);
  if (drainSeconds === null) return null;
  return {
    id: json['@id'],
    hosts: [...matcher.host],
    upstreams,
    sticky: policy?.policy === 'cookie',
    drainSeconds,
    ...(policy?.policy === 'least_conn' ||
    (isRecord(policy?.fallback) && policy.fallback.policy === 'least_conn')
      ? { loadBalancing: 'least_conn' as const }
      : {}),
  };
}

/**
 * Caddy tries a server's routes in order and the first match wins, so a catch-all must stay
 * behind wildcard hosts, and those behind exact hosts. Lower ranks go first.
 */
export function routeRank(route: unknown): 0 | 1 | 2 {
  if (!isRecord(route) || !Array.isArray(route.match) || route.match.length === 0) return 2;
  const hosts = route.match.flatMap((m) => (isRecord(m) && isStringArray(m.host) ? m.host : []));
  if (hosts.length === 0) return 2;
  return hosts.some((h) => h.includes('*')) ? 1 : 0;
}

/** Where a new route goes among `routes`: before the first route of its rank or lower. */
export function routeInsertIndex(routes: readonly unknown[], route: unknown): number {
  const rank = routeRank(route);
  const index = routes.findIndex((r) => routeRank(r) >= rank);
  return index === -1 ? routes.length : index;
}

/**
 * The routes array after putting every spec: a route whose `@id` is already there is
 * replaced where it stands, a new one is inserted by rank. Other routes are kept as they are.
 */
export function mergeRoutes(
  routes: readonly unknown[],
  specs: readonly RouteSpec[],
  dynamic?: DynamicUpstreamsPlan,
): unknown[] {
  const merged = [...routes];
  for (const spec of specs) {
    const route = caddyRouteFromSpec(spec, dynamic);
    const at = merged.findIndex((r) => isRecord(r) && r['@id'] === spec.id);
    if (at === -1) merged.splice(routeInsertIndex(merged, route), 0, route);
    else merged[at] = route;
  }
  return merged;
}

function portOf(listen: string): number | undefined {
  const port = Number(listen.slice(listen.lastIndexOf(':') + 1));
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** The one HTTP server selfdevop's routes live in, with no routes yet. */
export function caddyServer(
  options: Pick<CaddyBaseOptions, 'httpListen' | 'httpsListen'>,
): CaddyServer {
  // `logs: {}` turns on the access log (Caddy's default logger, stderr as JSON): each
  // request with its X-Request-Id (`resp_headers`, and `uuid` when the edge made it).
  if (options.httpsListen === undefined) {
    return {
      listen: [options.httpListen],
      routes: [],
      automatic_https: { disable: true },
      logs: {},
    };
  }
  return { listen: [options.httpListen, options.httpsListen], routes: [], logs: {} };
}

/** A whole Caddy config to start from: admin API, storage and one empty HTTP server. */
export function caddyBaseConfig(options: CaddyBaseOptions): Record<string, unknown> {
  const server = caddyServer(options);
  if (options.routes !== undefined) server.routes = [...options.routes];
  // Per-host request metrics (count, latency, status) for the charts and the alert rules;
  // Caddy labels hosts outside its routes' host matchers as one "_other", so the series stay
  // bounded by the routes, never by what clients put in Host.
  const http: Record<string, unknown> = {
    servers: { [options.serverName]: server },
    metrics: { per_host: true },
  };
  if (options.httpsListen !== undefined) {
    // Caddy's ACME HTTP challenge and HTTP->HTTPS redirects use these, not the listen list.
    const httpPort = portOf(options.httpListen);
    const httpsPort = portOf(options.httpsListen);
    if (httpPort !== undefined) http.http_port = httpPort;
    if (httpsPort !== undefined) http.https_port = httpsPort;
  }
  const apps: Record<string, unknown> = { http };
  if (options.onDemandTls !== undefined) {
    apps.tls = caddyOnDemandTls(options.onDemandTls);
    // Certificates are only ever obtained on demand; plain HTTP keeps serving every host
    // (default hosts have no certificate of their own), so no HTTP->HTTPS redirects.
    if (options.httpsListen !== undefined) server.automatic_https = { disable_redirects: true };
    // Never let Caddy install its local CA into the machine's trust store.
    apps.pki = { certificate_authorities: { local: { install_trust: false } } };
  }
  const admin: Record<string, unknown> = { listen: options.adminListen };
  if (options.adminOrigins !== undefined) admin.origins = [...options.adminOrigins];
  const config: Record<string, unknown> = { admin, apps };
  if (options.storageRoot !== undefined)
    config.storage = { module: 'file_system', root: options.storageRoot };
  return config;
}

/**
 * The routes array after putting back what is missing: each spec without a route is
 * inserted by rank, and a route that is there gains the spec's hosts it lacks, its handler
 * kept exactly as it is (a deploy may have switched its upstream since the specs were read).
 * Null when nothing is missing.
 */
export function restoreRoutes(
  routes: readonly unknown[],
  specs: readonly RouteSpec[],
  dynamic?: DynamicUpstreamsPlan,
): { routes: unknown[]; restored: { routes: string[]; hosts: string[] } } | null {
  const next = [...routes];
  const restored = { routes: [] as string[], hosts: [] as string[] };
  for (const spec of specs) {
    const at = next.findIndex((r) => isRecord(r) && r['@id'] === spec.id);
    if (at === -1) {
      const route = caddyRouteFromSpec(spec, dynamic);
      next.splice(routeInsertIndex(next, route), 0, route);
      restored.routes.push(spec.id);
      continue;
    }
    const current = routeSpecFromCaddy(next[at]);
    // Not shaped like a selfdevop route: someone else's; leave it alone.
    if (current === null) continue;
    const missing = spec.hosts.filter((h) => !current.hosts.includes(h));
    if (missing.length === 0) continue;
    next[at] = {
      ...(next[at] as Record<string, unknown>),
      match: [{ host: [...current.hosts, ...missing] }],
    };
    restored.hosts.push(...missing.map((h) => `${h} on ${spec.id}`));
  }
  return restored.routes.length === 0 && restored.hosts.length === 0
    ? null
    : { routes: next, restored };
}

/** An upstream address as Caddy reports it, as the host:port selfdevop routes to. */
function upstreamOfCaddyAddress(address: string, zone: string | undefined): string {
  // A network prefix (`tcp/`) is not part of what selfdevop routes to.
  const bare = address.includes('/') ? address.slice(address.lastIndexOf('/') + 1) : address;
  const i = bare.lastIndexOf(':');
  if (i <= 0) return bare;
  let host = bare.slice(0, i).replace(/\.$/, '');
  const port = bare.slice(i + 1);
  if (zone !== undefined) {
    const z = zone.toLowerCase().replace(/\.$/, '');
    const lower = host.toLowerCase();
    if (lower.endsWith(`.${z}`)) host = hostOfTarget(lower, z) ?? host.slice(0, -(z.length + 1));
  }
  return `${host}:${port}`;
}

/**
 * Requests in flight to each of `upstreams` (host:port) from Caddy's admin answer to
 * `GET /reverse_proxy/upstreams` (`[{address, num_requests, fails}]`); an upstream Caddy does
 * not list counts 0. With dynamic upstreams (`zone`) Caddy names an upstream by its SRV
 * target (`ip-10-0-0-5.<zone>.:port`), which is read back to host:port; Caddy may list one
 * address twice (its in-flight table and its dynamic hosts), so the larger count wins.
 * Throws when the answer is not that list (an edge too old to report it).
 */
export function inFlightFromCaddy(
  json: unknown,
  upstreams: readonly string[],
  zone?: string,
): Record<string, number> {
  if (!Array.isArray(json))
    throw new Error(`caddy's /reverse_proxy/upstreams is not a list: ${JSON.stringify(json)}`);
  const out: Record<string, number> = Object.fromEntries(upstreams.map((u) => [u, 0]));
  for (const entry of json) {
    if (!isRecord(entry) || typeof entry.address !== 'string') continue;
    const count = typeof entry.num_requests === 'number' ? entry.num_requests : 0;
    const upstream = upstreamOfCaddyAddress(entry.address, zone);
    if (Object.hasOwn(out, upstream)) out[upstream] = Math.max(out[upstream]!, count);
  }
  return out;
}
