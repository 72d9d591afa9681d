/** Store contract: counting an org's audit events by action since a time (rate limits). */
import { describe, expect, it } from 'vitest';
import { anAuditEvent } from './builders.ts';
import { a, b, inA, store } from './context.ts';

export function auditCases(): void {
  describe('audit', () => {
    it('counts the org’s events of the given actions after a time, with the oldest', async () => {
      const event = (action: string, createdAt: string) =>
        anAuditEvent(a.orgId, { action, createdAt });
      await inA(async (r) => {
        await r.audit.append(event('domain.created', '2026-01-01T10:00:00.001Z'));
        await r.audit.append(event('domain.created', '2026-01-01T10:00:00.000Z'));
        await r.audit.append(event('domain.deleted', '2026-01-01T10:30:00.000Z'));
        await r.audit.append(event('project.created', '2026-01-01T10:31:00.000Z'));
      });
      await store.withOrg(b.orgId, (r) =>
        r.audit.append(
          anAuditEvent(b.orgId, {
            action: 'domain.created',
            createdAt: '2026-01-01T10:40:00.000Z',
          }),
        ),
      );
      const since = '2026-01-01T10:00:00.000Z';
      const both = ['domain.created', 'domain.deleted'];
      const counted = await inA((r) => r.audit.countSince(both, since));
      expect(counted.count).toBe(2);
      expect(Date.parse(counted.oldest!)).toBe(Date.parse('2026-01-01T10:00:00.001Z'));
      expect(await inA((r) => r.audit.countSince(['domain.deleted'], since))).toMatchObject({
        count: 1,
      });
      expect(await inA((r) => r.audit.countSince(['invite.created'], since))).toEqual({
        count: 0,
        oldest: null,
      });
      // Another org's events never count.
      expect((await store.withOrg(b.orgId, (r) => r.audit.countSince(both, since))).count).toBe(1);
    });
  });
}
