import { isDeployingOrServing, newestProductionRelease } from '../builds/poll.ts';
import { readPush, type HeaderReader } from '../builds/push.ts';
import { CoreError, NotFound, TooManyAttempts } from '../errors.ts';
import type { Release } from '../models.ts';
import type { PushHook } from '../ports.ts';
import { startWantedPush } from '../releases/coalesce.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

/** Where git hosts send pushes; the id is random, so the URL reveals no org or service. */
export const pushHookPath = (hookId: string): string => `/api/hooks/push/${hookId}`;

/** The KeyVault context of a hook's secret: a sealed value moved to another service does not open. */
export const pushHookContext = (orgId: string, serviceId: string): string =>
  `${orgId}:push-hook:${serviceId}`;

/** What the owner is shown once: the URL to paste into the git host, and the secret. */
export interface PushHookView {
  id: string;
  serviceId: string;
  path: string;
  /** Absolute when PUBLIC_URL is set. */
  url: string | null;
  secret: string;
  /** The git host's settings: which header carries what, per host. */
  providers: { github: string; gitlab: string; gitea: string };
}

/** A bad or missing signature: the caller is not the git host the hook was given to. */
export class PushSignatureInvalid extends CoreError {
  constructor(reason: string) {
    super('unauthorized', 'push_signature_invalid', `push webhook refused: ${reason}`);
  }
}

/**
 * Makes the service's push hook, or rotates the secret of the one it has (the URL stays).
 * The secret is answered this once; only its sealed form is stored.
 */
export async function rotatePushHook(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  ctx: RequestContext,
): Promise<PushHookView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const secret = `sdph_${deps.ids.newSecret(32)}`;
  const sealedSecret = await deps.vault.seal(secret, pushHookContext(p.orgId, serviceId));
  const hook = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    if (!service) throw new NotFound('service', serviceId);
    const saved = await repos.pushHooks.save({
      id: deps.ids.newId('ph'),
      orgId: p.orgId,
      serviceId,
      sealedSecret,
      createdAt: deps.clock.now().toISOString(),
    });
    await recordAudit(deps, repos, p, ctx, {
      action: 'service.push_hook_rotated',
      targetType: 'service',
      targetId: serviceId,
      data: { hookId: saved.id },
    });
    return saved;
  });
  const path = pushHookPath(hook.id);
  const base = deps.config.publicUrl?.replace(/\/+$/, '');
  return {
    id: hook.id,
    serviceId,
    path,
    url: base ? `${base}${path}` : null,
    secret,
    providers: {
      github: 'content type application/json; secret = this secret (X-Hub-Signature-256)',
      gitlab: 'secret token = this secret (X-Gitlab-Token)',
      gitea: 'content type application/json; secret = this secret (X-Gitea-Signature)',
    },
  };
}

/** The service's hook without its secret (the secret is shown only when made or rotated). */
export async function getPushHook(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
): Promise<Omit<PushHookView, 'secret' | 'providers'> & { createdAt: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const hook = await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.services.get(serviceId))) throw new NotFound('service', serviceId);
    return repos.pushHooks.forService(serviceId);
  });
  if (!hook) throw new NotFound('push hook', serviceId);
  const path = pushHookPath(hook.id);
  const base = deps.config.publicUrl?.replace(/\/+$/, '');
  return {
    id: hook.id,
    serviceId,
    path,
    url: base ? `${base}${path}` : null,
    createdAt: hook.createdAt,
  };
}

/** The reply to a delivery: what was started, or why nothing was. */
export type PushOutcome =
  | { status: 'deploying'; releaseId: string; gitSha: string }
  | { status: 'queued'; gitSha: string; reason: string }
  | { status: 'ignored'; reason: string };

// A hook that does not exist still costs one vault-free HMAC over the body, so a caller
// guessing ids learns nothing from how long the 404 takes compared with a wrong signature.
const absentSecret = 'sdph_absent_hook_secret_never_matches';

/**
 * A git host's push: verified by the hook's own secret on the raw body, then, for the
 * followed branch, a release of the pushed commit. The caller has no credentials but the
 * signature, so nothing here names an org or says whether a hook exists beyond a 404.
 */
export async function receivePush(
  deps: CoreDeps,
  release: ReleaseDeps,
  hookId: string,
  header: HeaderReader,
  body: Uint8Array,
  ctx: RequestContext,
): Promise<PushOutcome> {
  // Counted before the look-up, known id or not, so both paths cost the same round trips.
  const wait = (await deps.pushHookLimits?.perHook.hit(hookId)) ?? 0;
  if (wait) throw new TooManyAttempts(wait, 'push');
  const hook: PushHook | null = await deps.store.pushHookLookup.findPushHook(hookId);
  if (!hook) {
    readPush(header, body, absentSecret, 'main');
    throw new NotFound('push hook', hookId);
  }
  const secret = await deps.vault.open(
    hook.sealedSecret,
    pushHookContext(hook.orgId, hook.serviceId),
  );
  const service = await deps.store.withOrg(hook.orgId, (repos) =>
    repos.services.get(hook.serviceId),
  );
  const followed = service?.git?.ref.replace(/^refs\/heads\//, '') ?? '';
  const verdict = readPush(header, body, secret, followed);
  if (verdict.kind === 'refused') throw new PushSignatureInvalid(verdict.reason);
  if (verdict.kind === 'ignored') return { status: 'ignored', reason: verdict.reason };
  if (!service?.git)
    return { status: 'ignored', reason: 'the service has no git source; nothing to deploy' };
  const at = deps.clock.now().toISOString();
  if (verdict.deliveryId) {
    const first = await deps.store.withOrg(hook.orgId, (repos) =>
      repos.pushHooks.claimDelivery(hook.id, verdict.deliveryId!, at),
    );
    if (!first)
      return {
        status: 'ignored',
        reason: `delivery ${verdict.deliveryId} was received before; nothing to deploy again`,
      };
  }
  // A poll (or an earlier push) of this commit got there first: deployed once, not twice.
  const newest = await newestProductionRelease(release, service);
  if (newest && isDeployingOrServing(newest, verdict.sha))
    return {
      status: 'ignored',
      reason: `commit ${verdict.sha} is already ${newest.status === 'completed' ? 'deployed' : 'deploying'} (release ${newest.id}); nothing to deploy again`,
    };
  let started: Release | null;
  try {
    // Recorded first, then started: a push while a release is in flight waits for its end,
    // and a later push replaces it, so the last push is what ends up deployed.
    await deps.store.withOrg(hook.orgId, (repos) => repos.pushHooks.want(hook.id, verdict.sha));
    started = await startWantedPush(release, hook.orgId, hook.serviceId, ctx);
  } catch (e) {
    // Not deployed (no node, say): the host's retry of this delivery must count.
    if (verdict.deliveryId)
      await deps.store.withOrg(hook.orgId, (repos) =>
        repos.pushHooks.forgetDelivery(hook.id, verdict.deliveryId!),
      );
    throw e;
  }
  if (!started)
    return {
      status: 'queued',
      gitSha: verdict.sha,
      reason:
        'a release of this service is in flight; this commit deploys when it ends, unless a newer push replaces it',
    };
  return { status: 'deploying', releaseId: started.id, gitSha: started.gitSha ?? verdict.sha };
}
