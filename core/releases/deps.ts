import type { NodeRecord, Release, ReleaseStatus, Replica } from '../models.ts';
import { openNodeTarget } from '../nodes/credentials.ts';
import type { EventPublisher } from '../webhooks/events.ts';
import type {
  BackupCodec,
  ObjectStore,
  Scheduler,
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
  SourceRepository,
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
  /**
   * How many times this step re-queued itself (a health check between slices, a step
   * deferred while its org held its share of slots): each hop is a new message, so its
   * idempotency key differs from the step's first one.
   */
  hop?: number;
  /** The last probe answer a health check logged, so a wait over many slices logs changes only. */
  seen?: string;
  /** Sent by a cancel: undo what the release's steps left (candidate, route, replaced release). */
  cleanup?: true;
  /**
   * Sent by scale, stop/start and drain: change the serving release's replicas to
   * `replicas`, none left on `avoid` nodes (`id` makes each request its own message).
   */
  reshape?: {
    id: string;
    replicas: number;
    avoid: string[];
    reason: string;
    /** Set on the later slices of a reshape: what its first delivery planned and started. */
    pending?: ReshapePending;
  };
}

/**
 * A reshape between slices: a new replica's gate holds no worker slot while it waits, as a
 * deploy's health check does not (a drain or a scale of several services would otherwise
 * take an org's every slot, and its deploys would wait behind them).
 */
export interface ReshapePending {
  /** Replica indexes of the serving set that stay, and that leave once the new ones serve. */
  keep: number[];
  leaving: number[];
  /** Nodes of new replicas not started yet (later maxSurge batches). */
  toStart: string[];
  /** New replicas started so far: `healthy` once through their gate, else `starting`. */
  started: Replica[];
  /** The gate deadline of the batch in progress (epoch ms). */
  deadlineAt: number;
}

/** Payload on `release-retire`: stop the container of `releaseId` unless it serves again. */
export interface ReleaseRetireMessage {
  orgId: string;
  releaseId: string;
}

export interface ReleaseConfig {
  /** Cron jobs: the first retry's delay in seconds, doubling after (30 unless set; tests shorten it). */
  jobRetryBaseSeconds?: number;
  /** Data services: readiness checks (one a second) before a new server counts as failed. */
  dataReadyAttempts?: number;
  /**
   * Data services: how long one dump, drill or restore may run (2 hours unless set; the cloud
   * sets one worker invocation's limit). A backup `running` past it plus a grace period was
   * left by a dead worker, and the `backup-sweep` job fails it.
   */
  backupTimeoutMs?: number;
  /** Default hosts live under it: `<service>-<env>-<id6>.<edgeDomain>`. */
  edgeDomain: string;
  /** A migration running longer is killed and the release fails. */
  migrationTimeoutMs: number;
  /** Deliveries of a step before an unreachable Docker or Caddy fails the release. */
  maxStepAttempts: number;
  /**
   * How long one delivery of the health step probes before it re-queues itself (default
   * 5 s): a candidate that takes minutes to become healthy holds no worker slot meanwhile.
   */
  healthSliceMs?: number;
  /** Release steps one org may run at once in one worker process (default 2); more wait their turn. */
  maxStepsPerOrg?: number;
  /** A release still `queued` with no step after this long lost its first message (default 60). */
  joblessAfterSeconds?: number;
  /**
   * How often a running step reads its release to notice a cancel and abort its build or
   * image move (default 1000 ms, `defaultCancelPollMs`).
   */
  cancelPollMs?: number;
  /** Limits of an image build from git (defaults: `defaultBuildLimits`). */
  build?: Partial<BuildLimits>;
  /**
   * Whether a tenant's node may take traffic at a private address (self-hosted without open
   * signup). Loopback and link-local are an operator's node's only, whatever this says.
   */
  tenantPrivateNodes?: boolean;
}

/** What one build may take of its node: it must never take the host down. */
export interface BuildLimits {
  /** The build is cancelled after this long and the release fails. */
  timeoutMs: number;
  /** Memory and CPUs asked of the engine for the build's steps; null for none. */
  memoryMb: number | null;
  cpus: number | null;
  /** A build context (the repository's files after `.dockerignore`) larger than this fails. */
  maxSourceBytes: number;
  /** The base image of zero-config Node.js builds: Node and npm, shipped offline. */
  nodeImage: string;
  /**
   * Built images kept per service environment beyond those a release needs (serving, in
   * flight, its rollback target): the newest this-many distinct commits that served.
   */
  keepImages: number;
  /** The build cache of each engine is trimmed to this many bytes (least recently used first). */
  cacheMaxBytes: number;
  /** Builds one engine runs at once, whatever org asks; more wait their turn, fairly across orgs. */
  perNode: number;
}

export const defaultBuildLimits: BuildLimits = {
  timeoutMs: 15 * 60_000,
  memoryMb: 2048,
  cpus: 2,
  maxSourceBytes: 500 * 1024 * 1024,
  nodeImage: 'selfdevop/node-build:24',
  keepImages: 5,
  cacheMaxBytes: 10 * 1024 * 1024 * 1024,
  perNode: 2,
};

export const defaultReleaseConfig = {
  migrationTimeoutMs: 15 * 60_000,
  maxStepAttempts: 5,
  healthSliceMs: 5_000,
  maxStepsPerOrg: 2,
  joblessAfterSeconds: 60,
} satisfies Omit<ReleaseConfig, 'edgeDomain'>;

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
  /** Git repositories, for releases built from a ref; absent where no build can run. */
  source?: SourceRepository;
  /** Where release events go beyond the audit trail (webhooks); none in unit tests. */
  events?: EventPublisher;
  /** Data services' backups: the object store, the codec and the schedules (data-service-work). */
  objects?: ObjectStore;
  backupCodec?: BackupCodec;
  scheduler?: Scheduler;
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

/**
 * Sends the message that runs the step of `release` in `status`; a resend of it is dropped.
 * `again` re-queues the step after a delay (hop n of it), for a step that gives its slot up.
 */
export async function sendStep(
  deps: Pick<ReleaseDeps, 'queue' | 'config'>,
  release: Pick<Release, 'orgId' | 'id' | 'serviceId' | 'environmentId'>,
  status: ReleaseStatus,
  again?: { hop: number; delaySeconds: number; seen?: string },
): Promise<void> {
  const message: ReleaseStepMessage = { orgId: release.orgId, releaseId: release.id, status };
  if (again) {
    message.hop = again.hop;
    if (again.seen !== undefined) message.seen = again.seen;
  }
  const options: SendOptions = {
    group: releaseGroup(release),
    idempotencyKey: again ? `${release.id}:${status}:hop:${again.hop}` : `${release.id}:${status}`,
    ...(again && again.delaySeconds > 0 ? { delaySeconds: again.delaySeconds } : {}),
    // Above maxStepAttempts: the engine fails the release itself at that attempt, and the
    // spare deliveries cover store errors, which are retried rather than failing the release.
    maxAttempts: deps.config.maxStepAttempts + 2,
  };
  await deps.queue.send(releaseStepsQueue, message, options);
}

/** Asks a worker to undo what a cancelled release's steps left, after any step still running for it. */
export async function sendCleanup(
  deps: Pick<ReleaseDeps, 'queue' | 'config'>,
  release: Release,
): Promise<void> {
  const message: ReleaseStepMessage = {
    orgId: release.orgId,
    releaseId: release.id,
    status: release.status,
    cleanup: true,
  };
  // In the release's group: it runs once the step in progress (if any) has finished.
  await deps.queue.send(releaseStepsQueue, message, {
    group: releaseGroup(release),
    idempotencyKey: `${release.id}:cleanup`,
    maxAttempts: deps.config.maxStepAttempts + 2,
  });
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
