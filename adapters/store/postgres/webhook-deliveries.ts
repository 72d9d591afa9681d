import type { WebhookDelivery } from '../../../core/models.ts';
import type { WebhookDeliveryRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const webhookDeliveriesTable = table<WebhookDelivery>('webhook_deliveries', [
  'id',
  'orgId',
  'webhookId',
  'eventId',
  'eventType',
  'attempt',
  'delivered',
  'responseStatus',
  'error',
  'createdAt',
]);

/**
 * Ids sort by creation time, so "the newest `keep`" is the last `keep` ids: everything of
 * the webhook below the keep-th newest id goes, through the (org, webhook, id) index.
 */
export const pruneDeliveriesSql = `delete from webhook_deliveries
  where org_id = $1 and webhook_id = $2 and id < (
    select id from webhook_deliveries where org_id = $1 and webhook_id = $2
    order by id desc offset $3 limit 1)`;

export const pgWebhookDeliveryRepo = (t: TenantSql): WebhookDeliveryRepo => ({
  async append(d, keep) {
    await t.insert(webhookDeliveriesTable, d);
    await t.tx.query(pruneDeliveriesSql, [t.orgId, d.webhookId, Math.max(keep, 1) - 1]);
  },
  list: (webhookId, page) => t.page(webhookDeliveriesTable, [eq('webhook_id', webhookId)], page),
});
