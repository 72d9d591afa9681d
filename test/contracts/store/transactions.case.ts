/** Store contract: withOrg as a transaction. */
import { describe, expect, it } from 'vitest';
import { AlreadyExists } from '../../../core/errors.ts';
import { aProject, anAuditEvent } from './builders.ts';
import { a, inA } from './context.ts';

export function transactionCases(): void {
  describe('transactions', () => {
    it('rolls back everything when fn throws, and rethrows its error', async () => {
      const p = aProject(a.orgId);
      const boom = new Error('boom');
      await expect(
        inA(async (r) => {
          await r.projects.insert(p);
          await r.audit.append(anAuditEvent(a.orgId, { targetId: p.id }));
          expect(await r.projects.get(p.id)).toEqual(p);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await inA((r) => r.projects.get(p.id))).toBeNull();
      expect((await inA((r) => r.audit.list({ limit: 10 }, { targetId: p.id }))).items).toEqual([]);
    });

    it('keeps the transaction usable after a caught constraint error', async () => {
      const p = aProject(a.orgId, { name: 'taken' });
      const p2 = aProject(a.orgId, { name: 'free' });
      await inA((r) => r.projects.insert(p));
      await inA(async (r) => {
        await expect(
          r.projects.insert(aProject(a.orgId, { name: 'taken' })),
        ).rejects.toBeInstanceOf(AlreadyExists);
        await r.projects.insert(p2);
      });
      expect(await inA((r) => r.projects.get(p2.id))).toEqual(p2);
    });

    it('returns what fn returns', async () => {
      expect(await inA(async (r) => r.orgId)).toBe(a.orgId);
    });
  });
}
