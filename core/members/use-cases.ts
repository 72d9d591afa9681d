import { Forbidden, InvalidInput, LastOwner, NotFound } from '../errors.ts';
import type { Member, Membership, Role } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { assertCan, canGrant } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  requireUser,
  type CoreDeps,
  type OrgPrincipal,
  type Principal,
  type RequestContext,
} from '../deps.ts';

/** `GET /api/members`: everyone in the org may see who else is. */
export async function listMembers(
  deps: CoreDeps,
  principal: Principal,
): Promise<{ items: Member[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return { items: await deps.store.withOrg(p.orgId, (repos) => repos.memberships.members()) };
}

/**
 * The caller's role as it is now, under the membership lock: a person demoted a moment
 * ago acts with the new role, not the one their request was authenticated with. An API
 * key's role is its own.
 */
async function currentRole(repos: OrgRepos, p: OrgPrincipal): Promise<Role> {
  if (p.actorType !== 'user' || !p.userId) return p.role;
  const me = await repos.memberships.get(p.userId);
  if (!me) throw new NotFound('org', p.orgId);
  return me.role;
}

async function findMember(repos: OrgRepos, userId: string): Promise<Membership> {
  const member = await repos.memberships.get(userId);
  if (!member) throw new NotFound('member', userId);
  return member;
}

/** Refuses a change that would leave the org without an owner. Call under `lock()`. */
async function keepAnOwner(repos: OrgRepos, target: Membership): Promise<void> {
  if (target.role !== 'owner') return;
  const owners = (await repos.memberships.list()).filter((m) => m.role === 'owner');
  if (owners.length <= 1) throw new LastOwner(target.userId);
}

async function memberOf(repos: OrgRepos, userId: string): Promise<Member> {
  const member = (await repos.memberships.members()).find((m) => m.userId === userId);
  if (!member) throw new NotFound('member', userId);
  return member;
}

/**
 * `PATCH /api/members/{userId}`: admins and owners change roles up to their own, never of
 * someone above them; the last owner cannot be demoted. The check and the change run under
 * the org's membership lock, so two owners demoting each other at once leave one owner.
 */
export async function changeMemberRole(
  deps: CoreDeps,
  principal: Principal,
  userId: string,
  input: { role: Role },
  ctx: RequestContext,
): Promise<Member> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-members');
  return deps.store.withOrg(p.orgId, async (repos) => {
    await repos.memberships.lock();
    const role = await currentRole(repos, p);
    assertCan(role, 'manage-members');
    const target = await findMember(repos, userId);
    if (!canGrant(role, target.role) || !canGrant(role, input.role))
      throw new Forbidden(`change a member with role ${target.role} to ${input.role}`, role);
    if (target.role === input.role) return memberOf(repos, userId);
    if (input.role !== 'owner') await keepAnOwner(repos, target);
    await repos.memberships.setRole(userId, input.role);
    await recordAudit(deps, repos, p, ctx, {
      action: 'member.role_changed',
      targetType: 'user',
      targetId: userId,
      data: { userId, from: target.role, to: input.role },
    });
    return memberOf(repos, userId);
  });
}

/**
 * `DELETE /api/members/{userId}`: an admin or owner removes someone at or below their own
 * role; anyone may remove themselves (leave). The last owner can do neither.
 */
export async function removeMember(
  deps: CoreDeps,
  principal: Principal,
  userId: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  const leaving = p.actorType === 'user' && p.userId === userId;
  if (!leaving) assertCan(p.role, 'manage-members');
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.memberships.lock();
    const target = await findMember(repos, userId);
    if (!leaving) {
      const role = await currentRole(repos, p);
      assertCan(role, 'manage-members');
      if (!canGrant(role, target.role))
        throw new Forbidden(`remove a member with role ${target.role}`, role);
    }
    await keepAnOwner(repos, target);
    await repos.memberships.delete(userId);
    await recordAudit(deps, repos, p, ctx, {
      action: 'member.removed',
      targetType: 'user',
      targetId: userId,
      data: { userId, role: target.role, left: leaving },
    });
  });
}

/**
 * `POST /api/members/{userId}/transfer-ownership`: the calling owner makes another member
 * owner and becomes an admin, in one transaction.
 */
export async function transferOwnership(
  deps: CoreDeps,
  principal: Principal,
  userId: string,
  ctx: RequestContext,
): Promise<{ items: Member[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-org');
  // An owner key cannot hand over ownership: the caller becomes an admin, so it is a person.
  const callerId = requireUser(principal);
  if (userId === callerId)
    throw new InvalidInput('userId: you own this org already; name the member to transfer it to', {
      field: 'userId',
    });
  return deps.store.withOrg(p.orgId, async (repos) => {
    await repos.memberships.lock();
    assertCan(await currentRole(repos, p), 'manage-org');
    const target = await findMember(repos, userId);
    if (target.role !== 'owner') await repos.memberships.setRole(userId, 'owner');
    await repos.memberships.setRole(callerId, 'admin');
    for (const [who, from, to] of [
      [userId, target.role, 'owner'],
      [callerId, 'owner', 'admin'],
    ] as const) {
      if (from === to) continue;
      await recordAudit(deps, repos, p, ctx, {
        action: 'member.role_changed',
        targetType: 'user',
        targetId: who,
        data: { userId: who, from, to, ownershipTransfer: true },
      });
    }
    return { items: await repos.memberships.members() };
  });
}
