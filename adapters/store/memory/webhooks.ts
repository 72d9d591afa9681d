import type { Webhook } from '../../../core/models.ts';
import type { WebhookRepo } from '../../../core/ports.ts';
import { byIdAsc, clone } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryWebhookRepo = (t: TenantView): WebhookRepo => ({
  insert: async (w) => t.insert('webhooks', w),
  list: async () =>
    t
      .mine('webhooks')
      .sort(byIdAsc)
      .map((r) => clone(r) as unknown as Webhook),
  delete: async (id) => {
    if (!t.getOwn('webhooks', id)) return false;
    t.view.delete('webhooks', id);
    // As the SQL foreign key's on delete cascade: a webhook's deliveries go with it.
    for (const d of t.mine('webhookDeliveries').filter((r) => r.webhookId === id))
      t.view.delete('webhookDeliveries', String(d.id));
    return true;
  },
});
