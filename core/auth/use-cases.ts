import { keyHasherOf } from '../hash.ts';
import {
  CoreError,
  InvalidCredentials,
  InvalidInput,
  InviteUnusable,
  NotFound,
  SignupClosed,
  SignupRefused,
  TooManyAttempts,
  Unauthenticated,
} from '../errors.ts';
import type { Invite, Org, User } from '../models.ts';
import type { LoginInput, SignupInput } from '../schemas.ts';
import { recordAudit, type CoreDeps, type Principal, type RequestContext } from '../deps.ts';
import { findUsableInvite, joinByInvite } from '../invites/use-cases.ts';

export const apiKeyPrefix = 'sdo_';

/** Local-mode capabilities of the AuthProvider; absent in cloud mode, where Cognito signs users in. */
function localAuth(deps: CoreDeps) {
  const { issueSession, hashPassword, verifyPassword } = deps.auth;
  if (!issueSession || !hashPassword || !verifyPassword) {
    throw new CoreError(
      'not_found',
      'local_auth_disabled',
      'local signup and login are not enabled in this mode',
    );
  }
  return {
    issueSession: issueSession.bind(deps.auth),
    hashPassword: hashPassword.bind(deps.auth),
    verifyPassword: verifyPassword.bind(deps.auth),
  };
}

export async function signup(
  deps: CoreDeps,
  input: SignupInput,
  ctx: RequestContext,
): Promise<{ token: string; user: Pick<User, 'id' | 'email'>; org: Pick<Org, 'id' | 'name'> }> {
  const local = localAuth(deps);
  const mode = deps.config.signupMode;
  // An invite is how people join a closed install: it lets in its one address, once.
  if (mode === 'closed' && !input.inviteToken) throw new SignupClosed();
  // Before any hashing: a flood from one source costs a counter, not a bcrypt.
  const wait = ctx.ip ? await deps.signupLimits.perIp.hit(ctx.ip) : 0;
  if (wait) {
    deps.logger.warn(
      { event: 'signup.rate_limited', requestId: ctx.requestId, ip: ctx.ip },
      'signup rate limited',
    );
    throw new TooManyAttempts(wait, 'signup');
  }
  let invite: Invite | null = null;
  if (input.inviteToken) {
    invite = await findUsableInvite(deps, input.inviteToken);
    if (invite.email !== input.email.toLowerCase()) throw new InviteUnusable('email_mismatch');
  } else if (mode === 'first-user' && (await deps.store.identity.countUsers()) > 0) {
    throw new SignupClosed();
  }

  const now = deps.clock.now().toISOString();
  const user = { id: deps.ids.newId('usr'), email: input.email, createdAt: now };
  // Hashed before the existence check, so a known email answers no faster than a new one.
  const withPassword = { ...user, passwordHash: await local.hashPassword(input.password) };
  if (await deps.store.identity.findUserByEmail(input.email)) throw new SignupRefused();
  try {
    if (mode === 'first-user' && !invite) {
      // Counted and inserted atomically: of concurrent first signups exactly one wins.
      if (!(await deps.store.identity.createFirstUser(withPassword))) throw new SignupClosed();
    } else {
      // Local signup is the self-hosted edition's: its very first account is the operator.
      await deps.store.identity.createUserFirstIsOperator(withPassword);
    }
  } catch (e) {
    // A concurrent signup took the email between the check and the insert.
    if (e instanceof CoreError && e.code === 'user_exists') throw new SignupRefused();
    throw e;
  }

  if (invite) {
    // A member of the org that invited them, not the owner of a new one.
    const joined = await joinByInvite(deps, invite, user, ctx);
    return {
      token: await local.issueSession(user.id),
      user: { id: user.id, email: user.email },
      org: joined.org,
    };
  }
  const org = {
    id: deps.ids.newId('org'),
    name: `${input.email.split('@')[0]}'s org`,
    createdAt: now,
  };
  await deps.store.withOrg(org.id, async (repos) => {
    await repos.orgs.insert(org);
    await repos.memberships.insert({
      orgId: org.id,
      userId: user.id,
      role: 'owner',
      createdAt: now,
    });
    await recordAudit(deps, repos, { actorType: 'user', actorId: user.id }, ctx, {
      action: 'user.signed_up',
      targetType: 'user',
      targetId: user.id,
    });
  });
  return {
    token: await local.issueSession(user.id),
    user: { id: user.id, email: user.email },
    org: { id: org.id, name: org.name },
  };
}

/** Bcrypt of a throwaway password, so an unknown email costs as much time as a wrong password. */
let decoyHash: Promise<string> | null = null;

export async function login(
  deps: CoreDeps,
  input: LoginInput,
  ctx: RequestContext,
): Promise<{ token: string }> {
  const local = localAuth(deps);
  // Per account *and* source: a stranger's guesses lock only the stranger out, and the
  // owner, from anywhere else, still gets in. Counted in the Store, across API processes.
  const accountSource = `${input.email.toLowerCase()}|${ctx.ip ?? 'unknown'}`;
  const waitAccount = await deps.loginLimits.perAccountSource.hit(accountSource);
  const waitIp = ctx.ip ? await deps.loginLimits.perIp.hit(ctx.ip) : 0;
  if (waitAccount || waitIp) {
    deps.logger.warn(
      { event: 'login.rate_limited', requestId: ctx.requestId, ip: ctx.ip },
      'login rate limited',
    );
    throw new TooManyAttempts(Math.max(waitAccount, waitIp));
  }
  const user = await deps.store.identity.findUserByEmail(input.email);
  decoyHash ??= local.hashPassword('decoy-password-for-timing');
  const ok = await local.verifyPassword(input.password, user?.passwordHash ?? (await decoyHash));
  if (!user || !ok) {
    deps.logger.info(
      { event: 'login.failed', requestId: ctx.requestId, ip: ctx.ip },
      'login failed',
    );
    throw new InvalidCredentials();
  }
  await deps.loginLimits.perAccountSource.reset(accountSource);
  return { token: await local.issueSession(user.id) };
}

/**
 * Ends the caller's session on the server: its token is refused from now on, in this
 * process at once and in others within the revoked-session cache's lifetime (1 s).
 */
export async function logout(
  deps: Pick<CoreDeps, 'store' | 'revokedSessions' | 'clock'>,
  principal: Principal,
): Promise<void> {
  if (principal.actorType !== 'user' || !principal.sessionId)
    throw new InvalidInput(
      'logout ends a session token; an API key is ended by revoking it (DELETE /api/orgs/{orgId}/api-keys/{keyId})',
    );
  const expiresAt = principal.sessionExpiresAt
    ? new Date(principal.sessionExpiresAt)
    : new Date(deps.clock.now().getTime() + 24 * 3600_000);
  await deps.store.authGuards.revokeSession(principal.sessionId, expiresAt);
  deps.revokedSessions?.invalidate(principal.sessionId, true);
}

/**
 * Turns a bearer credential into a Principal. API keys (`sdo_…`) belong to one org; a
 * session belongs to a user who picks an org with `X-Org-Id` when in several.
 */
async function isSessionRevoked(
  deps: Pick<CoreDeps, 'store' | 'revokedSessions'>,
  sessionId: string,
): Promise<boolean> {
  const cached = deps.revokedSessions?.get(sessionId);
  if (cached !== undefined) return cached;
  const generation = deps.revokedSessions?.generation ?? 0;
  const revoked = await deps.store.authGuards.isSessionRevoked(sessionId);
  deps.revokedSessions?.setIfUnchanged(sessionId, revoked, generation);
  return revoked;
}

export async function authenticate(
  deps: Pick<CoreDeps, 'store' | 'auth' | 'apiKeyCache' | 'revokedSessions' | 'keyHasher'>,
  token: string | null,
  requestedOrgId: string | null,
): Promise<Principal> {
  if (!token)
    throw new Unauthenticated(
      'missing bearer token: send Authorization: Bearer <token or API key>',
    );
  if (token.startsWith(apiKeyPrefix)) {
    const hash = keyHasherOf(deps).sha256Hex(token);
    const find = () => deps.store.identity.findApiKeyByHash(hash);
    // Only valid keys are remembered: an unknown or revoked key always asks the database.
    const key = deps.apiKeyCache
      ? await deps.apiKeyCache.getOrLoad(hash, find, (k) => !k.revokedAt)
      : await find();
    if (!key) throw new Unauthenticated('API key is not valid');
    if (key.revokedAt) throw new Unauthenticated('API key has been revoked');
    if (requestedOrgId && requestedOrgId !== key.orgId) throw new NotFound('org', requestedOrgId);
    return {
      actorType: 'api_key',
      actorId: key.id,
      userId: null,
      orgId: key.orgId,
      role: key.role,
    };
  }
  const claims = await deps.auth.verifySession(token);
  if (claims.sessionId && (await isSessionRevoked(deps, claims.sessionId)))
    throw new Unauthenticated('session has ended (logged out); log in again');
  const user = await deps.store.identity.findUserById(claims.userId);
  if (!user) throw new Unauthenticated('the session user no longer exists');
  const memberships = await deps.store.identity.membershipsOf(user.id);
  const base = {
    actorType: 'user' as const,
    actorId: user.id,
    userId: user.id,
    ...(claims.sessionId
      ? { sessionId: claims.sessionId, sessionExpiresAt: claims.expiresAt.toISOString() }
      : {}),
  };
  if (requestedOrgId) {
    const m = memberships.find((x) => x.orgId === requestedOrgId);
    if (!m) throw new NotFound('org', requestedOrgId);
    return { ...base, orgId: m.orgId, role: m.role };
  }
  if (memberships.length === 1)
    return { ...base, orgId: memberships[0]!.orgId, role: memberships[0]!.role };
  // Several orgs and no pick: calls that need an org say so (requireOrg); creating one works.
  return { ...base, orgId: null, role: null, orgChoices: memberships.map((m) => m.orgId) };
}

/**
 * Whether the caller is an operator of the installation: a user the store records as one
 * (a self-hosted install's first account) or whose email configuration names. An API key
 * never is: it is a bearer secret kept in CI systems and handed around an org, it outlives
 * its maker's role, and operator power reaches the control plane's own host.
 */
export async function isOperator(
  deps: Pick<CoreDeps, 'store' | 'config'>,
  principal: Principal,
): Promise<boolean> {
  if (principal.actorType !== 'user' || !principal.userId) return false;
  const named = deps.config.operatorEmails ?? [];
  if (named.length > 0) {
    const user = await deps.store.identity.findUserById(principal.userId);
    if (user && named.includes(user.email.toLowerCase())) return true;
  }
  return deps.store.identity.isOperator(principal.userId);
}
