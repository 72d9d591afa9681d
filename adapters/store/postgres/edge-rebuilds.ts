import type { EdgeRebuildLog } from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';

/** The one row of `edge_rebuilds`, replaced at every run of the edge-rebuild job. */
export const recordEdgeRebuildSql = `insert into edge_rebuilds (id, at, restored_routes, restored_hosts)
  values (1, $1, $2, $3)
  on conflict (id) do update set at = excluded.at, restored_routes = excluded.restored_routes,
    restored_hosts = excluded.restored_hosts`;

export const pgEdgeRebuildLog = (db: Database): EdgeRebuildLog => ({
  async record(r) {
    await db.query(recordEdgeRebuildSql, [r.at, r.restoredRoutes, r.restoredHosts]);
  },
  async last() {
    const r = await db.query<{ at: Date; restored_routes: number; restored_hosts: number }>(
      'select at, restored_routes, restored_hosts from edge_rebuilds where id = 1',
    );
    const row = r.rows[0];
    return row
      ? {
          at: new Date(row.at).toISOString(),
          restoredRoutes: row.restored_routes,
          restoredHosts: row.restored_hosts,
        }
      : null;
  },
});
