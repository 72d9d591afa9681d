import { sha256Hex } from '../hash.ts';
import {
  AlreadyExists,
  CoreError,
  InvalidCredentials,
  NotFound,
  SignupClosed,
  TooManyAttempts,
  Unauthenticated,
} from '../errors.ts';
import type { Org, User } from '../models.ts';
import type { LoginInput, SignupInput } from '../schemas.ts';
import { recordAudit, type CoreDeps, type Principal, type RequestContext } from '../deps.ts';

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
  if (mode === 'closed') throw new SignupClosed();
  if (mode === 'first-user' && (await deps.store.identity.countUsers()) > 0)
    throw new SignupClosed();

  const now = deps.clock.now().toISOString();
  const user = { id: deps.ids.newId('usr'), email: input.email, createdAt: now };
  const existing = await deps.store.identity.findUserByEmail(input.email);
  if (existing) throw new AlreadyExists('user', input.email);
  await deps.store.identity.createUser({
    ...user,
    passwordHash: await local.hashPassword(input.password),
  });

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
  const waitAccount = deps.loginLimits.perAccount.hit(input.email);
  const waitIp = ctx.ip ? deps.loginLimits.perIp.hit(ctx.ip) : 0;
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
  deps.loginLimits.perAccount.reset(input.email);
  return { token: await local.issueSession(user.id) };
}

/**
 * Turns a bearer credential into a Principal. API keys (`sdo_…`) belong to one org; a
 * session belongs to a user who picks an org with `X-Org-Id` when in several.
 */
export async function authenticate(
  deps: Pick<CoreDeps, 'store' | 'auth' | 'apiKeyCache'>,
  token: string | null,
  requestedOrgId: string | null,
): Promise<Principal> {
  if (!token)
    throw new Unauthenticated(
      'missing bearer token: send Authorization: Bearer <token or API key>',
    );
  if (token.startsWith(apiKeyPrefix)) {
    const hash = sha256Hex(token);
    let key = deps.apiKeyCache?.get(hash) ?? null;
    if (!key) {
      key = await deps.store.identity.findApiKeyByHash(hash);
      // Only valid keys are remembered: an unknown key always asks the database.
      if (key && !key.revokedAt) deps.apiKeyCache?.set(hash, key);
    }
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
  const user = await deps.store.identity.findUserById(claims.userId);
  if (!user) throw new Unauthenticated('the session user no longer exists');
  const memberships = await deps.store.identity.membershipsOf(user.id);
  const base = { actorType: 'user' as const, actorId: user.id, userId: user.id };
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
