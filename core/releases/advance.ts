import { isCoreError } from '../errors.ts';
import { releaseStatuses, type Release, type ReleaseStatus } from '../models.ts';
import type { MessageHandler } from '../ports.ts';
import { appendLog, endStep, failUnstarted, loadContext, type StepContext } from './context.ts';
import {
  defaultReleaseConfig,
  releaseGroup,
  releaseStepsQueue,
  sendRetire,
  sendStep,
  type ReleaseDeps,
  type ReleaseStepMessage,
} from './deps.ts';
import { startWantedPush } from './coalesce.ts';
import { isStepFailed } from './errors.ts';
import { failRelease, undoCancelled } from './fail.ts';
import { isCancellable } from './cancel.ts';
import { watchCancel } from './cancel-watch.ts';
import { OrgSlots } from './slots.ts';
import { reshapeRelease } from './reshape.ts';
import { isInFlight } from './state-machine.ts';
import {
  build,
  complete,
  migrate,
  retireDelaySeconds,
  startCandidate,
  validateAndSwitch,
  type StepRunner,
} from './steps.ts';

/** The step that runs for a release in each in-flight status. */
const stepAt: Record<(typeof releaseStatuses)[number], StepRunner | null> = {
  queued: build,
  building: build,
  artifact_ready: startCandidate,
  candidate_started: migrate,
  migrating: migrate,
  health_validating: validateAndSwitch,
  traffic_shifted: complete,
  completed: null,
  failed: null,
  rolled_back: null,
};

export interface AdvanceResult {
  /** False when the message was a duplicate, stale, or its release is gone. */
  ran: boolean;
  /** The release's status afterwards; null when it does not exist. */
  status: ReleaseStatus | null;
}

const isBehind = (a: ReleaseStatus, b: ReleaseStatus) =>
  releaseStatuses.indexOf(a) < releaseStatuses.indexOf(b);

/**
 * Runs the next step of a release: the handler of one `release-steps` message. A message
 * for a status the release has left is a no-op. A step that fails fails the release
 * (automatic rollback); an unreachable Docker or Caddy is retried, by rethrowing, until
 * `attempt` reaches `config.maxStepAttempts`. Store errors are rethrown for redelivery.
 */
export async function advanceRelease(
  deps: ReleaseDeps,
  message: ReleaseStepMessage,
  attempt = 1,
): Promise<AdvanceResult> {
  const { orgId, releaseId } = message;
  if (message.cleanup) return cleanUpCancelled(deps, message, attempt);
  if (message.reshape) {
    const ran = await reshapeRelease(deps, message, attempt);
    return { ran, status: ran ? 'completed' : null };
  }
  const loaded = await deps.store.withOrg(orgId, async (repos) => {
    const release = await repos.releases.get(releaseId);
    if (!release) return null;
    // A step may move the release before its work (queued → building): its redelivered
    // message still belongs to it, so compare steps, not statuses.
    const current =
      isInFlight(release.status) &&
      (message.status === undefined || stepAt[message.status] === stepAt[release.status]);
    if (!current) return { release, context: null };
    try {
      return { release, context: await loadContext(deps, repos, release, attempt) };
    } catch (e) {
      if (!isCoreError(e) || e.kind !== 'not_found') throw e;
      // A release whose service, environment or node is gone cannot run: it fails as it is.
      await failUnstarted(deps, repos, release, e.message);
      return { release: { ...release, status: 'failed' as const }, context: null };
    }
  });
  if (!loaded) {
    deps.logger.warn(
      { orgId, releaseId },
      'release step message for a release that does not exist: dropped',
    );
    return { ran: false, status: null };
  }
  const { release, context } = loaded;
  if (!context) {
    // A worker that died between moving the release and sending the next message leaves
    // the release waiting; the redelivered old message sends it (a resend is deduplicated).
    if (message.status && isInFlight(release.status) && isBehind(message.status, release.status)) {
      await sendStep(deps, release, release.status);
    }
    // Likewise for the retirement sent right after completion (also deduplicated).
    if (message.status === 'traffic_shifted' && release.status === 'completed')
      await resendRetire(deps, release);
    return { ran: false, status: release.status };
  }
  context.hop = message.hop ?? 0;
  context.seen = message.seen;
  await runStep(context, stepAt[release.status]!);
  return { ran: true, status: context.release.status };
}

/** The clean-up a cancel queued, in the release's group: after any step still running for it. */
async function cleanUpCancelled(
  deps: ReleaseDeps,
  message: ReleaseStepMessage,
  attempt: number,
): Promise<AdvanceResult> {
  const context = await deps.store.withOrg(message.orgId, async (repos) => {
    const release = await repos.releases.get(message.releaseId);
    if (release?.status !== 'failed') return null;
    try {
      return await loadContext(deps, repos, release, attempt);
    } catch (e) {
      if (!isCoreError(e) || e.kind !== 'not_found') throw e;
      return null;
    }
  });
  if (!context) return { ran: false, status: null };
  await undoCancelled(context);
  return { ran: true, status: context.release.status };
}

async function runStep(c: StepContext, step: StepRunner): Promise<void> {
  // A release that may still be cancelled is watched while its step runs: a cancel then
  // stops the build or image move in progress instead of waiting for it to end.
  const watch = isCancellable(c.release.status) ? watchCancel(c) : null;
  if (watch) c.signal = watch.signal;
  try {
    await step(c);
  } catch (e) {
    watch?.stop();
    if (watch?.signal.aborted) return stoppedByCancel(c, watch.reason());
    if (!isStepFailed(e)) throw e;
    const max = c.deps.config.maxStepAttempts;
    if (e.transient && c.attempt < max) {
      const note = `${e.message} (attempt ${c.attempt} of ${max}, retrying)`;
      if (c.currentStep) await endStep(c, c.currentStep, note);
      await appendLog(c, note);
      throw e;
    }
    await failRelease(c, e.message);
  } finally {
    watch?.stop();
  }
}

/**
 * A step a cancel stopped: the release is already failed with the canceller's reason, and its
 * clean-up (queued behind this step) undoes the rest; the step only records where it stopped.
 */
async function stoppedByCancel(c: StepContext, reason: string | null): Promise<void> {
  const why = reason ?? 'the release was cancelled';
  const step = c.currentStep;
  if (step) await endStep(c, step, `stopped: ${why}`);
  await appendLog(c, `${step ? `step ${step.name}` : 'the step'} stopped at once: ${why}`);
}

async function resendRetire(deps: ReleaseDeps, release: Release): Promise<void> {
  const previousId = release.previousReleaseId;
  if (!previousId) return;
  const found = await deps.store.withOrg(release.orgId, async (repos) => ({
    previous: await repos.releases.get(previousId),
    service: await repos.services.get(release.serviceId),
  }));
  if (found.previous && found.service)
    await sendRetire(deps, found.previous, release.id, retireDelaySeconds(found.service));
}

/** How long a step waits before it tries again when its org holds its share of slots. */
const deferSeconds = 1;

/**
 * The `release-steps` queue handler for a worker: `queue.consume(releaseStepsQueue,
 * handleReleaseStep(deps))`. An org already running `maxStepsPerOrg` steps in this worker
 * gets its message re-queued (a moment later, behind other orgs' messages) instead of a
 * slot, so one tenant's slow releases never take every slot.
 */
export function handleReleaseStep(deps: ReleaseDeps): MessageHandler<ReleaseStepMessage> {
  // Made on the first message: building the handler table touches no port or config.
  let slots: OrgSlots | null = null;
  return async (m) => {
    slots ??= new OrgSlots(deps.config.maxStepsPerOrg ?? defaultReleaseConfig.maxStepsPerOrg);
    const free = slots.take(m.payload.orgId);
    if (!free) {
      await deferStep(deps, m.payload);
      return;
    }
    let result: AdvanceResult;
    try {
      result = await advanceRelease(deps, m.payload, m.attempt);
    } finally {
      free();
    }
    // A release that ended lets the commit a push wants since then start (coalesced pushes).
    if (result.status && !isInFlight(result.status)) await startWantedAfter(deps, m.payload);
  };
}

async function startWantedAfter(deps: ReleaseDeps, message: ReleaseStepMessage): Promise<void> {
  const release = await deps.store.withOrg(message.orgId, (repos) =>
    repos.releases.get(message.releaseId),
  );
  if (!release) return;
  try {
    await startWantedPush(deps, message.orgId, release.serviceId);
  } catch (e) {
    // The wanted commit cannot deploy (no node, a bad ref): the release that ended is done
    // all the same, so its message is not redelivered for this.
    deps.logger.warn(
      { orgId: message.orgId, serviceId: release.serviceId, err: (e as Error).message },
      'the commit a push wanted could not start',
    );
  }
}

async function deferStep(deps: ReleaseDeps, message: ReleaseStepMessage): Promise<void> {
  const release = await deps.store.withOrg(message.orgId, (repos) =>
    repos.releases.get(message.releaseId),
  );
  if (!release) return;
  const hop = (message.hop ?? 0) + 1;
  const what = message.cleanup
    ? 'cleanup'
    : message.reshape
      ? `reshape:${message.reshape.id}`
      : (message.status ?? release.status);
  await deps.queue.send(
    releaseStepsQueue,
    { ...message, hop },
    {
      group: releaseGroup(release),
      idempotencyKey: `${release.id}:${what}:hop:${hop}`,
      delaySeconds: deferSeconds,
      maxAttempts: deps.config.maxStepAttempts + 2,
    },
  );
}
