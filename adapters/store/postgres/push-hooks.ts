import type { PushHook, PushHookLookup, PushHookRepo } from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';
import { eq, fromRow, table, toColumn } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const pushHooksTable = table<PushHook>('push_hooks', [
  'id',
  'orgId',
  'serviceId',
  'sealedSecret',
  'createdAt',
]);

const columns = pushHooksTable.keys.map(toColumn).join(', ');

export const pgPushHookRepo = (t: TenantSql): PushHookRepo => ({
  async save(hook) {
    // One statement, so two rotations at once leave one hook with the last secret.
    const r = await t.tx.query(
      `insert into push_hooks (${columns}) values ($1, $2, $3, $4, $5)
       on conflict (org_id, service_id) do update set sealed_secret = excluded.sealed_secret
       returning ${columns}`,
      [hook.id, t.orgId, hook.serviceId, hook.sealedSecret, hook.createdAt],
    );
    return fromRow(pushHooksTable, r.rows[0]!);
  },
  forService: (serviceId) => t.one(pushHooksTable, [eq('service_id', serviceId)]),
  async claimDelivery(hookId, deliveryId, at) {
    const r = await t.tx.query(
      `insert into push_deliveries (org_id, hook_id, delivery_id, received_at)
       values ($1, $2, $3, $4) on conflict do nothing`,
      [t.orgId, hookId, deliveryId, at],
    );
    return r.rowCount > 0;
  },
  async want(hookId, sha) {
    await t.tx.query('update push_hooks set wanted_sha = $3 where org_id = $1 and id = $2', [
      t.orgId,
      hookId,
      sha,
    ]);
  },
  async takeWanted(serviceId) {
    // FOR UPDATE makes this a compare-and-set: a second taker waits, then re-reads the row
    // and finds it cleared (or a newer sha, which it takes).
    const r = await t.tx.query(
      `with taken as (
         select id, wanted_sha from push_hooks
         where org_id = $1 and service_id = $2 and wanted_sha is not null for update)
       update push_hooks h set wanted_sha = null from taken
       where h.org_id = $1 and h.id = taken.id
       returning h.id, taken.wanted_sha`,
      [t.orgId, serviceId],
    );
    const row = r.rows[0] as { id: string; wanted_sha: string } | undefined;
    return row ? { hookId: row.id, sha: row.wanted_sha } : null;
  },
  async putBackWanted(hookId, sha) {
    await t.tx.query(
      'update push_hooks set wanted_sha = $3 where org_id = $1 and id = $2 and wanted_sha is null',
      [t.orgId, hookId, sha],
    );
  },
  async forgetDelivery(hookId, deliveryId) {
    await t.tx.query(
      'delete from push_deliveries where org_id = $1 and hook_id = $2 and delivery_id = $3',
      [t.orgId, hookId, deliveryId],
    );
  },
});

/** Before the org is known, through the security-definer function of migration 0018. */
export const pgPushHookLookup = (db: Database): PushHookLookup => ({
  findPushHook: async (id) => {
    const r = await db.query(`select ${columns} from selfdevop_push_hook($1)`, [id]);
    return r.rows[0] ? fromRow(pushHooksTable, r.rows[0]) : null;
  },
});
