/** Store contract: orgs and their memberships. */
import { describe, expect, it } from 'vitest';
import { NotFound } from '../../../core/errors.ts';
import { ids, anOrg, aProject, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function orgCases(): void {
  describe('orgs', () => {
    it('reads its own org and refuses to write another one', async () => {
      expect(await inA((r) => r.orgs.get())).toMatchObject({ id: a.orgId, name: 'Acme' });
      const other = anOrg();
      await expect(inA((r) => r.orgs.insert(other))).rejects.toThrow(/row-level security/);
      expect(await store.withOrg(other.id, (r) => r.orgs.get())).toBeNull();
    });

    it('refuses a duplicate org id', async () => {
      await rejectsWith(
        inA((r) => r.orgs.insert(anOrg({ id: a.orgId }))),
        'org_exists',
      );
    });

    it('refuses records of an org that does not exist', async () => {
      const ghost = ids.newId('org');
      const e = await rejectsWith(
        store.withOrg(ghost, (r) => r.projects.insert(aProject(ghost))),
        'org_not_found',
      );
      expect(e).toBeInstanceOf(NotFound);
    });

    it('refuses a row carrying another org id than the transaction', async () => {
      await expect(inA((r) => r.projects.insert(aProject(b.orgId)))).rejects.toThrow(
        /row-level security/,
      );
      expect(
        (await store.withOrg(b.orgId, (r) => r.projects.list({ limit: 50 }))).items,
      ).toHaveLength(1);
    });
  });
}
