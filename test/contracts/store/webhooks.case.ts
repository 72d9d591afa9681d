/** Store contract: webhooks and the audit log. */
import { describe, expect, it } from 'vitest';
import { aWebhook, aWebhookDelivery, anAuditEvent, at, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function webhookCases(): void {
  describe('webhooks and audit', () => {
    it('inserts, lists and deletes webhooks', async () => {
      const w1 = aWebhook(a.orgId);
      const w2 = aWebhook(a.orgId, { events: [] });
      await inA(async (r) => {
        await r.webhooks.insert(w1);
        await r.webhooks.insert(w2);
      });
      expect(await inA((r) => r.webhooks.list())).toEqual([w1, w2]);
      expect(await store.withOrg(b.orgId, (r) => r.webhooks.list())).toEqual([]);
      expect(await store.withOrg(b.orgId, (r) => r.webhooks.delete(w1.id))).toBe(false);
      expect(await inA((r) => r.webhooks.delete(w1.id))).toBe(true);
      expect(await inA((r) => r.webhooks.list())).toEqual([w2]);
    });

    it("records a webhook's delivery attempts, keeps the newest, and drops them with it", async () => {
      const hook = aWebhook(a.orgId);
      const other = aWebhook(a.orgId);
      const failed = aWebhookDelivery(a.orgId, hook.id, {
        delivered: false,
        responseStatus: null,
        error: 'connect ECONNREFUSED 203.0.113.9:443',
      });
      const d2 = aWebhookDelivery(a.orgId, hook.id, { attempt: 2, createdAt: at(1) });
      const d3 = aWebhookDelivery(a.orgId, hook.id, {
        attempt: 3,
        responseStatus: 500,
        delivered: false,
      });
      const elsewhere = aWebhookDelivery(a.orgId, other.id);
      await inA(async (r) => {
        await r.webhooks.insert(hook);
        await r.webhooks.insert(other);
        await r.webhookDeliveries.append(failed, 3);
        await r.webhookDeliveries.append(d2, 3);
        await r.webhookDeliveries.append(elsewhere, 3);
      });
      expect((await inA((r) => r.webhookDeliveries.list(hook.id, { limit: 10 }))).items).toEqual([
        failed,
        d2,
      ]);
      // Keeping 2: the oldest of this webhook goes, the other webhook's stay.
      await inA((r) => r.webhookDeliveries.append(d3, 2));
      expect((await inA((r) => r.webhookDeliveries.list(hook.id, { limit: 10 }))).items).toEqual([
        d2,
        d3,
      ]);
      const first = await inA((r) => r.webhookDeliveries.list(hook.id, { limit: 1 }));
      expect(first.items).toEqual([d2]);
      expect(
        (
          await inA((r) =>
            r.webhookDeliveries.list(hook.id, { limit: 1, cursor: first.nextCursor! }),
          )
        ).items,
      ).toEqual([d3]);
      expect((await inA((r) => r.webhookDeliveries.list(other.id, { limit: 10 }))).items).toEqual([
        elsewhere,
      ]);
      expect(
        (await store.withOrg(b.orgId, (r) => r.webhookDeliveries.list(hook.id, { limit: 10 })))
          .items,
      ).toEqual([]);
      // Another org cannot file deliveries under this org's webhook, nor under one that is gone.
      await rejectsWith(
        store.withOrg(b.orgId, (r) =>
          r.webhookDeliveries.append(aWebhookDelivery(b.orgId, hook.id), 10),
        ),
        'webhook_not_found',
      );
      await inA((r) => r.webhooks.delete(hook.id));
      expect((await inA((r) => r.webhookDeliveries.list(hook.id, { limit: 10 }))).items).toEqual(
        [],
      );
      await rejectsWith(
        inA((r) => r.webhookDeliveries.append(aWebhookDelivery(a.orgId, hook.id), 10)),
        'webhook_not_found',
      );
    });

    it('appends audit events and filters them by action and target', async () => {
      const e1 = anAuditEvent(a.orgId, { action: 'release.started', targetId: 'rel_1' });
      const e2 = anAuditEvent(a.orgId, {
        action: 'release.completed',
        targetId: 'rel_1',
        actorType: 'system',
        requestId: 'req_1',
      });
      const e3 = anAuditEvent(a.orgId, { action: 'release.started', targetId: 'rel_2' });
      await inA(async (r) => {
        for (const e of [e1, e2, e3]) await r.audit.append(e);
      });
      expect((await inA((r) => r.audit.list({ limit: 10 }))).items).toEqual([e1, e2, e3]);
      expect(
        (await inA((r) => r.audit.list({ limit: 10 }, { action: 'release.started' }))).items,
      ).toEqual([e1, e3]);
      expect((await inA((r) => r.audit.list({ limit: 10 }, { targetId: 'rel_1' }))).items).toEqual([
        e1,
        e2,
      ]);
      expect(
        (
          await inA((r) =>
            r.audit.list({ limit: 10 }, { action: 'release.started', targetId: 'rel_2' }),
          )
        ).items,
      ).toEqual([e3]);
      await rejectsWith(
        inA((r) => r.audit.append(e1)),
        'audit_event_exists',
      );
    });
  });
}
