import { isCoreError } from '../errors.ts';
import type { Principal, RequestContext } from '../deps.ts';
import type { Release } from '../models.ts';
import { createRelease } from './create.ts';
import type { ReleaseDeps } from './deps.ts';
import { isInFlight } from './state-machine.ts';

/** The actor of a push: a deployer of the hook's org (the signature proved the git host). */
export const pushPrincipal = (orgId: string, hookId: string): Principal => ({
  actorType: 'api_key',
  actorId: `push_hook:${hookId}`,
  userId: null,
  orgId,
  role: 'deployer',
});

/** The actor of a poll of the followed branch (a service with polling on and no push hook). */
export const pollPrincipal = (orgId: string, serviceId: string): Principal => ({
  actorType: 'api_key',
  actorId: `git_poll:${serviceId}`,
  userId: null,
  orgId,
  role: 'deployer',
});

/**
 * The commit the service wants deployed next, taken: the push hook's slot (which polls of a
 * service with a hook share, so pushes and polls coalesce together), else the slot polls of
 * a service without a hook keep.
 */
async function takeWanted(
  deps: ReleaseDeps,
  orgId: string,
  serviceId: string,
): Promise<{ hookId: string | null; sha: string } | null> {
  return deps.store.withOrg(orgId, async (r) => {
    const pushed = await r.pushHooks.takeWanted(serviceId);
    if (pushed) return pushed;
    const polled = await r.gitPolls.takeWanted(serviceId);
    return polled ? { hookId: null, sha: polled } : null;
  });
}

/**
 * Starts the commit the service's pushes want, if any, so that pushes in quick succession
 * deploy the latest rather than racing: each push records its sha as the one wanted
 * (replacing an older one not yet started), and this runs after every push and whenever a
 * release of the service ends. It takes the wanted sha (a compare-and-set, so one caller
 * wins it) and releases it; when a release is still in flight it puts the sha back, unless a
 * newer push replaced it meanwhile, and the end of that release starts it. Answers the
 * release started, or null.
 */
export async function startWantedPush(
  deps: ReleaseDeps,
  orgId: string,
  serviceId: string,
  ctx: RequestContext | null = null,
): Promise<Release | null> {
  // Bounded: each turn is a release that ended between our try and our putting back.
  for (let turn = 0; turn < 5; turn++) {
    const wanted = await takeWanted(deps, orgId, serviceId);
    if (!wanted) return null;
    try {
      return await createRelease(
        deps,
        wanted.hookId ? pushPrincipal(orgId, wanted.hookId) : pollPrincipal(orgId, serviceId),
        { serviceId, gitRef: wanted.sha },
        ctx,
      );
    } catch (e) {
      if (!isCoreError(e) || e.code !== 'release_in_flight') throw e;
      const inFlightId = (e.details as { releaseId: string }).releaseId;
      const still = await deps.store.withOrg(orgId, async (r) => {
        // Put back only if no newer push took its place: the newer one wins.
        if (wanted.hookId) await r.pushHooks.putBackWanted(wanted.hookId, wanted.sha);
        else await r.gitPolls.putBackWanted(serviceId, wanted.sha);
        const release = await r.releases.get(inFlightId);
        return release !== null && isInFlight(release.status);
      });
      // Read after the put-back committed: a release still in flight will find the sha when
      // it ends; one that ended meanwhile may have looked before, so try again now.
      if (still) return null;
    }
  }
  return null;
}
