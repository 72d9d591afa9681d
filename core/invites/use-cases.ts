import { sha256Hex } from '../hash.ts';
import {
  CoreError,
  Forbidden,
  InviteUnusable,
  isCoreError,
  NotFound,
  TooManyAttempts,
  Unavailable,
} from '../errors.ts';
import type { Invite, Org, Page, PageRequest, Role } from '../models.ts';
import { assertCan, canGrant } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  requireUser,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

/** Long enough to reach someone on holiday, short enough that a forgotten link dies. */
export const inviteLifetimeMs = 7 * 24 * 3600_000;
export const inviteTokenPrefix = 'sdi_';
/** The dashboard page an invite link opens; the token rides in the query string. */
export const acceptInvitePath = '/dashboard/invites/accept';

export type InviteStatus = 'pending' | 'expired' | 'accepted' | 'revoked';
export type InviteView = Invite & { status: InviteStatus };

export function inviteStatus(invite: Invite, now: Date): InviteStatus {
  if (invite.acceptedAt) return 'accepted';
  if (invite.revokedAt) return 'revoked';
  return Date.parse(invite.expiresAt) <= now.getTime() ? 'expired' : 'pending';
}

const view = (invite: Invite, now: Date): InviteView => ({
  ...invite,
  status: inviteStatus(invite, now),
});

/** The link an invite email carries. */
export const inviteLink = (publicUrl: string, token: string): string =>
  `${publicUrl.replace(/\/+$/, '')}${acceptInvitePath}?token=${encodeURIComponent(token)}`;

/**
 * `POST /api/invites`: emails `email` a single-use link to join the caller's org as
 * `role`. Only the token's hash is stored; the token exists in the email alone. The mail is
 * sent before the transaction commits, so a mail that cannot go out leaves no invite behind.
 */
export async function createInvite(
  deps: CoreDeps,
  principal: Principal,
  input: { email: string; role: Role },
  ctx: RequestContext,
): Promise<InviteView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-members');
  if (!canGrant(p.role, input.role)) throw new Forbidden(`invite someone as ${input.role}`, p.role);
  const { mailer } = deps;
  const publicUrl = deps.config.publicUrl;
  if (!mailer)
    throw new Unavailable(
      'mail',
      'invites are sent by email and no mail server is configured (set SMTP_URL)',
    );
  if (!publicUrl)
    throw new Unavailable('mail', 'invite links need the public URL of the dashboard (PUBLIC_URL)');
  // Counted before anything is checked or sent: refused attempts cost a counter only.
  const wait = (await deps.inviteLimits?.perOrg.hit(p.orgId)) ?? 0;
  if (wait) throw new TooManyAttempts(wait, 'invite');
  const email = input.email.toLowerCase();
  const now = deps.clock.now();
  const token = `${inviteTokenPrefix}${deps.ids.newSecret(32)}`;
  const invite = {
    id: deps.ids.newId('inv'),
    orgId: p.orgId,
    email,
    role: input.role,
    invitedBy: p.actorId,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + inviteLifetimeMs).toISOString(),
    acceptedAt: null,
    acceptedBy: null,
    revokedAt: null,
  };
  const inviter = p.userId ? await deps.store.identity.findUserById(p.userId) : null;
  await deps.store.withOrg(p.orgId, async (repos) => {
    if ((await repos.memberships.members()).some((m) => m.email === email))
      throw new CoreError('conflict', 'already_member', `${email} is already a member of this org`);
    const pending = (await repos.invites.openFor(email)).find(
      (i) => inviteStatus(i, now) === 'pending',
    );
    if (pending)
      throw new CoreError(
        'conflict',
        'invite_pending',
        `an invite to ${email} is pending (${pending.id}); revoke it to send a new one`,
        { inviteId: pending.id },
      );
    const org = await repos.orgs.get();
    await repos.invites.insert({ ...invite, tokenHash: sha256Hex(token) });
    await recordAudit(deps, repos, p, ctx, {
      action: 'invite.created',
      targetType: 'invite',
      targetId: invite.id,
      data: { email, role: invite.role, expiresAt: invite.expiresAt },
    });
    const by = inviter ? `${inviter.email} invited you` : 'You are invited';
    try {
      await mailer.send({
        to: email,
        subject: `Join ${org?.name ?? 'an org'} on selfdevop`,
        text: [
          `${by} to join the org "${org?.name ?? p.orgId}" on selfdevop as ${invite.role}.`,
          '',
          `Accept the invite: ${inviteLink(publicUrl, token)}`,
          '',
          `The link works once and expires at ${invite.expiresAt}.`,
          'If you did not expect this invite, ignore this email.',
        ].join('\n'),
      });
    } catch (e) {
      if (isCoreError(e)) throw e;
      // The reason names the mail server: for the operator's log, not the inviting admin.
      deps.logger.warn(
        { event: 'invite.mail_failed', requestId: ctx.requestId, err: (e as Error).message },
        'invite email not sent',
      );
      throw new Unavailable('mail', `the invite email to ${email} could not be sent; try again`);
    }
  });
  return view(invite, now);
}

/** `GET /api/invites`: every invite of the org with its status, oldest first. */
export async function listInvites(
  deps: CoreDeps,
  principal: Principal,
  page: PageRequest,
): Promise<Page<InviteView>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-members');
  const now = deps.clock.now();
  const invites = await deps.store.withOrg(p.orgId, (repos) => repos.invites.list(page));
  return { ...invites, items: invites.items.map((i) => view(i, now)) };
}

/** `DELETE /api/invites/{id}`: the link stops working; an accepted invite is a member now. */
export async function revokeInvite(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-members');
  await deps.store.withOrg(p.orgId, async (repos) => {
    const invite = await repos.invites.get(id);
    if (!invite) throw new NotFound('invite', id);
    if (invite.acceptedAt)
      throw new CoreError(
        'conflict',
        'invite_used',
        `invite ${id} was accepted already; remove the member instead (DELETE /api/members/${invite.acceptedBy})`,
      );
    if (invite.revokedAt) return;
    await repos.invites.revoke(id, deps.clock.now().toISOString());
    await recordAudit(deps, repos, p, ctx, {
      action: 'invite.revoked',
      targetType: 'invite',
      targetId: id,
      data: { email: invite.email },
    });
  });
}

/**
 * The invite a token stands for, while it can still be accepted. Found across orgs by the
 * token's hash alone (the org is not known yet).
 */
export async function findUsableInvite(
  deps: Pick<CoreDeps, 'store' | 'clock'>,
  token: string,
): Promise<Invite> {
  if (!token.startsWith(inviteTokenPrefix)) throw new InviteUnusable('not_found');
  const invite = await deps.store.inviteLookup.findInviteByTokenHash(sha256Hex(token));
  if (!invite) throw new InviteUnusable('not_found');
  const status = inviteStatus(invite, deps.clock.now());
  if (status === 'accepted') throw new InviteUnusable('used');
  if (status === 'revoked') throw new InviteUnusable('revoked');
  if (status === 'expired') throw new InviteUnusable('expired');
  return invite;
}

/**
 * Makes `userId` a member of the invite's org with its role, using the invite up. The
 * compare-and-set on the invite decides races: of two accepts of one token, one joins.
 */
export async function joinByInvite(
  deps: Pick<CoreDeps, 'store' | 'clock' | 'ids' | 'events'>,
  invite: Invite,
  user: { id: string; email: string },
  ctx: RequestContext,
): Promise<{ org: Pick<Org, 'id' | 'name'>; role: Role }> {
  if (user.email.toLowerCase() !== invite.email) throw new InviteUnusable('email_mismatch');
  const now = deps.clock.now().toISOString();
  return deps.store.withOrg(invite.orgId, async (repos) => {
    if (await repos.memberships.get(user.id))
      throw new CoreError('conflict', 'already_member', 'you are already a member of this org');
    if (!(await repos.invites.accept(invite.id, user.id, now))) {
      const current = await repos.invites.get(invite.id);
      const status = current ? inviteStatus(current, new Date(now)) : 'revoked';
      throw new InviteUnusable(
        status === 'accepted' ? 'used' : status === 'expired' ? 'expired' : 'revoked',
      );
    }
    await repos.memberships.insert({
      orgId: invite.orgId,
      userId: user.id,
      role: invite.role,
      createdAt: now,
    });
    await recordAudit(deps, repos, { actorType: 'user', actorId: user.id }, ctx, {
      action: 'member.added',
      targetType: 'user',
      targetId: user.id,
      data: { userId: user.id, email: user.email, role: invite.role, inviteId: invite.id },
    });
    const org = await repos.orgs.get();
    return { org: { id: invite.orgId, name: org?.name ?? '' }, role: invite.role };
  });
}

/**
 * `POST /api/invites/accept`: a signed-in user (a local session, or a Cognito one in the
 * cloud) joins the org the invite is for, when the invite was sent to their address.
 */
export async function acceptInvite(
  deps: CoreDeps,
  principal: Principal,
  input: { token: string },
  ctx: RequestContext,
): Promise<{ org: Pick<Org, 'id' | 'name'>; role: Role }> {
  const userId = requireUser(principal);
  const user = await deps.store.identity.findUserById(userId);
  if (!user) throw new NotFound('user', userId);
  const invite = await findUsableInvite(deps, input.token);
  return joinByInvite(deps, invite, user, ctx);
}
