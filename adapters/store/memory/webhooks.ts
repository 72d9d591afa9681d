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
    return true;
  },
});
