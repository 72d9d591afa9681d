import type { BuildSlots } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';

/** Per-engine build slots across orgs, through migration 0033's security-definer functions. */
export const pgBuildSlots = (db: SqlClient): BuildSlots => ({
  take: async (request, limit, leaseSeconds) => {
    const r = await db.query<{
      granted: boolean;
      running_release: string | null;
      running_org: string | null;
      ahead: number;
    }>(
      'select granted, running_release, running_org, ahead from selfdevop_build_slot_take($1, $2, $3, $4, $5)',
      [request.releaseId, request.orgId, request.engine, limit, Math.ceil(leaseSeconds)],
    );
    if (r.rows[0]?.granted) return { granted: true };
    return {
      granted: false,
      running: r.rows
        .filter((row) => row.running_release !== null)
        .map((row) => ({ releaseId: row.running_release!, orgId: row.running_org! })),
      ahead: r.rows[0]?.ahead ?? 0,
    };
  },
  free: async (releaseId, orgId) => {
    await db.query('select selfdevop_build_slot_free($1, $2)', [releaseId, orgId]);
  },
});
