import type {
  HeldNotification,
  NotificationChannel,
  NotificationDelivery,
} from '../../../core/models.ts';
import type {
  HeldNotificationRepo,
  NotificationChannelRepo,
  NotificationDeliveryRepo,
} from '../../../core/ports.ts';
import { eq, fromRow, insertSql, selectSql, table, valuesOf } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const notificationChannelsTable = table<NotificationChannel>('notification_channels', [
  'id',
  'orgId',
  'kind',
  'name',
  'address',
  'sealedUrl',
  'target',
  'events',
  'groupWindowSeconds',
  'createdAt',
]);

export const heldNotificationsTable = table<HeldNotification>('notification_held', [
  'id',
  'orgId',
  'channelId',
  'eventId',
  'eventType',
  'data',
  'heldAt',
]);

export const notificationDeliveriesTable = table<NotificationDelivery>('notification_deliveries', [
  'id',
  'orgId',
  'channelId',
  'eventType',
  'events',
  'firstEventId',
  'attempt',
  'delivered',
  'error',
  'createdAt',
]);

export const pgNotificationChannelRepo = (t: TenantSql): NotificationChannelRepo => ({
  insert: (c) => t.insert(notificationChannelsTable, c),
  list: () => t.all(notificationChannelsTable, [t.org()], 'id'),
  delete: (id) => t.deleteWhere(notificationChannelsTable, [eq('id', id), t.org()]),
});

/** A fan-out retried after holding an event holds it once: the (org, channel, event) key decides. */
export const holdSql = `${insertSql(heldNotificationsTable)} on conflict (org_id, channel_id, event_id) do nothing`;

export const heldListSql = `${selectSql(heldNotificationsTable)}
  where org_id = $1 and channel_id = $2 order by id limit $3`;

export const pgHeldNotificationRepo = (t: TenantSql): HeldNotificationRepo => ({
  async hold(h) {
    const r = await t.tx.query(holdSql, valuesOf(heldNotificationsTable, h));
    return r.rowCount > 0;
  },
  async list(channelId, limit) {
    const r = await t.tx.query(heldListSql, [t.orgId, channelId, limit]);
    return r.rows.map((row) => fromRow(heldNotificationsTable, row));
  },
  async remove(ids) {
    if (ids.length === 0) return;
    await t.tx.query(`delete from notification_held where org_id = $1 and id = any($2::text[])`, [
      t.orgId,
      ids,
    ]);
  },
});

/** As webhook deliveries: ids sort by time, so the newest `keep` are the last `keep` ids. */
export const pruneNotificationDeliveriesSql = `delete from notification_deliveries
  where org_id = $1 and channel_id = $2 and id < (
    select id from notification_deliveries where org_id = $1 and channel_id = $2
    order by id desc offset $3 limit 1)`;

/** Ids sort by time, so the newest delivered message is the highest id among them. */
const lastDeliveredSql = `${selectSql(notificationDeliveriesTable)}
  where org_id = $1 and channel_id = $2 and delivered and event_type <> 'notification.test'
  order by id desc limit 1`;

export const pgNotificationDeliveryRepo = (t: TenantSql): NotificationDeliveryRepo => ({
  async append(d, keep) {
    await t.insert(notificationDeliveriesTable, d);
    await t.tx.query(pruneNotificationDeliveriesSql, [t.orgId, d.channelId, Math.max(keep, 1) - 1]);
  },
  list: (channelId, page) =>
    t.page(notificationDeliveriesTable, [eq('channel_id', channelId)], page),
  async lastDeliveredAt(channelId) {
    const r = await t.tx.query(lastDeliveredSql, [t.orgId, channelId]);
    return r.rows[0] ? fromRow(notificationDeliveriesTable, r.rows[0]).createdAt : null;
  },
});
