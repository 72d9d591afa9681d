/** Store contract: members of an org (memberships with their people) and invites. */
import { describe, expect, it } from 'vitest';
import { at, aUser, anInvite, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function memberCases(): void {
  describe('members', () => {
    it("lists an org's members with their email, and changes and removes only its own", async () => {
      const ann = aUser();
      const bob = aUser();
      await store.identity.createUser(ann);
      await store.identity.createUser(bob);
      await inA(async (r) => {
        await r.memberships.insert({
          orgId: a.orgId,
          userId: ann.id,
          role: 'owner',
          createdAt: at(1),
        });
        await r.memberships.insert({
          orgId: a.orgId,
          userId: bob.id,
          role: 'viewer',
          createdAt: at(2),
        });
      });
      await store.withOrg(b.orgId, (r) =>
        r.memberships.insert({ orgId: b.orgId, userId: bob.id, role: 'admin', createdAt: at(3) }),
      );
      expect(await inA((r) => r.memberships.members())).toEqual([
        { userId: ann.id, email: ann.email, role: 'owner', createdAt: at(1) },
        { userId: bob.id, email: bob.email, role: 'viewer', createdAt: at(2) },
      ]);
      expect(await inA((r) => r.memberships.get(bob.id))).toMatchObject({ role: 'viewer' });
      expect(await inA((r) => r.memberships.get('usr_nobody'))).toBeNull();

      expect(await inA((r) => r.memberships.setRole(bob.id, 'deployer'))).toBe(true);
      expect(await inA((r) => r.memberships.setRole('usr_nobody', 'deployer'))).toBe(false);
      // Bob's role in org B is B's business.
      expect(await store.withOrg(b.orgId, (r) => r.memberships.get(bob.id))).toMatchObject({
        role: 'admin',
      });
      expect(await store.withOrg(b.orgId, (r) => r.memberships.delete(ann.id))).toBe(false);
      expect(await inA((r) => r.memberships.delete(bob.id))).toBe(true);
      expect(await inA((r) => r.memberships.delete(bob.id))).toBe(false);
      expect((await store.identity.membershipsOf(bob.id)).map((m) => m.orgId)).toEqual([b.orgId]);
    });

    it('takes the membership lock inside a transaction and keeps working', async () => {
      const user = aUser();
      await store.identity.createUser(user);
      await inA(async (r) => {
        await r.memberships.lock();
        await r.memberships.insert({
          orgId: a.orgId,
          userId: user.id,
          role: 'admin',
          createdAt: at(),
        });
      });
      expect(await inA((r) => r.memberships.get(user.id))).toMatchObject({ role: 'admin' });
    });
  });

  describe('invites', () => {
    it('stores an invite without showing its hash, confined to its org', async () => {
      const invite = anInvite(a.orgId);
      await inA((r) => r.invites.insert(invite));
      const { tokenHash: _h, ...visible } = invite;
      expect(await inA((r) => r.invites.get(invite.id))).toEqual(visible);
      expect(await store.withOrg(b.orgId, (r) => r.invites.get(invite.id))).toBeNull();
      expect(await inA((r) => r.invites.list({ limit: 10 }))).toEqual({
        items: [visible],
        nextCursor: null,
      });
      expect(await store.withOrg(b.orgId, (r) => r.invites.list({ limit: 10 }))).toEqual({
        items: [],
        nextCursor: null,
      });
      expect(await inA((r) => r.invites.openFor(invite.email.toUpperCase()))).toEqual([visible]);
      await expect(inA((r) => r.invites.insert(anInvite(b.orgId)))).rejects.toThrow(
        /row-level security/,
      );
    });

    it('refuses a second invite with the same token hash', async () => {
      await inA((r) => r.invites.insert(anInvite(a.orgId, { tokenHash: 'same-hash' })));
      await rejectsWith(
        store.withOrg(b.orgId, (r) =>
          r.invites.insert(anInvite(b.orgId, { tokenHash: 'same-hash' })),
        ),
        'invite_exists',
      );
    });

    it('finds an invite across orgs by its token hash alone', async () => {
      const invite = anInvite(b.orgId, { tokenHash: `h-${Math.random()}` });
      await store.withOrg(b.orgId, (r) => r.invites.insert(invite));
      const { tokenHash, ...visible } = invite;
      expect(await store.inviteLookup.findInviteByTokenHash(tokenHash)).toEqual(visible);
      expect(await store.inviteLookup.findInviteByTokenHash('no-such-hash')).toBeNull();
    });

    it('accepts once, never after expiry or revocation, never from another org', async () => {
      const user = aUser();
      await store.identity.createUser(user);
      const invite = anInvite(a.orgId, { expiresAt: at(100) });
      await inA((r) => r.invites.insert(invite));
      expect(await store.withOrg(b.orgId, (r) => r.invites.accept(invite.id, user.id, at(1)))).toBe(
        false,
      );
      expect(await inA((r) => r.invites.accept(invite.id, user.id, at(100)))).toBe(false);
      expect(await inA((r) => r.invites.accept(invite.id, user.id, at(1)))).toBe(true);
      expect(await inA((r) => r.invites.accept(invite.id, user.id, at(2)))).toBe(false);
      expect(await inA((r) => r.invites.get(invite.id))).toMatchObject({
        acceptedAt: at(1),
        acceptedBy: user.id,
      });
      expect(await inA((r) => r.invites.revoke(invite.id, at(3)))).toBe(false);
      expect(await inA((r) => r.invites.openFor(invite.email))).toEqual([]);

      const revoked = anInvite(a.orgId, { expiresAt: at(100) });
      await inA((r) => r.invites.insert(revoked));
      expect(await store.withOrg(b.orgId, (r) => r.invites.revoke(revoked.id, at(1)))).toBe(false);
      expect(await inA((r) => r.invites.revoke(revoked.id, at(1)))).toBe(true);
      expect(await inA((r) => r.invites.revoke(revoked.id, at(2)))).toBe(false);
      expect(await inA((r) => r.invites.accept(revoked.id, user.id, at(3)))).toBe(false);
    });
  });
}
