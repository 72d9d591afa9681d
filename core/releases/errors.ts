import type { Release } from '../models.ts';
import { CoreError } from '../errors.ts';

/** No node of the org can take a release: none registered, or all in drain mode. */
export class NoNodeAvailable extends CoreError {
  constructor() {
    super(
      'conflict',
      'no_node_available',
      'no node is available for the release: register one with POST /api/nodes or take one out of drain mode',
    );
  }
}

/** A deploy of a service scaled to 0 (stopped): nothing would run. */
export class ServiceStopped extends CoreError {
  constructor(serviceId: string) {
    super(
      'conflict',
      'service_stopped',
      `service ${serviceId} is scaled to 0 replicas: start it (POST /api/services/{id}/start) or scale it up before deploying`,
      { serviceId },
    );
  }
}

/** Rollback was asked of a release that cannot be rolled back now. */
export class ReleaseNotRollbackable extends CoreError {
  constructor(releaseId: string, why: string) {
    super(
      'conflict',
      'release_not_rollbackable',
      `release ${releaseId} cannot be rolled back: ${why}`,
      { releaseId },
    );
  }
}

/** Cancel was asked of a release that is already switching traffic or finished. */
export class ReleaseNotCancellable extends CoreError {
  constructor(release: Pick<Release, 'id' | 'status'>) {
    super(
      'conflict',
      'release_not_cancellable',
      `release ${release.id} cannot be cancelled: it is ${release.status}; only a release not yet switching traffic can be`,
      { releaseId: release.id, status: release.status },
    );
  }
}

/** The release has no earlier healthy release to return traffic to. */
export class NothingToRollBackTo extends CoreError {
  constructor(releaseId: string, why = 'no earlier completed release') {
    super(
      'conflict',
      'nothing_to_roll_back_to',
      `nothing to roll back to from release ${releaseId}: ${why}`,
      {
        releaseId,
      },
    );
  }
}

/**
 * Why a step failed, as the release will record it. `transient` failures (Docker or
 * Caddy unreachable) are retried by redelivery until the step runs out of attempts.
 */
export class StepFailed extends Error {
  readonly transient: boolean;
  constructor(reason: string, transient: boolean, cause?: unknown) {
    super(reason, cause === undefined ? undefined : { cause });
    this.name = 'StepFailed';
    this.transient = transient;
  }
}

export const isStepFailed = (e: unknown): e is StepFailed => e instanceof StepFailed;

/** The caller already holds as many live log streams as one caller may. */
export class TooManyStreams extends CoreError {
  constructor(limit: number) {
    super(
      'rate_limited',
      'too_many_streams',
      `at most ${limit} live log streams may be open per caller; close one before opening another`,
      { limit },
    );
  }
}
