/** Store contract: webhooks and the audit log. */
import { describe, expect, it } from 'vitest';
import { aWebhook, anAuditEvent, rejectsWith } from './builders.ts';
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
