import type { NodeRecord, Release, ReleaseStatus } from '../models.ts';
import { openNodeTarget } from '../nodes/credentials.ts';
import type { EventPublisher } from '../webhooks/events.ts';
import type {
  Clock,
  ContainerRuntime,
  DockerTarget,
  EdgeRouter,
  EventQueue,
  HealthProbe,
  IdGenerator,
  KeyVault,
  Logger,
  SendOptions,
  Store,
} from '../ports.ts';

/** Queue of release steps: one message per step, grouped per service environment. */
export const releaseStepsQueue = 'release-steps';
/** Queue of delayed retirements of the release a deploy replaced, after its warm window. */
export const releaseRetireQueue = 'release-retire';

/**
 * Payload on `release-steps`. `status` is the status the message was sent for: a message
 * that finds its release elsewhere is a duplicate (or a resend after a crash) and runs nothing.
 */
export interface ReleaseStepMessage {
  orgId: string;
  releaseId: string;
  status?: ReleaseStatus;
}

/** Payload on `release-retire`: stop the container of `releaseId` unless it serves again. */
export interface ReleaseRetireMessage {
  orgId: string;
  releaseId: string;
}

export interface ReleaseConfig {
  /** Default hosts live under it: `<service>-<env>-<id6>.<edgeDomain>`. */
  edgeDomain: string;
  /** A migration running longer is killed and the release fails. */
  migrationTimeoutMs: number;
  /** Deliveries of a step before an unreachable Docker or Caddy fails the release. */
  maxStepAttempts: number;
}

export const defaultReleaseConfig: Omit<ReleaseConfig, 'edgeDomain'> = {
  migrationTimeoutMs: 15 * 60_000,
  maxStepAttempts: 5,
};

/** The ports the release engine needs, injected by a composition root (API or worker). */
export interface ReleaseDeps {
  store: Store;
  runtime: ContainerRuntime;
  edge: EdgeRouter;
  queue: EventQueue;
  vault: KeyVault;
  probe: HealthProbe;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  config: ReleaseConfig;
  /** Where release events go beyond the audit trail (webhooks); none in unit tests. */
  events?: EventPublisher;
}

/** The audit actor of everything the worker does on its own. */
export const workerActor = { actorType: 'system', actorId: 'release-worker' } as const;

/**
 * How to reach a node's Docker Engine: its host with its TLS or SSH credentials opened
 * from the vault. Throws NodeCredentialsUnreadable (a conflict) when they do not open.
 */
export function openTarget(
  deps: Pick<ReleaseDeps, 'vault'>,
  node: NodeRecord,
): Promise<DockerTarget> {
  return openNodeTarget(deps.vault, node);
}

/** One service environment's releases run one step at a time, in order. */
export function releaseGroup(release: Pick<Release, 'serviceId' | 'environmentId'>): string {
  return `${release.serviceId}:${release.environmentId}`;
}

/** Sends the message that runs the step of `release` in `status`; a resend of it is dropped. */
export async function sendStep(
  deps: Pick<ReleaseDeps, 'queue' | 'config'>,
  release: Release,
  status: ReleaseStatus,
): Promise<void> {
  const message: ReleaseStepMessage = { orgId: release.orgId, releaseId: release.id, status };
  const options: SendOptions = {
    group: releaseGroup(release),
    idempotencyKey: `${release.id}:${status}`,
    // Above maxStepAttempts: the engine fails the release itself at that attempt, and the
    // spare deliveries cover store errors, which are retried rather than failing the release.
    maxAttempts: deps.config.maxStepAttempts + 2,
  };
  await deps.queue.send(releaseStepsQueue, message, options);
}

/** Schedules the retirement of `release`'s container after `delaySeconds`. */
export async function sendRetire(
  deps: Pick<ReleaseDeps, 'queue' | 'config'>,
  release: Release,
  replacedBy: string,
  delaySeconds: number,
): Promise<void> {
  const message: ReleaseRetireMessage = { orgId: release.orgId, releaseId: release.id };
  await deps.queue.send(releaseRetireQueue, message, {
    delaySeconds,
    // Per replacement: a release that served again and is replaced again is retired again.
    idempotencyKey: `${release.id}:retire:${replacedBy}`,
    maxAttempts: deps.config.maxStepAttempts + 2,
  });
}
