import type { Member, Membership, Org } from '../../../core/models.ts';
import type { MembershipRepo, OrgRepo } from '../../../core/ports.ts';
import { clone, pick } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryOrgRepo = (t: TenantView): OrgRepo => ({
  insert: async (org) => t.insert('orgs', org),
  get: async () => pick<Org>(t.view.get('orgs', t.orgId)),
});

const key = (t: TenantView, userId: string) => `${t.orgId}|${userId}`;

const oldestFirst = (t: TenantView) =>
  t
    .mine('memberships')
    .sort(
      (a, b) =>
        String(a.createdAt).localeCompare(String(b.createdAt)) ||
        (String(a.userId) < String(b.userId) ? -1 : 1),
    );

export const memoryMembershipRepo = (t: TenantView): MembershipRepo => ({
  insert: async (m) => t.insert('memberships', m),
  list: async () => oldestFirst(t).map((r) => clone(r) as unknown as Membership),
  members: async () =>
    oldestFirst(t).map((r): Member => ({
      userId: String(r.userId),
      email: String(t.view.get('users', String(r.userId))?.email ?? ''),
      role: r.role as Member['role'],
      createdAt: String(r.createdAt),
    })),
  get: async (userId) => t.getOwn<Membership>('memberships', key(t, userId)),
  // withOrg calls are serialised already: the lock is held by construction.
  lock: async () => undefined,
  setRole: async (userId, role) => t.patch('memberships', key(t, userId), { role }, ['orgId']),
  delete: async (userId) => {
    if (!t.getOwn('memberships', key(t, userId))) return false;
    t.view.delete('memberships', key(t, userId));
    return true;
  },
});
