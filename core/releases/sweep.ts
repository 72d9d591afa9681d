import { defaultReleaseConfig, sendStep, type ReleaseDeps } from './deps.ts';

/** The sweep's scheduled job (core/queues.ts), every minute. */
export const releaseSweepSchedule = 'release-sweep';
export const releaseSweepCron = '* * * * *';

/** Releases re-sent per sweep at most: the oldest first, the rest on the next sweep. */
const perSweep = 500;

/**
 * Re-sends the first step of releases whose first message was lost: the API commits a
 * release and then sends its first step, so a process that dies in between leaves it
 * `queued` with no message, and every later deploy of its service environment is refused
 * until it ends. A release `queued` for `joblessAfterSeconds` with no step recorded is
 * taken for one; when its message was only slow, the re-send carries the same
 * idempotency key and is dropped (or, past the queue's memory of keys, runs as a
 * duplicate that finds the release moved and does nothing). Returns how many it sent.
 */
export async function sweepJoblessReleases(
  deps: Pick<ReleaseDeps, 'store' | 'queue' | 'clock' | 'config' | 'logger'>,
): Promise<number> {
  const after = deps.config.joblessAfterSeconds ?? defaultReleaseConfig.joblessAfterSeconds;
  const before = new Date(deps.clock.now().getTime() - after * 1000).toISOString();
  const stuck = await deps.store.releaseLookup.joblessReleases(before, perSweep);
  for (const r of stuck) {
    await sendStep(deps, r, 'queued');
    deps.logger.warn(
      { orgId: r.orgId, releaseId: r.id, createdAt: r.createdAt },
      'release had no step message since it was queued; sent its first step again',
    );
  }
  return stuck.length;
}
