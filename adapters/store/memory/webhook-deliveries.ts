import type { WebhookDelivery } from '../../../core/models.ts';
import type { WebhookDeliveryRepo } from '../../../core/ports.ts';
import { byIdAsc } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryWebhookDeliveryRepo = (t: TenantView): WebhookDeliveryRepo => ({
  append: async (d, keep) => {
    t.insert('webhookDeliveries', d);
    const older = t
      .mine('webhookDeliveries')
      .filter((r) => r.webhookId === d.webhookId)
      .sort(byIdAsc)
      .slice(0, -Math.max(keep, 1));
    for (const r of older) t.view.delete('webhookDeliveries', String(r.id));
  },
  list: async (webhookId, page) =>
    t.page<WebhookDelivery>(
      'webhookDeliveries',
      t.mine('webhookDeliveries').filter((r) => r.webhookId === webhookId),
      page,
    ),
});
