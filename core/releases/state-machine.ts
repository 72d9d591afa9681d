import { IllegalTransition } from '../errors.ts';
import { inFlightReleaseStatuses, type ReleaseStatus } from '../models.ts';

/**
 * Where a release may go from each status. The happy path is linear; any step before
 * `completed` may fail, and only a completed release can be rolled back (manually).
 */
const transitions: Readonly<Record<ReleaseStatus, readonly ReleaseStatus[]>> = {
  queued: ['building', 'failed'],
  building: ['artifact_ready', 'failed'],
  artifact_ready: ['candidate_started', 'failed'],
  candidate_started: ['migrating', 'failed'],
  migrating: ['health_validating', 'failed'],
  health_validating: ['traffic_shifted', 'failed'],
  // Failing here means the route was put back to the previous release.
  traffic_shifted: ['completed', 'failed'],
  completed: ['rolled_back'],
  failed: [],
  rolled_back: [],
};

/** Statuses in which a release still has automatic steps to run (at most one per service environment). */
export const inFlightStatuses: readonly ReleaseStatus[] = inFlightReleaseStatuses;

/** True when `from → to` is a legal move of the release lifecycle. */
export function canTransition(from: ReleaseStatus, to: ReleaseStatus): boolean {
  return transitions[from].includes(to);
}

/** Throws IllegalTransition unless `from → to` is legal. */
export function assertTransition(from: ReleaseStatus, to: ReleaseStatus): void {
  if (!canTransition(from, to)) throw new IllegalTransition('release', from, to);
}

/** True when no automatic step follows (completed can still be rolled back by hand). */
export function isTerminal(status: ReleaseStatus): boolean {
  return !inFlightStatuses.includes(status);
}

/** True while the worker still has steps to run for a release in this status. */
export function isInFlight(status: ReleaseStatus): boolean {
  return inFlightStatuses.includes(status);
}

/** The next status on the happy path, or null when there is none. */
export function nextStatus(status: ReleaseStatus): ReleaseStatus | null {
  return transitions[status].find((s) => s !== 'failed' && s !== 'rolled_back') ?? null;
}
