import type { ApiKey, Membership, UserWithPassword } from '../../../core/models.ts';
import type { IdentityRepo } from '../../../core/ports.ts';
import { checkRow, clone, Overlay, pick } from './overlay.ts';
import type { Row, Tables } from './tables.ts';

export const memoryIdentityRepo = (tables: Tables): IdentityRepo => ({
  createUser: async (user) => {
    const row = { ...clone(user), email: user.email.toLowerCase() } as Row;
    const view = new Overlay(tables);
    checkRow(view, 'users', row);
    view.put('users', user.id, row);
    view.commit();
  },
  findUserByEmail: async (email) => {
    const lowered = email.toLowerCase();
    return pick<UserWithPassword>([...tables.users.values()].find((u) => u.email === lowered));
  },
  findUserById: async (id) => {
    const u = tables.users.get(id);
    return u ? { id: String(u.id), email: String(u.email), createdAt: String(u.createdAt) } : null;
  },
  membershipsOf: async (userId) =>
    [...tables.memberships.values()]
      .filter((m) => m.userId === userId)
      .sort(
        (a, b) =>
          String(a.createdAt).localeCompare(String(b.createdAt)) ||
          (String(a.orgId) < String(b.orgId) ? -1 : 1),
      )
      .map((m) => clone(m) as unknown as Membership),
  findApiKeyByHash: async (keyHash) => {
    const k = [...tables.apiKeys.values()].find((r) => r.keyHash === keyHash);
    if (!k) return null;
    const { keyHash: _keyHash, ...key } = clone(k);
    return key as unknown as ApiKey;
  },
  countUsers: async () => tables.users.size,
  // No await between the count and the insert: one caller of many is first.
  createFirstUser: async (user) => {
    if (tables.users.size > 0) return false;
    const row = { ...clone(user), email: user.email.toLowerCase() } as Row;
    const view = new Overlay(tables);
    checkRow(view, 'users', row);
    view.put('users', user.id, row);
    view.put('operators', user.id, { userId: user.id, grantedAt: user.createdAt });
    view.commit();
    return true;
  },
  createUserFirstIsOperator: async (user) => {
    const first = tables.users.size === 0;
    const row = { ...clone(user), email: user.email.toLowerCase() } as Row;
    const view = new Overlay(tables);
    checkRow(view, 'users', row);
    view.put('users', user.id, row);
    if (first) view.put('operators', user.id, { userId: user.id, grantedAt: user.createdAt });
    view.commit();
    return { operator: first };
  },
  isOperator: async (userId) => tables.operators.has(userId),
});
