/**
 * The edge's state as one org may see it (`GET /api/edge`): whether it answers, when it was
 * last rebuilt from the database, and the org's own routes and certificates. The edge is
 * shared by every org, so nothing here names another org's route, host or count, nor the
 * edge's internal address.
 */
import type { Domain, DomainStatus } from '../models.ts';
import type { EdgeRouter, Store } from '../ports.ts';
import { routeId } from '../releases/plan.ts';
import { requireOrg, type Principal } from '../deps.ts';
import { liveReleaseStatuses } from './live-routes.ts';

export interface EdgeCertificateStatus {
  hostname: string;
  domainId: string;
  status: 'active' | 'missing' | 'unknown';
  issuer: string | null;
  notAfter: string | null;
  /** Whole days until notAfter (negative once expired). */
  daysLeft: number | null;
  detail: string | null;
}

export interface EdgeStatus {
  reachable: boolean;
  /** Why not, in words that name no internal address. */
  error: string | null;
  /** Caddy's admin API does not report its version; null until the edge image records it. */
  version: string | null;
  routes: {
    /** The org's service environments with a live release: each must have a route. */
    expected: number;
    /** How many of those the edge has now. */
    present: number;
    /** Route ids the edge lacks (the edge-rebuild job puts them back within a minute). */
    missing: string[];
  };
  /** The edge-rebuild job's last run (every minute), or null before the first. */
  lastRebuild: { at: string; restoredRoutes: number; restoredHosts: number } | null;
  certificates: EdgeCertificateStatus[];
}

export interface EdgeStatusDeps {
  store: Store;
  clock: { now(): Date };
  release: { edge: EdgeRouter };
}

/** Certificate checks are TLS handshakes: at most this many domains, this many at once. */
export const maxCertificateChecks = 50;
const certificateConcurrency = 5;
const edgeTimeoutMs = 3_000;

/** Domains whose certificate is worth asking the edge about: on their route from DNS verification on. */
const certificateStatuses: readonly DomainStatus[] = ['dns_verified', 'cert_pending', 'active'];

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function getEdgeStatus(
  deps: EdgeStatusDeps,
  principal: Principal,
): Promise<EdgeStatus> {
  const p = requireOrg(principal);
  const edge = deps.release.edge;
  const { expected, domains } = await deps.store.withOrg(p.orgId, async (repos) => {
    const services = (await repos.services.list({ limit: 200 })).items;
    const envs = (await repos.environments.list({ limit: 200 })).items;
    const ids: string[] = [];
    for (const svc of services)
      for (const env of envs.filter((e) => e.projectId === svc.projectId))
        if (await repos.releases.latest(svc.id, env.id, [...liveReleaseStatuses]))
          ids.push(routeId(svc.id, env.id));
    const domains = (await repos.domains.list({ limit: 200 })).items.filter((d) =>
      certificateStatuses.includes(d.status),
    );
    return { expected: ids, domains };
  });
  const lastRebuild = (await deps.store.edgeRebuilds?.last()) ?? null;
  let reachable = true;
  let error: string | null = null;
  let present = new Set<string>();
  try {
    await within(edge.ping(), edgeTimeoutMs, "the edge's admin API");
    present = new Set((await within(edge.list(), edgeTimeoutMs, 'the edge')).map((r) => r.id));
  } catch (e) {
    reachable = false;
    // The message may name the admin API's address, which is the platform's, not the org's.
    error = /did not answer/.test((e as Error).message)
      ? "the edge's admin API did not answer within 3 s"
      : "the edge's admin API could not be reached";
  }
  const mine = expected.filter((id) => present.has(id));
  return {
    reachable,
    error,
    version: null,
    routes: {
      expected: expected.length,
      present: reachable ? mine.length : 0,
      missing: reachable ? expected.filter((id) => !present.has(id)) : [],
    },
    lastRebuild,
    certificates: reachable ? await certificates(deps, domains) : [],
  };
}

async function certificates(
  deps: EdgeStatusDeps,
  domains: Domain[],
): Promise<EdgeCertificateStatus[]> {
  const edge = deps.release.edge;
  const now = deps.clock.now().getTime();
  const checked = domains.slice(0, maxCertificateChecks);
  const out: EdgeCertificateStatus[] = new Array(checked.length);
  let next = 0;
  const worker = async () => {
    while (next < checked.length) {
      const i = next++;
      const d = checked[i]!;
      const base = { hostname: d.hostname, domainId: d.id };
      if (!edge.certificate) {
        out[i] = {
          ...base,
          status: 'unknown',
          issuer: null,
          notAfter: null,
          daysLeft: null,
          detail: 'this edge cannot be asked for certificates',
        };
        continue;
      }
      try {
        const c = await within(edge.certificate(d.hostname), edgeTimeoutMs, 'the edge');
        out[i] = {
          ...base,
          status: c.status,
          issuer: c.issuer,
          notAfter: c.notAfter,
          daysLeft: c.notAfter ? Math.floor((Date.parse(c.notAfter) - now) / 86_400_000) : null,
          detail: c.detail,
        };
      } catch (e) {
        out[i] = {
          ...base,
          status: 'unknown',
          issuer: null,
          notAfter: null,
          daysLeft: null,
          detail: (e as Error).message,
        };
      }
    }
  };
  await Promise.all(Array.from({ length: certificateConcurrency }, worker));
  return out;
}
