/**
 * The edge rebuilt from the database: which routes must exist (pure, tested by equality)
 * and the use case that puts back whatever the edge lost.
 */
import type { DomainStatus, ReleaseStatus } from '../models.ts';
import type { EdgeRestored, EdgeRouter, LiveRoute, RouteCatalog, RouteSpec } from '../ports.ts';
import { defaultHosts, routeId } from '../releases/plan.ts';
import { changeRouteHosts } from '../domains/route-hosts.ts';

/**
 * A release serves from the switch on: `traffic_shifted` (switched, not yet recorded as
 * completed) and `completed`. The newest such release of a service environment is live; a
 * rolled-back or failed one is not (its traffic went back to the one before).
 */
export const liveReleaseStatuses: readonly ReleaseStatus[] = ['traffic_shifted', 'completed'];

/** A custom domain is on its route from DNS verification on (the domain worker puts it there). */
export const routedDomainStatuses: readonly DomainStatus[] = [
  'dns_verified',
  'cert_pending',
  'active',
];

/** The route each live service environment must have: its default host, then its custom hosts. */
export function desiredRoutes(live: readonly LiveRoute[], edgeDomain: string): RouteSpec[] {
  return live.map((l) => {
    const hosts = defaultHosts({
      service: { id: l.serviceId, name: l.serviceName },
      environment: { name: l.environmentName },
      edgeDomain,
    });
    for (const h of l.customHosts) if (!hosts.includes(h)) hosts.push(h);
    return {
      id: routeId(l.serviceId, l.environmentId),
      hosts,
      // Every healthy replica: a route put back with one would send all traffic to it.
      upstreams: [...l.upstreams],
      sticky: l.sticky,
      drainSeconds: l.drainSeconds,
      // As planRoute writes it: only when asked, so a restored route reads back the same.
      ...(l.loadBalancing === 'least_conn' ? { loadBalancing: 'least_conn' as const } : {}),
    };
  });
}

export interface RebuildEdgeDeps {
  catalog: RouteCatalog;
  edge: EdgeRouter;
  edgeDomain: string;
}

/**
 * Puts back every live route the edge lacks, and every routed host a route lacks. Edges
 * without `restore` get one get-then-put per route, which never touches a route that exists
 * beyond adding hosts.
 */
export async function rebuildEdgeRoutes(deps: RebuildEdgeDeps): Promise<EdgeRestored> {
  const routes = desiredRoutes(await deps.catalog.liveRoutes(), deps.edgeDomain);
  if (deps.edge.restore) return deps.edge.restore(routes);
  const restored: EdgeRestored = { routes: [], hosts: [] };
  for (const route of routes) {
    const current = await deps.edge.get(route.id);
    if (current === null) {
      await deps.edge.put(route);
      restored.routes.push(route.id);
      continue;
    }
    const missing = route.hosts.filter((h) => !current.hosts.includes(h));
    if (missing.length === 0) continue;
    await changeRouteHosts(deps.edge, route.id, { add: missing });
    restored.hosts.push(...missing.map((h) => `${h} on ${route.id}`));
  }
  return restored;
}
