/**
 * The control plane's records, as the core sees them. Times are ISO-8601 UTC strings so a
 * record looks the same in PostgreSQL, in memory and on the wire.
 */

export const roles = ['owner', 'admin', 'deployer', 'viewer'] as const;
export type Role = (typeof roles)[number];

export interface Org {
  id: string;
  name: string;
  createdAt: string;
}

export interface User {
  id: string;
  email: string;
  createdAt: string;
}

export interface UserWithPassword extends User {
  passwordHash: string;
}

export interface Membership {
  orgId: string;
  userId: string;
  role: Role;
  createdAt: string;
}

/** A member of an org as its members see them: the person and their role. */
export interface Member {
  userId: string;
  email: string;
  role: Role;
  /** When the person joined the org. */
  createdAt: string;
}

/** An invitation to join an org, sent by email; it is accepted at most once, before it expires. */
export interface Invite {
  id: string;
  orgId: string;
  /** Lowercase: the account that accepts must have this address. */
  email: string;
  role: Role;
  /** The user or API key that sent it. */
  invitedBy: string;
  createdAt: string;
  expiresAt: string;
  acceptedAt: string | null;
  acceptedBy: string | null;
  revokedAt: string | null;
}

export interface InviteWithHash extends Invite {
  /** SHA-256 of the token in the emailed link; the token itself is never stored. */
  tokenHash: string;
}

export interface ApiKey {
  id: string;
  orgId: string;
  name: string;
  role: Role;
  /** The first characters of the key, safe to show so a person can tell keys apart. */
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface ApiKeyWithHash extends ApiKey {
  keyHash: string;
}

export interface Project {
  id: string;
  orgId: string;
  name: string;
  createdAt: string;
}

export interface Environment {
  id: string;
  orgId: string;
  projectId: string;
  name: string;
  createdAt: string;
}

export const strategies = ['blue_green', 'replace'] as const;

export const loadBalancingPolicies = ['round_robin', 'least_conn'] as const;
export type LoadBalancing = (typeof loadBalancingPolicies)[number];

/** Where a service's replicas may run: nodes carrying every one of these labels. */
export interface ServicePlacement {
  labels: Record<string, string>;
}

/** Upper bound of `Service.replicas`. */
export const maxReplicas = 50;
export type Strategy = (typeof strategies)[number];

/** How a candidate proves it is healthy before it gets traffic. */
export interface HealthPolicy {
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive successful probes required. */
  successes: number;
  /** Give up when the candidate has not become healthy by then. */
  deadlineMs: number;
}

/**
 * Where a service's images come from when they are built: a git repository, the branch or
 * tag deploys follow, and the Dockerfile inside it. The credential is not here: it is sealed
 * on the service (`sealedGitCredential`) and never leaves the store but to the fetch.
 */
export interface GitSource {
  /** `https://…`, `http://…`, `ssh://user@host[:port]/path` or `user@host:path`. */
  url: string;
  /** The branch or tag a deploy without a ref builds. */
  ref: string;
  /** The build context inside the repository; '' for its root. */
  subdir: string;
  /** The Dockerfile, relative to the context. */
  dockerfile: string;
  /** `--build-arg`s: plain values (they stay in the image's history; never secrets). */
  buildArgs: Record<string, string>;
  /**
   * An ssh repository's pinned host keys (OpenSSH known_hosts lines): given by a person, or
   * pinned from the first successful contact; enforced on every fetch. Null (or absent)
   * until then, and for other transports.
   */
  knownHosts?: string | null;
  /**
   * Poll the followed branch every this many seconds (for hosts that cannot send push
   * webhooks); null (or absent) = off.
   */
  pollIntervalSeconds?: number | null;
}

/** How a private repository is reached: an HTTPS token, or an SSH deploy key the platform made. */
export type GitCredentialKind = 'token' | 'deploy_key';

/** What a service runs: a web server behind the edge, or a worker with no port and no route. */
export const serviceKinds = ['web', 'worker'] as const;
export type ServiceKind = (typeof serviceKinds)[number];

/**
 * A worker's health gate: it must be running with no engine restart for `stableSeconds`,
 * and, when `command` is set, that command run inside it must exit 0.
 */
export interface WorkerHealth {
  stableSeconds: number;
  command: string | null;
}

export interface Service {
  id: string;
  orgId: string;
  projectId: string;
  name: string;
  /** `web` unless created as a worker; fixed at creation. */
  kind: ServiceKind;
  image: string;
  /** The port the app listens on; null for a worker (nothing reaches it). */
  containerPort: number | null;
  healthcheckPath: string;
  migrateCommand: string | null;
  strategy: Strategy;
  replicas: number;
  /** Plain (non-secret) environment variables; secrets live in the secrets table. */
  env: Record<string, string>;
  memoryMb: number | null;
  cpus: number | null;
  health: HealthPolicy;
  /** A worker's health gate; null for a web service (probed over HTTP instead). */
  workerHealth: WorkerHealth | null;
  /** How long the previous release stays warm after a switch, for instant rollback. */
  warmSeconds: number;
  /** How long connections on a replaced upstream may live on after a switch. */
  drainSeconds: number;
  /** Cookie-based sticky sessions, for Socket.IO long-polling and similar. */
  sticky: boolean;
  /** Labels a node must carry to run this service's replicas (migration 0020; `{}`: any node). */
  placement?: ServicePlacement | null;
  /** How the edge spreads requests over the replicas when not sticky (default round_robin). */
  loadBalancing?: LoadBalancing | null;
  /** How many candidates a deploy or scale starts at once (default 1). */
  maxSurge?: number | null;
  /** Built from this repository (beside or instead of `image`); null for an image-only service. */
  git: GitSource | null;
  /** Which credential `sealedGitCredential` holds; null for a public repository. */
  gitCredentialKind: GitCredentialKind | null;
  /** The public half of the deploy key (an OpenSSH line), for the repository's settings. */
  gitPublicKey: string | null;
  /**
   * The token or deploy key as JSON, sealed by the KeyVault under `gitCredentialContext`;
   * write-only: never returned by the API, logged or audited.
   */
  sealedGitCredential: string | null;
  /**
   * Build-time secrets: id → value sealed under `buildSecretContext`, offered to builds as
   * BuildKit secret mounts only; write-only (the API shows the ids).
   */
  sealedBuildSecrets: Record<string, string>;
  createdAt: string;
}

/**
 * What a node record stands for: one Docker Engine, or a Swarm cluster reached through one
 * of its managers, whose members Swarm schedules tasks onto (issue 17).
 */
export const nodeKinds = ['engine', 'swarm'] as const;
export type NodeKind = (typeof nodeKinds)[number];

export interface NodeRecord {
  id: string;
  orgId: string;
  name: string;
  /** `engine` (default) or `swarm`: `dockerHost` is then one of the cluster's managers. */
  kind: NodeKind;
  /** unix:///var/run/docker.sock, tcp://host:2376 (TLS) or ssh://user@host */
  dockerHost: string;
  /** The address the edge uses to reach containers published on this node. */
  address: string;
  labels: Record<string, string>;
  drainMode: boolean;
  createdAt: string;
  /**
   * The TLS client material ({ca, cert, key} as JSON) of a tcp:// node, sealed by the
   * KeyVault under `nodeCredentialContext(orgId, id, 'tls')`; never shown by the API.
   */
  sealedTls: string | null;
  /** The SSH key and pinned host key ({privateKey, hostKey}) of an ssh:// node, sealed likewise. */
  sealedSsh: string | null;
  /** When the credentials were last set; null for a node without any. */
  credentialsUpdatedAt: string | null;
  /**
   * Registered by the installation's operator, who vouches for it: only such a node may be
   * a local socket or on loopback (and, where tenants may not, in a private range).
   */
  operatorRegistered: boolean;
  /**
   * What the workers' node checks last concluded (core/nodes/reachability.ts): `unknown`
   * until the first check, `lost` after several misses in a row; a lost node takes no
   * placements and its replicas leave the edge.
   */
  reachability: NodeReachability;
  /** When `reachability` took its current value; null before the first check. */
  reachabilitySince: string | null;
  /** When the engine last answered a check (written at most every few seconds). */
  lastSeenAt: string | null;
  /** Checks missed in a row since the engine last answered. */
  missedChecks: number;
}

export const nodeReachabilities = ['unknown', 'reachable', 'lost'] as const;
export type NodeReachability = (typeof nodeReachabilities)[number];

export const releaseStatuses = [
  'queued',
  'building',
  'artifact_ready',
  'candidate_started',
  'migrating',
  'health_validating',
  'traffic_shifted',
  'completed',
  'failed',
  'rolled_back',
] as const;
export type ReleaseStatus = (typeof releaseStatuses)[number];

/**
 * Statuses after which a release no longer holds its service environment: no automatic
 * step follows (a completed one can still be rolled back by hand). The one source of the
 * release status sets; the migration's CHECK constraint and partial unique index are
 * checked against these by test/db/release-statuses.test.ts.
 */
export const finishedReleaseStatuses = [
  'completed',
  'failed',
  'rolled_back',
] as const satisfies readonly ReleaseStatus[];

/** Statuses in which a release still has automatic steps to run (at most one per service environment). */
export const inFlightReleaseStatuses: readonly ReleaseStatus[] = releaseStatuses.filter(
  (s) => !(finishedReleaseStatuses as readonly ReleaseStatus[]).includes(s),
);

export interface Release {
  id: string;
  orgId: string;
  serviceId: string;
  environmentId: string;
  image: string;
  imageDigest: string | null;
  /** The commit built (40 hex), once resolved; null for an image release. */
  gitSha: string | null;
  /** The branch, tag or sha the deploy asked for; null for an image release. */
  gitRef: string | null;
  status: ReleaseStatus;
  /** The release that served before this one; rollback returns traffic to it. */
  previousReleaseId: string | null;
  nodeId: string | null;
  /** The container serving (or about to serve) this release, once started. */
  containerId: string | null;
  /** host:port the edge sends traffic to for this release (its first replica's). */
  upstream: string | null;
  /**
   * Every replica of the release (migration 0020): planned at creation, started and probed
   * by the steps, changed by scale and drain. Absent or empty on releases from before:
   * then `nodeId`/`containerId`/`upstream` are its one replica.
   */
  replicaSet?: ReplicaSet | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** One container of a release, on one node. */
export interface Replica {
  /** Stable within the release: its container is `containerName(release)` (0) or `…-r<index>`. */
  index: number;
  nodeId: string;
  containerId: string | null;
  /** node address:published port, once started. */
  upstream: string | null;
  health: 'planned' | 'starting' | 'healthy' | 'unhealthy' | 'stopped';
}

/** A jsonb object, not an array: the driver sends JS arrays as PostgreSQL arrays. */
export interface ReplicaSet {
  replicas: Replica[];
}

export type StepStatus = 'running' | 'succeeded' | 'failed';

export interface ReleaseStep {
  releaseId: string;
  orgId: string;
  name: string;
  status: StepStatus;
  attempt: number;
  startedAt: string;
  finishedAt: string | null;
  error: string | null;
}

export interface ReleaseLogLine {
  releaseId: string;
  seq: number;
  at: string;
  stream: 'system' | 'stdout' | 'stderr';
  line: string;
}

export interface DeployJob {
  id: string;
  orgId: string;
  releaseId: string;
  kind: 'deploy' | 'rollback';
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

export interface SecretRecord {
  id: string;
  orgId: string;
  serviceId: string;
  environmentId: string;
  name: string;
  /** Opaque output of the KeyVault; never the plain value. */
  sealed: string;
  createdAt: string;
  updatedAt: string;
}

export const domainStatuses = [
  'pending_dns',
  'dns_verified',
  'cert_pending',
  'active',
  'failed',
] as const;
export type DomainStatus = (typeof domainStatuses)[number];

export interface Domain {
  id: string;
  orgId: string;
  serviceId: string;
  environmentId: string;
  hostname: string;
  verificationToken: string;
  status: DomainStatus;
  dnsStatus: 'pending' | 'verified' | 'failed';
  tlsStatus: 'none' | 'pending' | 'active' | 'failed';
  lastError: string | null;
  checkedAt: string | null;
  createdAt: string;
  /**
   * The certificate the edge serves for the host, as the domain worker last read it (when
   * the domain became active and on each periodic check): its expiry and issuer. Null
   * before the first certificate.
   */
  certNotAfter: string | null;
  certIssuer: string | null;
}

export interface Webhook {
  id: string;
  orgId: string;
  url: string;
  /** Sealed with the KeyVault: the signing secret is shown once. */
  sealedSecret: string;
  events: string[];
  createdAt: string;
}

/** One attempt to deliver an event (or a test event) to a webhook, and what came of it. */
export interface WebhookDelivery {
  id: string;
  orgId: string;
  webhookId: string;
  eventId: string;
  eventType: string;
  attempt: number;
  /** True when the receiver answered 2xx. */
  delivered: boolean;
  /** The receiver's HTTP status, or null when it was never reached. */
  responseStatus: number | null;
  /** Why it was not reached (refused address, DNS, timeout, connection), or null. */
  error: string | null;
  createdAt: string;
}

/** A notification channel's kind; signed webhooks are their own subject (`/api/webhooks`). */
export type NotificationChannelKind = 'slack' | 'email';

/** Where an org hears about release and domain events: a Slack incoming webhook or a mailbox. */
/**
 * An org's credential for one image registry, used to pull its images. The password (or
 * token) is sealed by the KeyVault under `registryPasswordContext`; write-only.
 */
export interface Registry {
  id: string;
  orgId: string;
  /** Normalised host[:port], as `registryOf` names an image's registry (`docker.io` for Docker Hub). */
  server: string;
  username: string;
  sealedPassword: string;
  createdAt: string;
}

export interface NotificationChannel {
  id: string;
  orgId: string;
  kind: NotificationChannelKind;
  name: string;
  /** E-mail: the address mail goes to; null for Slack. */
  address: string | null;
  /** Slack: the incoming-webhook URL, sealed with the KeyVault (it lets anyone post); null for e-mail. */
  sealedUrl: string | null;
  /** What the channel is shown as: the address, or the Slack URL with its secret path masked. */
  target: string;
  events: string[];
  /** Events arriving within this many seconds go out as one message (0: each alone). */
  groupWindowSeconds: number;
  createdAt: string;
}

/** An event waiting for its channel's grouping window to close. */
export interface HeldNotification {
  id: string;
  orgId: string;
  channelId: string;
  eventId: string;
  eventType: string;
  data: Record<string, unknown>;
  heldAt: string;
}

/** One attempt to send a channel one grouped message, and what came of it. */
export interface NotificationDelivery {
  id: string;
  orgId: string;
  channelId: string;
  /** The event type the message is about (the first one's, when several types were grouped). */
  eventType: string;
  /** How many events the message grouped. */
  events: number;
  firstEventId: string;
  attempt: number;
  delivered: boolean;
  /** Why it was not delivered (the receiver's status, refused address, SMTP error), or null. */
  error: string | null;
  createdAt: string;
}

export type ActorType = 'user' | 'api_key' | 'system';

export interface AuditEvent {
  id: string;
  orgId: string;
  actorType: ActorType;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string | null;
  data: Record<string, unknown>;
  requestId: string | null;
  createdAt: string;
}

/** One page of a list: `nextCursor` is null on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface PageRequest {
  limit: number;
  cursor?: string | null;
}

/** The engines a data service runs, each with the versions this build's images carry. */
export const dataEngines = ['redis', 'mariadb', 'postgres'] as const;
export type DataEngine = (typeof dataEngines)[number];

export const dataServiceStatuses = ['provisioning', 'ready', 'failed', 'deleting'] as const;
export type DataServiceStatus = (typeof dataServiceStatuses)[number];

export const redisPersistenceModes = ['none', 'rdb', 'aof'] as const;
export const redisEvictionPolicies = [
  'noeviction',
  'allkeys-lru',
  'allkeys-lfu',
  'allkeys-random',
  'volatile-lru',
  'volatile-lfu',
  'volatile-random',
  'volatile-ttl',
] as const;

/** Engine settings; Redis's are always explicit (memory spikes under Socket.IO fan-out). */
export interface DataServiceSettings {
  maxmemoryMb?: number;
  evictionPolicy?: (typeof redisEvictionPolicies)[number];
  persistence?: (typeof redisPersistenceModes)[number];
}

/** A Redis, MariaDB or PostgreSQL container of a project, on one node, its data on a named volume. */
export interface DataService {
  id: string;
  orgId: string;
  projectId: string;
  name: string;
  engine: DataEngine;
  version: string;
  nodeId: string;
  status: DataServiceStatus;
  error: string | null;
  settings: DataServiceSettings;
  /** The generated password, sealed under `dataServiceSecretContext`; never shown by the API. */
  sealedPassword: string;
  /** Set by a delete: whether the worker removes the data volume too. */
  removeVolume: boolean;
  /** Five-field UTC cron of its scheduled backups (nightly by default). */
  backupSchedule: string;
  /** How many backups retention keeps; null (or absent) keeps the default 14/8/6. */
  backupRetention?: BackupRetention | null;
  /**
   * Which completed backups are drilled: `every_backup` (absent reads so), or `weekly`: a
   * backup only when no drill passed (or is running) within the last 7 days or the newest
   * drill failed (`drillDecision`).
   */
  drillSchedule?: DrillSchedule;
  /**
   * A rotation in progress: the new password, sealed like `sealedPassword`, set before the
   * engine is touched so a redelivered rotation can tell which one the server takes.
   */
  pendingSealedPassword?: string | null;
  /** When the current password became current by a rotation (null: never rotated). */
  passwordRotatedAt?: string | null;
  /**
   * A MariaDB or PostgreSQL server that holds other data services' databases (one database
   * and user each). Never linked itself: its user administers every database on it.
   */
  shareable?: boolean;
  /**
   * Set: this data service is one database and user on that shareable server (same project,
   * engine and node), not a container of its own. Null or absent: dedicated.
   */
  sharedServerId?: string | null;
  /** Moving this shared database to a dedicated server of its own (null or absent: never asked). */
  move?: DataServiceMove | null;
  /** The newest in-place upgrade to a newer minor (null or absent: never asked). */
  upgrade?: DataServiceUpgrade | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * An in-place minor upgrade: `upgrading` while the worker backs up, swaps the container to
 * the new image on the same volume and checks it; `upgraded`; or `failed` at `step`, with
 * `rolledBack` saying the old image serves the same volume again.
 */
export interface DataServiceUpgrade {
  status: 'upgrading' | 'upgraded' | 'failed';
  from: string;
  to: string;
  step: 'backup' | 'swap' | 'check' | null;
  backupId: string | null;
  error: string | null;
  rolledBack: boolean;
  at: string;
  /** What the upgraded server reported itself to be (`SHOW server_version`, …), once upgraded. */
  serverVersion?: string | null;
}

/**
 * A move from a shared server to a dedicated one: `moving` while the worker backs up,
 * restores, re-links and redeploys; `moved` once the links point at `targetId` (this copy
 * stays, unlinked, until confirmed); `failed` says at which `step` (this copy still linked).
 */
export interface DataServiceMove {
  status: 'moving' | 'moved' | 'failed';
  targetId: string | null;
  backupId: string | null;
  step: 'backup' | 'restore' | 'relink' | 'redeploy' | null;
  error: string | null;
  releaseIds: string[];
  at: string;
  /** Written every minute by the worker running the move: a move whose beat stopped died with it. */
  heartbeatAt?: string | null;
}

export const backupTriggers = [
  'schedule',
  'manual',
  'pre_restore',
  'import',
  'pre_upgrade',
] as const;
export const backupStatuses = ['running', 'completed', 'failed'] as const;
export const drillStatuses = ['running', 'passed', 'failed'] as const;

/**
 * What a backup proves it holds, written to the ObjectStore LAST: a backup without one never
 * counts. Row counts per table (MariaDB, PostgreSQL) or the key count (Redis) are what a
 * drill checks after restoring; the checksums are of the stored (encrypted) object and of
 * the dump before compression.
 */
export interface BackupManifest {
  /**
   * 1: gzip ran in the control plane, `rawSha256` is the dump's. 2: gzip ran in the dump's
   * one-off on the node, `gzipSha256` is the compressed stream's (the dump itself is then
   * covered by gzip's own CRC-32 and length, checked as it is decompressed) and `rawSha256`
   * is null. The stored object's layout is the same in both.
   */
  format: 1 | 2;
  backupId: string;
  dataServiceId: string;
  engine: DataEngine;
  serverVersion: string;
  /** How the dump was taken (`mariadb-dump --single-transaction`, `pg_dump -Fc`, `redis BGSAVE`). */
  tool: string;
  /** gzip, then AES-256-GCM under the data key; the 12-byte IV first, the 16-byte tag last. */
  encoding: 'gzip+aes-256-gcm';
  /** The data key, sealed by the KeyVault under `<org>:backup:<backup id>`. */
  sealedDataKey: string;
  objectKey: string;
  rawBytes: number;
  storedBytes: number;
  /** SHA-256 (hex) of the stored object, checked before a byte of it is restored. */
  sha256: string;
  /** SHA-256 (hex) of the dump itself, checked after decompression (format 1). */
  rawSha256: string | null;
  /** SHA-256 (hex) and length of the gzip stream, checked after decryption (format 2). */
  gzipSha256?: string;
  gzipBytes?: number;
  tables: Record<string, number>;
  keys: number | null;
  /** When the data was read (the backup's RPO is measured from here). */
  takenAt: string;
  /** Set on a backup imported from another install: which backup of which data service it was there. */
  importedFrom?: { backupId: string; dataServiceId: string; exportedAt: string };
}

export interface DataServiceBackup {
  id: string;
  orgId: string;
  dataServiceId: string;
  trigger: (typeof backupTriggers)[number];
  status: (typeof backupStatuses)[number];
  error: string | null;
  objectKey: string;
  manifestKey: string;
  sealedDataKey: string;
  rawBytes: number | null;
  storedBytes: number | null;
  sha256: string | null;
  manifest: BackupManifest | null;
  startedAt: string;
  finishedAt: string | null;
  drillStatus: (typeof drillStatuses)[number] | null;
  drillError: string | null;
  /** Time from the drill's start to the restored copy checked, in ms. */
  drillRtoMs: number | null;
  /** Age of the data when the drill passed (drill start − takenAt), in ms. */
  drillRpoMs: number | null;
  drilledAt: string | null;
}

/** How often a data service's backups are restore-drilled (`drillDecision`). */
export const drillSchedules = ['every_backup', 'weekly'] as const;
export type DrillSchedule = (typeof drillSchedules)[number];

/** How many backups retention keeps: the newest of each of the last N days, ISO weeks, months. */
export interface BackupRetention {
  daily: number;
  weekly: number;
  monthly: number;
}

// ---------------------------------------------------------------- control-plane backups

/** The manifest of a control-plane backup, written last beside its dump. */
export interface ControlBackupManifest {
  format: 1;
  kind: 'control-plane';
  backupId: string;
  serverVersion: string;
  tool: 'pg_dump -Fc';
  encoding: 'gzip+aes-256-gcm';
  /** The data key, sealed by the KeyVault under `control:backup:<backup id>`. */
  sealedDataKey: string;
  objectKey: string;
  rawBytes: number;
  storedBytes: number;
  sha256: string;
  rawSha256: string;
  /** Rows per `schema.table`, counted in the snapshot the dump read. */
  tables: Record<string, number>;
  takenAt: string;
}

export const controlBackupTriggers = ['schedule', 'manual'] as const;

/** One backup of the control plane's own database (the install's, no org's). */
export interface ControlBackup {
  id: string;
  trigger: (typeof controlBackupTriggers)[number];
  status: (typeof backupStatuses)[number];
  error: string | null;
  objectKey: string;
  manifestKey: string;
  sealedDataKey: string;
  rawBytes: number | null;
  storedBytes: number | null;
  sha256: string | null;
  manifest: ControlBackupManifest | null;
  startedAt: string;
  finishedAt: string | null;
  drillStatus: (typeof drillStatuses)[number] | null;
  drillError: string | null;
  drillRtoMs: number | null;
  drillRpoMs: number | null;
  drilledAt: string | null;
}

/** When the control plane is backed up, and what retention keeps. */
export interface ControlBackupSettings {
  schedule: string;
  retention: BackupRetention;
  updatedAt: string;
}

/** A data service's connection URL handed to an app service's containers as `envName`. */
export interface DataServiceLink {
  id: string;
  orgId: string;
  dataServiceId: string;
  serviceId: string;
  envName: string;
  createdAt: string;
}

// ---------------------------------------------------------------- cron jobs

/** What a job does when it fires while an earlier run is still running. */
export const jobOverlaps = ['skip', 'allow'] as const;
export type JobOverlap = (typeof jobOverlaps)[number];

/** A command run on a schedule in a one-off container of a service environment's current image. */
export interface Job {
  id: string;
  orgId: string;
  serviceId: string;
  environmentId: string;
  name: string;
  /** Five-field cron (minute hour day-of-month month day-of-week), read in `timeZone`. */
  schedule: string;
  /** An IANA time zone (`Europe/Berlin`, `UTC`). */
  timeZone: string;
  command: string;
  overlap: JobOverlap;
  timeoutSeconds: number;
  /** Further attempts after a failed or timed-out one. */
  retries: number;
  createdAt: string;
  updatedAt: string;
}

export const jobRunStatuses = ['running', 'succeeded', 'failed', 'timed_out', 'skipped'] as const;
export type JobRunStatus = (typeof jobRunStatuses)[number];
export type JobRunTrigger = 'schedule' | 'manual' | 'retry';

/** One attempt of a job. */
export interface JobRun {
  id: string;
  orgId: string;
  jobId: string;
  trigger: JobRunTrigger;
  attempt: number;
  /** Whether it holds the job's one running slot (overlap `skip`). */
  exclusive: boolean;
  status: JobRunStatus;
  exitCode: number | null;
  /** The release whose image it ran. */
  releaseId: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  /** The last lines of its output (at most 8 KiB), secrets masked. */
  logTail: string;
  error: string | null;
}
