/** Store contract: users, memberships and API keys looked up before an org is known. */
import { describe, expect, it } from 'vitest';
import { AlreadyExists } from '../../../core/errors.ts';
import type { Membership } from '../../../core/models.ts';
import { ids, at, aUser, anApiKey, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function identityCases(): void {
  describe('identity', () => {
    it('stores emails lowercased and finds users by email in any case', async () => {
      const u = aUser({ email: `Mixed.${ids.newSecret(4)}@Example.TEST` });
      await store.identity.createUser(u);
      const found = await store.identity.findUserByEmail(u.email.toUpperCase());
      expect(found).toEqual({ ...u, email: u.email.toLowerCase() });
      expect(await store.identity.findUserById(u.id)).toEqual({
        id: u.id,
        email: u.email.toLowerCase(),
        createdAt: u.createdAt,
      });
      expect(await store.identity.findUserByEmail('nobody@example.test')).toBeNull();
      expect(await store.identity.findUserById('usr_missing')).toBeNull();
    });

    it('refuses a second user with the same email, whatever its case', async () => {
      const u = aUser();
      await store.identity.createUser(u);
      const e = await rejectsWith(
        store.identity.createUser(aUser({ email: u.email.toUpperCase() })),
        'user_exists',
      );
      expect(e).toBeInstanceOf(AlreadyExists);
      expect(e.message).toContain(u.email.toLowerCase());
    });

    it('counts users', async () => {
      const before = await store.identity.countUsers();
      await store.identity.createUser(aUser());
      await store.identity.createUser(aUser());
      expect(await store.identity.countUsers()).toBe(before + 2);
    });

    it('creates a first user only while there is none, one winner among concurrent callers', async () => {
      const contenders = Array.from({ length: 8 }, () => aUser());
      const won = await Promise.all(contenders.map((u) => store.identity.createFirstUser(u)));
      const before = await store.identity.countUsers();
      // Other cases may have made users already: then nobody wins; else exactly one.
      expect(won.filter(Boolean).length).toBeLessThanOrEqual(1);
      expect(await store.identity.createFirstUser(aUser())).toBe(false);
      expect(await store.identity.countUsers()).toBe(before);
      for (const [i, u] of contenders.entries()) {
        expect((await store.identity.findUserById(u.id)) !== null).toBe(won[i]);
        // A first-user install's owner is its operator.
        expect(await store.identity.isOperator(u.id)).toBe(won[i]);
      }
    });

    it('makes the first user the operator, and nobody after it', async () => {
      const contenders = Array.from({ length: 8 }, () => aUser());
      const before = await store.identity.countUsers();
      const made = await Promise.all(
        contenders.map((u) => store.identity.createUserFirstIsOperator(u)),
      );
      // Every contender is created; only one that found no user before it is the operator.
      expect(await store.identity.countUsers()).toBe(before + contenders.length);
      expect(made.filter((m) => m.operator).length).toBe(before === 0 ? 1 : 0);
      for (const [i, u] of contenders.entries())
        expect(await store.identity.isOperator(u.id)).toBe(made[i]!.operator);
      const later = aUser();
      expect(await store.identity.createUserFirstIsOperator(later)).toEqual({ operator: false });
      expect(await store.identity.isOperator(later.id)).toBe(false);
      const plain = aUser();
      await store.identity.createUser(plain);
      expect(await store.identity.isOperator(plain.id)).toBe(false);
      expect(await store.identity.isOperator('usr_nobody')).toBe(false);
    });

    it('lists the memberships of a user across orgs, while an org sees only its own', async () => {
      const u = aUser();
      await store.identity.createUser(u);
      const ma: Membership = { orgId: a.orgId, userId: u.id, role: 'owner', createdAt: at(1) };
      const mb: Membership = { orgId: b.orgId, userId: u.id, role: 'viewer', createdAt: at(2) };
      await store.withOrg(a.orgId, (r) => r.memberships.insert(ma));
      await store.withOrg(b.orgId, (r) => r.memberships.insert(mb));
      expect(await store.identity.membershipsOf(u.id)).toEqual([ma, mb]);
      expect(await inA((r) => r.memberships.list())).toEqual([ma]);
      expect(await store.identity.membershipsOf('usr_missing')).toEqual([]);
    });

    it('refuses a duplicate membership and one for an unknown user', async () => {
      const u = aUser();
      await store.identity.createUser(u);
      const m: Membership = { orgId: a.orgId, userId: u.id, role: 'admin', createdAt: at() };
      await inA((r) => r.memberships.insert(m));
      await rejectsWith(
        inA((r) => r.memberships.insert({ ...m, role: 'viewer' })),
        'membership_exists',
      );
      const e = await rejectsWith(
        inA((r) => r.memberships.insert({ ...m, userId: 'usr_missing' })),
        'user_not_found',
      );
      expect(e.message).toBe('user usr_missing not found');
    });

    it('finds an API key by hash, without the hash, revoked or not', async () => {
      const key = anApiKey(a.orgId);
      await inA((r) => r.apiKeys.insert(key));
      const { keyHash: _h, ...visible } = key;
      expect(await store.identity.findApiKeyByHash(key.keyHash)).toEqual(visible);
      expect(await inA((r) => r.apiKeys.revoke(key.id, at(9)))).toBe(true);
      expect(await store.identity.findApiKeyByHash(key.keyHash)).toEqual({
        ...visible,
        revokedAt: at(9),
      });
      expect(await store.identity.findApiKeyByHash('no-such-hash')).toBeNull();
    });
  });
}
