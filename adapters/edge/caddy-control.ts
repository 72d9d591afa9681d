/**
 * The parts of a self-hosted edge that are not tenant routes: the control route (dashboard
 * and API), the edge server's listen addresses and automatic HTTPS, and the control domain's
 * TLS policy. Caddy resumes its autosaved config across restarts, so the worker reconciles
 * these with its configuration at start (through CaddyEdgeRouter.reconcileControl).
 */
import { isDeepStrictEqual } from 'node:util';
import {
  controlRoute,
  controlRouteId,
  edgeServerSettings,
  hasOnDemandTls,
  type EdgeListen,
  withControlRoute,
  withControlTlsPolicy,
} from '../../core/edge/caddy-control.ts';
import type { CaddyAdmin } from './caddy-admin.ts';

export interface ControlSettings {
  /** The dashboard's host (SELFDEVOP_DOMAIN); without it the control route is a catch-all. */
  domain?: string;
  /** host:port of the control API, e.g. `api:3000`. */
  upstream: string;
  /** The edge server's listen addresses; `:80` and `:443` when absent. */
  listen?: EdgeListen;
}

type Json = Record<string, unknown>;

const maxConflicts = 10;
const policiesPath = '/config/apps/tls/automation/policies';

/**
 * Writes carry If-Match, so a deploy changing routes at the same moment is never
 * overwritten (a 412 reads again). Resolves to what changed.
 */
export async function reconcileControl(
  admin: CaddyAdmin,
  serverName: string,
  settings: ControlSettings,
): Promise<string[]> {
  // An edge that obtains custom domains' certificates on demand listens for HTTPS even
  // without a control domain.
  const policies = await admin.read(policiesPath);
  const changed = await reconcileServer(
    admin,
    serverName,
    settings,
    hasOnDemandTls(policies?.value),
  );
  if (await reconcileTlsPolicy(admin, settings.domain))
    changed.push(`tls policy of ${settings.domain ?? '(no control domain)'}`);
  return changed;
}

async function reconcileServer(
  admin: CaddyAdmin,
  serverName: string,
  { domain, upstream, listen }: ControlSettings,
  onDemandTls: boolean,
): Promise<string[]> {
  const path = `/config/apps/http/servers/${encodeURIComponent(serverName)}`;
  for (let attempt = 1; attempt <= maxConflicts; attempt += 1) {
    const read = await admin.read(path);
    if (read === undefined) {
      throw new Error(
        `caddy has no server ${serverName} (GET ${path}); is the edge's base config loaded?`,
      );
    }
    const server = read.value as Json;
    const routes = Array.isArray(server.routes) ? (server.routes as Json[]) : [];
    const desiredRoute = controlRoute(domain, upstream);
    const settings = edgeServerSettings(domain, listen, domain !== undefined || onDemandTls);
    const next = { ...server, ...settings, routes: withControlRoute(routes, desiredRoute) };
    if (isDeepStrictEqual(next, server)) return [];
    const res = await admin.request('PATCH', path, next, ifMatch(read.etag));
    if (res.status === 412) continue;
    admin.expect('the edge settings', res);
    const changed: string[] = [];
    if (!isDeepStrictEqual(server.listen, settings.listen))
      changed.push(`listen ${settings.listen.join(' ')}`);
    if (!isDeepStrictEqual(server.automatic_https, settings.automatic_https))
      changed.push('automatic_https');
    const before = routes.find((r) => r['@id'] === controlRouteId);
    if (!isDeepStrictEqual(before, desiredRoute))
      changed.push(`control route ${domain ?? '(any host)'} → ${upstream}`);
    return changed;
  }
  throw new Error(
    `caddy config kept changing under the edge reconciliation; gave up after ${maxConflicts} attempts`,
  );
}

/**
 * Only an edge with TLS automation policies (on-demand TLS for custom domains) needs the
 * control domain's own policy; an edge without them manages the control domain by default.
 */
async function reconcileTlsPolicy(admin: CaddyAdmin, domain: string | undefined): Promise<boolean> {
  const path = policiesPath;
  for (let attempt = 1; attempt <= maxConflicts; attempt += 1) {
    const read = await admin.read(path);
    if (read === undefined || !Array.isArray(read.value)) return false;
    const next = withControlTlsPolicy(read.value, domain);
    if (isDeepStrictEqual(next, read.value)) return false;
    const res = await admin.request('PATCH', path, next, ifMatch(read.etag));
    if (res.status === 412) continue;
    admin.expect('the control domain tls policy', res);
    return true;
  }
  throw new Error(
    `caddy tls policies kept changing under the edge reconciliation; gave up after ${maxConflicts} attempts`,
  );
}

const ifMatch = (etag: string | undefined): Record<string, string> =>
  etag === undefined ? {} : { 'If-Match': etag };
