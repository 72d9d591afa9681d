import type { Membership, Org } from '../../../core/models.ts';
import type { MembershipRepo, OrgRepo } from '../../../core/ports.ts';
import { clone, pick } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryOrgRepo = (t: TenantView): OrgRepo => ({
  insert: async (org) => t.insert('orgs', org),
  get: async () => pick<Org>(t.view.get('orgs', t.orgId)),
});

export const memoryMembershipRepo = (t: TenantView): MembershipRepo => ({
  insert: async (m) => t.insert('memberships', m),
  list: async () =>
    t
      .mine('memberships')
      .sort(
        (a, b) =>
          String(a.createdAt).localeCompare(String(b.createdAt)) ||
          (String(a.userId) < String(b.userId) ? -1 : 1),
      )
      .map((r) => clone(r) as unknown as Membership),
});
