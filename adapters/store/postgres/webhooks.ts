import type { Webhook } from '../../../core/models.ts';
import type { WebhookRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const webhooksTable = table<Webhook>('webhooks', [
  'id',
  'orgId',
  'url',
  'sealedSecret',
  'events',
  'createdAt',
]);

export const pgWebhookRepo = (t: TenantSql): WebhookRepo => ({
  insert: (w) => t.insert(webhooksTable, w),
  list: () => t.all(webhooksTable, [t.org()], 'id'),
  delete: (id) => t.deleteWhere(webhooksTable, [eq('id', id), t.org()]),
});
