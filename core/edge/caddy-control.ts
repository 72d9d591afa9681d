/**
 * Plans the parts of a self-hosted edge that are not tenant routes: the control route
 * (dashboard and API), the edge server's listen addresses and automatic HTTPS, the TLS
 * policy of the control domain, and the whole base config the Compose stack ships. Pure:
 * adapters/edge/caddy-control.ts applies these, scripts/edge-base-config.ts writes the last.
 */
import { caddyBaseConfig } from './caddy-route.ts';

export const controlRouteId = 'selfdevop-control';
/** The automation policy that keeps the control domain's certificate out of on-demand TLS. */
export const controlTlsPolicyId = 'selfdevop-control-tls';

type Json = Record<string, unknown>;

/** The route that sends the dashboard and API to the control API: by host, or catch-all. */
export function controlRoute(domain: string | undefined, upstream: string): Json {
  const proxy = { handler: 'reverse_proxy', upstreams: [{ dial: upstream }] };
  if (!domain) return { '@id': controlRouteId, handle: [proxy], terminal: true };
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
    '@id': controlRouteId,
    match: [{ host: [domain] }],
    handle: [{ handler: 'subroute', routes: [redirect, { handle: [proxy] }] }],
    terminal: true,
  };
}

/** Where the edge server listens: plain HTTP, and HTTPS once a control domain is set. */
export interface EdgeListen {
  http: string;
  https: string;
}

export const defaultEdgeListen: EdgeListen = { http: ':80', https: ':443' };

/**
 * Listen addresses and automatic HTTPS of the edge server. It listens for HTTPS when a
 * control domain is set or when it serves custom domains (`https`: on-demand TLS is
 * configured), and never redirects HTTP by itself: app default hosts have no certificate.
 */
export function edgeServerSettings(
  domain: string | undefined,
  listen: EdgeListen = defaultEdgeListen,
  https: boolean = domain !== undefined,
): {
  listen: string[];
  automatic_https: Json;
} {
  return https
    ? { listen: [listen.http, listen.https], automatic_https: { disable_redirects: true } }
    : { listen: [listen.http], automatic_https: { disable: true } };
}

/** True when the TLS automation policies obtain certificates on demand (custom domains). */
export function hasOnDemandTls(policies: unknown): boolean {
  return Array.isArray(policies) && policies.some((p) => isRecord(p) && p.on_demand === true);
}

/**
 * The routes array with the control route planned: a host route first, the catch-all last,
 * behind every app route. Every other route stays as it is, in its order.
 */
export function withControlRoute(routes: readonly unknown[], route: Json): unknown[] {
  const others = routes.filter((r) => !(isRecord(r) && r['@id'] === controlRouteId));
  return route.match === undefined ? [...others, route] : [route, ...others];
}

/**
 * The TLS automation policies with the control domain's own policy first. Caddy applies the
 * first policy matching a name; without this one the catch-all on-demand policy would take
 * the control domain too, and the ask endpoint (custom domains only) would refuse it.
 */
export function withControlTlsPolicy(
  policies: readonly unknown[],
  domain: string | undefined,
): unknown[] {
  const others = policies.filter((p) => !(isRecord(p) && p['@id'] === controlTlsPolicyId));
  return domain ? [{ '@id': controlTlsPolicyId, subjects: [domain] }, ...others] : others;
}

const isRecord = (v: unknown): v is Json =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where the Compose stack's Caddy reaches the control API. */
export const composeControlUpstream = 'api:3000';

/**
 * The Caddy config `selfhost/images/caddy/caddy.json` ships, used on the edge's very first
 * start: the admin API on the Compose network, one HTTP and HTTPS server with the catch-all
 * control route, and on-demand TLS for custom domains from the ACME directory in the
 * container's ACME_CA, gated by the API's `ask` endpoint. The worker reconciles the control
 * route and server settings with SELFDEVOP_DOMAIN at start.
 */
export function composeEdgeBaseConfig(): Record<string, unknown> {
  return caddyBaseConfig({
    adminListen: ':2019',
    adminOrigins: ['caddy:2019', '127.0.0.1:2019'],
    httpListen: defaultEdgeListen.http,
    httpsListen: defaultEdgeListen.https,
    serverName: 'selfdevop',
    routes: [controlRoute(undefined, composeControlUpstream)],
    onDemandTls: {
      askUrl: `http://${composeControlUpstream}/api/domains/ask`,
      // A Caddy placeholder, read from the caddy container's environment at load.
      acmeCa: '{env.ACME_CA}',
    },
  });
}
