import { liveReleaseStatuses, routedDomainStatuses } from '../../core/edge/live-routes.ts';
import type { Domain, Environment, Release, Service } from '../../core/models.ts';
import type { LiveRoute, RouteCatalog } from '../../core/ports.ts';

/** As selfdevop_live_routes (0028): the healthy replicas, or a pre-replica release's one upstream. */
function servedUpstreams(r: Release): string[] {
  if (!r.replicaSet) return r.upstream === null ? [] : [r.upstream];
  return r.replicaSet.replicas.flatMap((x) =>
    x.health === 'healthy' && x.upstream !== null ? [x.upstream] : [],
  );
}

/** The records a live route is read from; tests add them as they would insert rows. */
export interface RouteCatalogRecords {
  services?: Service[];
  environments?: Environment[];
  releases?: Release[];
  domains?: Domain[];
}

/** The in-memory twin of PostgresRouteCatalog: the same selection over records in Maps. */
export class MemoryRouteCatalog implements RouteCatalog {
  readonly #services = new Map<string, Service>();
  readonly #environments = new Map<string, Environment>();
  readonly #releases = new Map<string, Release>();
  readonly #domains = new Map<string, Domain>();

  /** Adds or replaces records by id. */
  add(records: RouteCatalogRecords): this {
    for (const s of records.services ?? []) this.#services.set(s.id, structuredClone(s));
    for (const e of records.environments ?? []) this.#environments.set(e.id, structuredClone(e));
    for (const r of records.releases ?? []) this.#releases.set(r.id, structuredClone(r));
    for (const d of records.domains ?? []) this.#domains.set(d.id, structuredClone(d));
    return this;
  }

  async liveRoutes(): Promise<LiveRoute[]> {
    const newest = new Map<string, Release>();
    for (const r of this.#releases.values()) {
      if (!liveReleaseStatuses.includes(r.status)) continue;
      const key = `${r.serviceId} ${r.environmentId}`;
      const seen = newest.get(key);
      if (seen === undefined || r.id > seen.id) newest.set(key, r);
    }
    const routes: LiveRoute[] = [];
    for (const r of newest.values()) {
      const service = this.#services.get(r.serviceId);
      const environment = this.#environments.get(r.environmentId);
      const upstreams = servedUpstreams(r);
      if (!service || !environment || upstreams.length === 0) continue;
      const customHosts = [...this.#domains.values()]
        .filter(
          (d) =>
            d.serviceId === r.serviceId &&
            d.environmentId === r.environmentId &&
            routedDomainStatuses.includes(d.status),
        )
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || (a.id < b.id ? -1 : 1))
        .map((d) => d.hostname);
      routes.push({
        serviceId: service.id,
        serviceName: service.name,
        environmentId: environment.id,
        environmentName: environment.name,
        sticky: service.sticky,
        drainSeconds: service.drainSeconds,
        loadBalancing: service.loadBalancing ?? null,
        upstreams,
        customHosts,
      });
    }
    const order = (l: LiveRoute) => `${l.serviceId} ${l.environmentId}`;
    return routes.sort((a, b) => (order(a) < order(b) ? -1 : 1));
  }
}
