/**
 * The release engine: the use cases the API and the deploy worker call. Each lives in its
 * own sibling file; this is the one import for callers.
 *
 * @example
 * // API: POST /api/releases → 202
 * const release = await createRelease(deps, principal, { serviceId, image: 'acme/web:2' }, ctx);
 * // worker
 * await queue.consume(releaseStepsQueue, handleReleaseStep(deps));
 * await queue.consume(releaseRetireQueue, handleReleaseRetire(deps));
 */
export { advanceRelease, handleReleaseStep, type AdvanceResult } from './advance.ts';
export { cancelRelease, cancellableStatuses, isCancellable } from './cancel.ts';
export { createRelease, createReleaseInput, type CreateReleaseInput } from './create.ts';
export {
  defaultReleaseConfig,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseConfig,
  type ReleaseDeps,
  type ReleaseRetireMessage,
  type ReleaseStepMessage,
} from './deps.ts';
export {
  NoNodeAvailable,
  NothingToRollBackTo,
  ReleaseNotCancellable,
  ReleaseNotRollbackable,
} from './errors.ts';
export { releaseSweepSchedule, sweepJoblessReleases } from './sweep.ts';
export { getRelease, listReleaseLogs, listReleases, type ReleaseView } from './queries.ts';
export { handleReleaseRetire, retireRelease, type RetireResult } from './retire.ts';
export {
  handleReleaseRollback,
  releaseRollbackQueue,
  rollbackRelease,
  type ReleaseRollbackMessage,
  type RollbackResult,
} from './rollback.ts';
