import { liveReleaseStatuses, routedDomainStatuses } from '../../core/edge/live-routes.ts';
import type { LiveRoute, RouteCatalog } from '../../core/ports.ts';
import type { SqlClient } from '../db/postgres.ts';

interface LiveRouteRow {
  service_id: string;
  service_name: string;
  environment_id: string;
  environment_name: string;
  sticky: boolean;
  drain_seconds: number;
  load_balancing: 'round_robin' | 'least_conn' | null;
  upstreams: string[];
  custom_hosts: string[];
}

/**
 * Live routes across orgs in one query, through `selfdevop_live_routes` (SECURITY DEFINER:
 * the application role sees one org at a time). The status sets come from the core.
 */
export class PostgresRouteCatalog implements RouteCatalog {
  readonly #db: SqlClient;

  constructor(db: SqlClient) {
    this.#db = db;
  }

  async liveRoutes(): Promise<LiveRoute[]> {
    const r = await this.#db.query<LiveRouteRow>(
      'select * from selfdevop_live_routes($1::text[], $2::text[])',
      [liveReleaseStatuses, routedDomainStatuses],
    );
    return r.rows.map((row) => ({
      serviceId: row.service_id,
      serviceName: row.service_name,
      environmentId: row.environment_id,
      environmentName: row.environment_name,
      sticky: row.sticky,
      drainSeconds: row.drain_seconds,
      loadBalancing: row.load_balancing,
      upstreams: row.upstreams,
      customHosts: row.custom_hosts,
    }));
  }
}
