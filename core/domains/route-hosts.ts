import type { EdgeRouter, RouteSpec } from '../ports.ts';

/**
 * Adds or removes custom hosts on a service environment's route. Edges with
 * `updateHosts` do it in one change that keeps the route's upstreams as they are at that
 * moment (a deploy switching traffic at the same time keeps its upstream); others get a
 * read-then-put. Null when the service environment has no route yet (never released).
 */
export async function changeRouteHosts(
  edge: EdgeRouter,
  routeId: string,
  change: { add?: string[]; remove?: string[] },
): Promise<RouteSpec | null> {
  if (edge.updateHosts) return edge.updateHosts(routeId, change);
  const route = await edge.get(routeId);
  if (!route) return null;
  const remove = new Set(change.remove ?? []);
  const hosts = route.hosts.filter((h) => !remove.has(h));
  for (const h of change.add ?? []) if (!hosts.includes(h)) hosts.push(h);
  // A route keeps at least its default host, so it can never be left with none.
  if (hosts.length === 0) return route;
  if (hosts.length === route.hosts.length && hosts.every((h, i) => h === route.hosts[i]))
    return route;
  const next = { ...route, hosts };
  await edge.put(next);
  return next;
}
