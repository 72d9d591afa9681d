/** Store contract: keyset pagination, the same in every list. */
import { describe, expect, it } from 'vitest';
import type { Page, Project } from '../../../core/models.ts';
import { aProject, anAuditEvent } from './builders.ts';
import { a, inA } from './context.ts';

export function paginationCases(): void {
  describe('pagination', () => {
    it('pages by id with the last id as cursor, and a null cursor on the last page', async () => {
      const made = Array.from({ length: 5 }, () => aProject(a.orgId));
      await inA(async (r) => {
        for (const p of made) await r.projects.insert(p);
      });
      const expected = [a.projectId, ...made.map((p) => p.id)].sort();
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page: Page<Project> = await inA((r) => r.projects.list({ limit: 2, cursor }));
        seen.push(...page.items.map((p) => p.id));
        if (i < 2) expect(page.nextCursor).toBe(page.items[1]?.id);
        cursor = page.nextCursor;
        if (!cursor) break;
      }
      expect(seen).toEqual(expected);
      // An exact fit ends with a null cursor, not an empty extra page.
      expect((await inA((r) => r.projects.list({ limit: 6 }))).nextCursor).toBeNull();
    });

    it('caps the page size at 200 and defaults a nonsensical one', async () => {
      await inA(async (r) => {
        for (let i = 0; i < 205; i++) await r.audit.append(anAuditEvent(a.orgId));
      });
      const big = await inA((r) => r.audit.list({ limit: 1000 }));
      expect(big.items).toHaveLength(200);
      expect(big.nextCursor).toBe(big.items[199]?.id);
      expect((await inA((r) => r.audit.list({ limit: 0 }))).items).toHaveLength(50);
      const rest = await inA((r) => r.audit.list({ limit: 200, cursor: big.nextCursor }));
      expect(rest).toEqual({ items: expect.any(Array), nextCursor: null });
      expect(rest.items).toHaveLength(5);
    });
  });
}
