import { NotFound } from '../errors.ts';
import { releaseStatuses, type Release, type ReleaseStatus } from '../models.ts';
import { assertCan } from '../roles.ts';
import { requireOrg, type Principal, type RequestContext } from '../deps.ts';
import { appendEvent, updateDeployJob } from './context.ts';
import { sendCleanup, type ReleaseDeps } from './deps.ts';
import { ReleaseNotCancellable } from './errors.ts';

/**
 * Statuses a release may be cancelled in: every in-flight one before `traffic_shifted`.
 * From there on traffic is (being) switched, and only completing or a rollback is safe.
 */
export const cancellableStatuses: readonly ReleaseStatus[] = releaseStatuses.slice(
  0,
  releaseStatuses.indexOf('traffic_shifted'),
);

export const isCancellable = (status: ReleaseStatus): boolean =>
  cancellableStatuses.includes(status);

/** Compare-and-set attempts against a worker moving the release at the same moment. */
const maxRaces = 5;

/**
 * Cancels a release that is not yet switching traffic (`POST /api/releases/{id}/cancel`):
 * it becomes `failed` with "cancelled by <actor>" at once (so the next deploy of its
 * service is accepted), audited and notified as `release.failed`; then a worker removes
 * its candidate and restores what a replace deploy stopped, after any step still running
 * for it. A release already switching or finished → ReleaseNotCancellable (409).
 */
export async function cancelRelease(
  deps: ReleaseDeps,
  principal: Principal,
  input: { releaseId: string },
  ctx: RequestContext | null = null,
): Promise<Release> {
  const p = requireOrg(principal);
  assertCan(p.role, 'deploy');
  const { releaseId } = input;
  const reason = `cancelled by ${p.actorType === 'api_key' ? 'API key' : 'user'} ${p.actorId}`;
  const cancelled = await deps.store.withOrg(p.orgId, async (repos) => {
    for (let race = 0; race < maxRaces; race++) {
      const release = await repos.releases.get(releaseId);
      if (!release) throw new NotFound('release', releaseId);
      if (!isCancellable(release.status)) throw new ReleaseNotCancellable(release);
      const at = deps.clock.now().toISOString();
      const patch = { status: 'failed' as const, error: reason, finishedAt: at, updatedAt: at };
      if (!(await repos.releases.transition(release.id, release.status, patch))) continue;
      const done: Release = { ...release, ...patch };
      await updateDeployJob(deps, repos, release.id, { status: 'failed' });
      await appendEvent(
        deps,
        repos,
        done,
        'release.failed',
        { reason, step: null, cancelled: true, from: release.status },
        p,
        ctx?.requestId ?? null,
      );
      return { release: done, from: release.status };
    }
    // The worker kept moving it: report where it is now.
    const now = await repos.releases.get(releaseId);
    throw new ReleaseNotCancellable(now!);
  });
  // Nothing has run for a queued release: nothing to undo.
  if (cancelled.from !== 'queued') {
    try {
      await sendCleanup(deps, cancelled.release);
    } catch (e) {
      // The release is cancelled either way; its candidate stays until a worker or an
      // operator removes it, so say which.
      deps.logger.error(
        { releaseId, err: e instanceof Error ? e.message : String(e) },
        'cancelled release: its clean-up could not be queued; its candidate container may remain',
      );
    }
  }
  return cancelled.release;
}
