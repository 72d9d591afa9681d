/**
 * Every side effect selfdevop has goes through one of these ports. Each has a
 * self-hosted implementation, a cloud one and an in-memory one, and all of them pass the
 * same contract suite in test/contracts/<port>.case.ts.
 */
import type {
  ApiKey,
  ApiKeyWithHash,
  AuditEvent,
  DataService,
  DataServiceBackup,
  DataServiceLink,
  DataServiceMove,
  DeployJob,
  Domain,
  Environment,
  Invite,
  InviteWithHash,
  Member,
  Membership,
  NodeRecord,
  NodeReachability,
  Org,
  Page,
  PageRequest,
  Project,
  Release,
  ReleaseLogLine,
  ReleaseStatus,
  ReleaseStep,
  Role,
  SecretRecord,
  Service,
  User,
  UserWithPassword,
  Webhook,
  WebhookDelivery,
  NotificationChannel,
  Registry,
  NotificationDelivery,
  HeldNotification,
  Job,
  JobRun,
  ControlBackup,
  ControlBackupSettings,
} from './models.ts';
import type { Principal, RequestContext } from './deps.ts';

// ---------------------------------------------------------------- time, ids, logs

export interface Clock {
  now(): Date;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface IdGenerator {
  /** A new, time-ordered, opaque id such as `prj_01jd…`; ids sort by creation time. */
  newId(prefix: string): string;
  /** A random URL-safe string carrying `bytes` bytes of entropy (API keys, tokens). */
  newSecret(bytes: number): string;
}

export interface Logger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export interface Metrics {
  count(name: string, labels?: Record<string, string>, by?: number): void;
  observe(name: string, value: number, labels?: Record<string, string>): void;
  gauge(name: string, value: number, labels?: Record<string, string>): void;
}

/**
 * The series a chart can ask for; each adapter knows how its backend measures them.
 * `connections` is the edge's open proxied connections: WebSockets, and requests in flight;
 * `restarts` the most restarts of any one replica within the crash-loop window (15 min), the
 * figure the crash_loop alert compares.
 */
export const serviceSeriesKeys = [
  'requests',
  'errors_4xx',
  'errors_5xx',
  'latency_p50',
  'latency_p95',
  'connections',
  'cpu',
  'memory',
  'restarts',
] as const;
export type ServiceSeriesKey = (typeof serviceSeriesKeys)[number];
export const nodeSeriesKeys = ['cpu', 'memory', 'disk'] as const;
export type NodeSeriesKey = (typeof nodeSeriesKeys)[number];
/**
 * A project's series: its services' environments together. Rates, connections, CPU and
 * memory are sums; latency is the project's own p95 where the backend keeps the histogram
 * (Prometheus), else the slowest member's (CloudWatch cannot merge percentiles).
 */
export const projectSeriesKeys = [
  'requests',
  'errors_5xx',
  'latency_p95',
  'connections',
  'cpu',
  'memory',
] as const;
export type ProjectSeriesKey = (typeof projectSeriesKeys)[number];
export type SeriesKey = ServiceSeriesKey | NodeSeriesKey | ProjectSeriesKey;

/**
 * What one chart reads: a service environment (its edge hosts, for the edge's per-host
 * series) or a node, always inside one org, between two times at one step.
 */
export type SeriesScope =
  | { kind: 'service'; orgId: string; serviceId: string; environmentId: string; hosts: string[] }
  | { kind: 'node'; orgId: string; nodeId: string }
  /**
   * A project: each of its service environments (the label set stays bounded by them: the
   * answer is one summed series per key) and every edge host they answer on.
   */
  | {
      kind: 'project';
      orgId: string;
      projectId: string;
      members: { serviceId: string; environmentId: string }[];
      hosts: string[];
    };

export interface SeriesRequest {
  scope: SeriesScope;
  keys: readonly SeriesKey[];
  start: Date;
  end: Date;
  stepSeconds: number;
}

/** `[unix seconds, value]` points, oldest first; a series with no data has none. */
export interface Series {
  key: SeriesKey;
  points: [number, number][];
}

/**
 * Reads time series (Prometheus self-hosted, CloudWatch in the cloud). Request rates are
 * per second, latencies in seconds, CPU in cores, memory in bytes, node shares 0..1,
 * connections a count.
 * Failures throw `Unavailable` naming the backend; a backend without data answers [].
 */
export interface MetricsQuery {
  /** Where the series come from, for the page ("Prometheus at …", "CloudWatch"). */
  readonly source: string;
  series(request: SeriesRequest): Promise<Series[]>;
}

// ---------------------------------------------------------------- auth

/**
 * SHA-256 of a string as lowercase hex: how an API key is stored and, on every request that
 * carries one, looked up. A port because the fast implementation is the runtime's native
 * hash (node:crypto); the pure one in core/hash.ts is the default and the in-memory twin.
 */
export interface KeyHasher {
  sha256Hex(text: string): string;
}

export interface SessionClaims {
  userId: string;
  expiresAt: Date;
  /** The token's own id (`jti`), by which logout revokes it; absent where tokens carry none. */
  sessionId?: string;
}

export interface AuthProvider {
  /** Checks a session token; throws Unauthenticated when it is not one this provider issued. */
  verifySession(token: string): Promise<SessionClaims>;
  /** Local mode only: the cloud's sessions are issued by Cognito. */
  issueSession?(userId: string): Promise<string>;
  hashPassword?(password: string): Promise<string>;
  verifyPassword?(password: string, hash: string): Promise<boolean>;
}

/** What an OAuth 2.0 token endpoint hands back for a sign-in or a refresh. */
export interface SignInTokens {
  /** The token the AuthProvider verifies (a Cognito access token). */
  accessToken: string;
  /** Absent on a refresh: the refresh token stays the one the sign-in gave. */
  refreshToken?: string;
  /** Seconds the access token lives. */
  expiresIn: number;
}

/**
 * A hosted sign-in page (Cognito's hosted UI), reached with the OAuth 2.0 authorization
 * code grant and PKCE as a public client. The dashboard sends browsers there and trades
 * the code they come back with for tokens. Cloud mode only: local mode signs in itself.
 * Failures are CoreErrors: Unauthenticated when the provider refuses a code or refresh
 * token, Unavailable when it cannot be reached (and for any failure to revoke).
 */
export interface HostedSignIn {
  /** Where the provider sends the browser back with `code` and `state`. */
  readonly callbackUrl: string;
  /** The sign-in page for one attempt; `codeChallenge` is the S256 PKCE challenge. */
  authorizeUrl(attempt: { state: string; codeChallenge: string }): string;
  /** Ends the provider's own session, then returns the browser to the dashboard. */
  logoutUrl(): string;
  exchangeCode(code: string, codeVerifier: string): Promise<SignInTokens>;
  refresh(refreshToken: string): Promise<SignInTokens>;
  /**
   * Makes a refresh token (and the access tokens minted from it) useless from now on, so a
   * copy of it does not outlive the sign-out. An unknown or already revoked token succeeds.
   */
  revoke(refreshToken: string): Promise<void>;
}

// ---------------------------------------------------------------- queue and schedules

export interface QueueMessage<T = unknown> {
  id: string;
  payload: T;
  /** 1 on the first delivery. */
  attempt: number;
}

export interface SendOptions {
  /** Messages with the same key are delivered once (SQS dedup id, pg-boss singletonKey). */
  idempotencyKey?: string;
  /** Messages of one group are delivered in order, one at a time (SQS MessageGroupId). */
  group?: string;
  delaySeconds?: number;
  /** Deliveries before the message is given up on (dead-lettered). */
  maxAttempts?: number;
}

export type MessageHandler<T = unknown> = (message: QueueMessage<T>) => Promise<void>;

export interface EventQueue {
  send<T>(queue: string, payload: T, options?: SendOptions): Promise<string | null>;
  /** Delivers messages to handler until the returned stop() resolves. A throw means retry. */
  consume<T>(
    queue: string,
    handler: MessageHandler<T>,
    options?: { concurrency?: number },
  ): Promise<() => Promise<void>>;
  /** Messages waiting, for /metrics and readiness. */
  depth?(queue: string): Promise<number>;
  ping(): Promise<void>;
}

export interface ScheduleOptions {
  /** The IANA time zone the cron is read in; UTC unless set. */
  timeZone?: string;
}

export interface Scheduler {
  /** Sends `payload` to `queue` on a cron schedule; re-scheduling the same name replaces it. */
  schedule(
    name: string,
    cron: string,
    queue: string,
    payload?: unknown,
    options?: ScheduleOptions,
  ): Promise<void>;
  unschedule(name: string): Promise<void>;
}

// ---------------------------------------------------------------- objects, keys, mail

export interface ObjectStore {
  put(key: string, body: Uint8Array | string, options?: { contentType?: string }): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
  /** Keys under prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /**
   * Writes an object from a stream, holding at most one part of it at a time (backups of
   * any size). The key appears only once the whole body is stored: a source that throws
   * leaves nothing at the key (and the throw is passed on). Answers the bytes written.
   */
  putStream(
    key: string,
    body: AsyncIterable<Uint8Array>,
    options?: { contentType?: string },
  ): Promise<{ bytes: number }>;
  /** The object as a stream of chunks, read as the caller consumes it; null when missing. */
  getStream(key: string): Promise<AsyncIterable<Uint8Array> | null>;
  /**
   * Optional: removes what a `putStream` of `key` left when its process died mid-write (a
   * temporary file, an unfinished multipart upload); answers how many pieces it removed.
   * Only for a write known to be dead: a live one would lose its partial object.
   */
  discardPartial?(key: string): Promise<number>;
  /**
   * Optional: clients move an object directly to and from the store, past the control plane.
   * The cloud edition's API cannot carry a backup (API Gateway takes 10 MB in, Lambda answers
   * 6 MB out), so its store hands out short-lived URLs instead; a store without it (local
   * files, or an S3-compatible store a client may not reach) has the API carry the bytes.
   */
  direct?: DirectTransfers;
}

/** Short-lived URLs to one object, and what a client's direct write left there. */
export interface DirectTransfers {
  /**
   * A URL that GETs the object (as an attachment named `filename`), or PUTs exactly `bytes`
   * bytes to it (a longer or shorter body is refused by the store), for `expiresSeconds`.
   */
  url(
    key: string,
    method: 'GET' | 'PUT',
    options: { expiresSeconds: number; bytes?: number; filename?: string },
  ): Promise<string>;
  /** The stored object's size; null when nothing is there. */
  size(key: string): Promise<number | null>;
  /** The origin its URLs point at: what a page must be allowed to connect to (CSP). */
  origin(): Promise<string>;
}

export interface KeyVault {
  /**
   * Encrypts plaintext; `context` (org, secret name) is bound to the ciphertext as
   * additional authenticated data, so a sealed value moved to another row does not open.
   */
  seal(plaintext: string, context: string): Promise<string>;
  open(sealed: string, context: string): Promise<string>;
}

/** What a coded stream held, known once its output has been read to the end. */
export interface CodedTotals {
  inBytes: number;
  outBytes: number;
  /** SHA-256 (hex) of the bytes read in and of the bytes handed out. */
  inSha256: string;
  outSha256: string;
  /**
   * The gzip stream between compression and encryption (what AES-256-GCM sealed): encoding
   * a dump compressed on the node, it is the input; decoding, the decrypted bytes.
   */
  gzipBytes: number;
  gzipSha256: string;
}

/**
 * How backups are stored: compressed, then encrypted under a per-backup data key
 * (envelope: the key itself is sealed by the KeyVault). Streams in, streams out, never the
 * whole dump in memory. One implementation serves both modes (Node's zlib and crypto, in
 * the worker process and the worker Lambda alike).
 */
export interface BackupCodec {
  /** A fresh random 256-bit data key, base64. */
  newDataKey(): string;
  /** SHA-256 (hex) and length of a stream, read to its end. */
  sha256(input: AsyncIterable<Uint8Array>): Promise<{ sha256: string; bytes: number }>;
  /**
   * dump → gzip → AES-256-GCM (IV first, tag last). With `compressed`, the input is already
   * a gzip stream (gzip ran in the dump's one-off on the node): only encrypted and hashed,
   * and the stored object has the same layout, so decode reads both alike.
   */
  encode(
    input: AsyncIterable<Uint8Array>,
    dataKey: string,
    options?: { compressed?: boolean },
  ): { output: AsyncIterable<Uint8Array>; totals(): CodedTotals };
  /**
   * The reverse; throws (from the output's iteration) when the tag does not verify, so a
   * flipped byte never restores silently. With `decompress: false` the output is the
   * decrypted gzip stream (out = gzip totals): the receiver gunzips it.
   */
  decode(
    input: AsyncIterable<Uint8Array>,
    dataKey: string,
    options?: { decompress?: boolean },
  ): { output: AsyncIterable<Uint8Array>; totals(): CodedTotals };
  /**
   * Opens a data key sealed by *another* self-hosted install's vault, given that install's
   * vault key (the 44 base64 characters of its key file): how a backup moves between
   * installs. Throws when the key is malformed or is not the one that sealed it.
   */
  openSealedWith?(sealed: string, context: string, vaultKey: string): string;
  /**
   * A data key wrapped under a passphrase (a memory-hard KDF, then an AEAD with `context`
   * as associated data): how a backup leaves this install for one with another vault.
   */
  wrapKey?(dataKey: string, passphrase: string, context: string): string;
  /** The reverse; throws when the passphrase or the context is not the one it was wrapped with. */
  unwrapKey?(wrapped: string, passphrase: string, context: string): string;
}

/**
 * The control plane's own PostgreSQL database, as its backups see it: read in one snapshot
 * (row counts and `pg_dump -Fc` of the very same data) and restored into a database of its
 * own on the same server. Self-hosted: the PostgreSQL client tools run by the worker. The
 * cloud has none: RDS takes the backups there (ARCHITECTURE.md, "Control-plane backups").
 */
export interface ControlDatabase {
  /**
   * Opens a snapshot, counts every table's rows and reads the server version in it, and
   * dumps that snapshot (custom format). `stdout` throws at its end, naming the exit, when
   * the dump did not succeed; the snapshot is released once it has been read or abandoned.
   */
  dump(options: { timeoutMs: number }): Promise<{
    tables: Record<string, number>;
    serverVersion: string;
    stdout: AsyncIterable<Uint8Array>;
    /** Stops the dump and releases the snapshot when its output will not be read to the end. */
    abort(): void;
  }>;
  /**
   * Restores a custom-format dump into a NEW database `database` on the same server (a
   * Conflict when it exists), answers its tables' row counts, and drops it unless `keep`.
   * A failed restore never leaves a half-restored database behind.
   */
  restore(
    dump: AsyncIterable<Uint8Array>,
    database: string,
    options: { keep: boolean; timeoutMs: number },
  ): Promise<{ tables: Record<string, number> }>;
}

export interface Mailer {
  send(message: { to: string; subject: string; text: string }): Promise<void>;
}

/** Outbound HTTP to tenants' endpoints (webhooks). Never throws for an HTTP status. */
export interface HttpSender {
  post(
    url: string,
    body: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<{ status: number | null; error: string | null }>;
  /**
   * Why url must never be a webhook target (the address it resolves to now, checked like
   * a delivery), or null; asked when a webhook is created, for a clear 400.
   */
  refusal?(url: string): Promise<string | null>;
}

// ---------------------------------------------------------------- source repositories

/** What the platform holds to read a private repository (opened from the vault for one fetch). */
export type GitCredential = { token: string } | { privateKey: string };

/** A repository to read, with its credential. */
export interface GitRemote {
  url: string;
  credential: GitCredential | null;
  /**
   * For ssh: the server's pinned host keys (OpenSSH known_hosts lines), enforced strictly;
   * null or absent takes the key the server presents (trust on first use).
   */
  knownHosts?: string | null;
  /**
   * Set by the source when a contact without `knownHosts` succeeded over ssh: the
   * known_hosts lines of the key the server presented, for the caller to pin.
   */
  learnedHostKeys?: string;
}

/** A tree of one commit as a tar stream; `close` removes what the fetch left on disk. */
export interface SourceArchive {
  stream: AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/**
 * One commit fetched (shallow) for a build, read before its tree is streamed: the build step
 * looks for its Dockerfile, package.json and `.dockerignore`, weighs the context, then
 * streams it. `close` removes what the fetch left on disk.
 */
export interface SourceTree {
  /** A file under the sub-directory as text (at most 1 MiB read), or null when it is absent. */
  read(path: string): Promise<string | null>;
  /** Whether a file (or symlink) is at `path` under the sub-directory, its content unread. */
  has?(path: string): Promise<boolean>;
  /** The total size and count of the files under the sub-directory that `exclude` keeps. */
  size(exclude?: (path: string) => boolean): Promise<{ bytes: number; files: number }>;
  /**
   * The tree under the sub-directory as a tar stream, without what `exclude` names, with
   * `extra` files (path → text) added; the stream fails once more than `maxBytes` of file
   * content passed.
   */
  archive(options?: {
    exclude?: (path: string) => boolean;
    extra?: Record<string, string>;
    maxBytes?: number;
  }): AsyncIterable<Uint8Array>;
  /**
   * The same files as `archive` written to a directory, each file's mtime derived from its
   * content so an unchanged file has the same stat in every checkout (what BuildKit's file
   * sync compares); fails once more than `maxBytes` would be written. With `keep`, the
   * source may keep that directory for the next checkout with the same `keep` and update it
   * in place (only changed paths written), held for this tree until `close`; otherwise (or
   * while another tree holds it) the directory is this tree's own, removed by `close`.
   */
  checkout?(options?: {
    exclude?: (path: string) => boolean;
    extra?: Record<string, string>;
    maxBytes?: number;
    keep?: { owner: string; name: string };
  }): Promise<SourceCheckout>;
  close(): Promise<void>;
}

/** A checkout written for a build: where, and how much of it was written this time. */
export interface SourceCheckout {
  dir: string;
  /** Entries (files, links, submodule directories) the checkout holds. */
  entries: number;
  /** Entries written (or rewritten) by this checkout, and those removed from a kept one. */
  written: number;
  removed: number;
  /** Whether this was a kept checkout updated in place. */
  kept: boolean;
}

/**
 * Git repositories, read by the process that runs a build step (or, to resolve a ref early,
 * by the API). Failures are CoreErrors naming the problem: GitRefNotFound, GitAccessDenied,
 * GitUnreachable, GitPathNotFound.
 */
export interface SourceRepository {
  /** The 40-hex commit a branch or tag names now (a full sha is returned as it is). */
  resolveRef(remote: GitRemote, ref: string): Promise<string>;
  /**
   * Fetches `sha` alone (shallow) and returns the tree under `subdir` as a tar stream,
   * after checking that `dockerfile` (relative to `subdir`) is in it.
   */
  archive(
    remote: GitRemote,
    sha: string,
    paths: { subdir: string; dockerfile: string },
    signal?: AbortSignal,
  ): Promise<SourceArchive>;
  /**
   * Fetches `sha` alone (shallow) and opens its tree under `subdir` (GitPathNotFound when
   * the sub-directory is not in it).
   */
  fetch(remote: GitRemote, sha: string, subdir: string, signal?: AbortSignal): Promise<SourceTree>;
  /**
   * Whether the trees `fetch` opens offer `checkout`: a build whose context goes as files
   * may then be sent to the engine while its source is still being fetched.
   */
  readonly checksOut?: boolean;
  /** Removes the checkouts kept under `owner` (a deleted service's); a no-op without any. */
  forgetCheckouts?(owner: string): Promise<void>;
  /** A new ed25519 key pair: the OpenSSH private key and its public line. */
  generateDeployKey(comment: string): Promise<{ privateKey: string; publicKey: string }>;
}

// ---------------------------------------------------------------- data plane

/** How to reach one Docker Engine. */
export interface DockerTarget {
  dockerHost: string;
  /**
   * The engine is a Swarm manager and the target is its cluster: containers are Swarm
   * services there (a node of kind `swarm`).
   */
  swarm?: boolean;
  /**
   * What runs here stays on one engine for its whole life: a data service's server, the
   * volume it writes and every one-off that reads that volume (backups, restores, drills).
   * On an engine node nothing changes; on a Swarm cluster the containers are plain ones on
   * the registered manager's own engine, never Swarm services (Swarm would reschedule a
   * task onto a member without the volume: an empty database), and the project network they
   * join is the cluster's attachable overlay, so the apps' tasks on every member reach them.
   */
  pinned?: boolean;
  /** PEM client material for tcp:// (mutual TLS; the engine's certificate must chain to `ca`). */
  tls?: { ca: string; cert: string; key: string };
  /**
   * For ssh://: the private key, and the host key the server must present (an OpenSSH
   * public key line); null only when the node was registered without host-key pinning.
   */
  ssh?: { privateKey: string; hostKey: string | null };
}

export interface ContainerSpec {
  name: string;
  image: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  cmd?: string[];
  /** The port inside the container; published on `publishIp` at an ephemeral host port. */
  containerPort?: number;
  publishIp?: string;
  memoryMb?: number | null;
  cpus?: number | null;
  restartPolicy: 'no' | 'unless-stopped';
  /** Shares the host's network: for the edge `npm start` runs, which binds host ports itself. */
  hostNetwork?: boolean;
  /** Host directories mounted in, as `host-path:container-path`. */
  binds?: string[];
  /** `uid:gid` to run as instead of the image's user (so files it writes stay the caller's). */
  user?: string;
  /**
   * A user-defined bridge network to attach to instead of the default bridge, created when
   * absent: a project's app and data containers share one, which nothing else joins.
   */
  network?: string;
  /**
   * With `network`: that network, when this container creates it, has no route out of the
   * node (Docker's `Internal`): a restore drill's own, which only the drill's containers join.
   */
  internalNetwork?: boolean;
  /** Named volumes mounted in, as `volume-name:container-path`; created when absent. */
  volumes?: string[];
  /** Replaces the image's entrypoint (a one-off client run from a server image). */
  entrypoint?: string[];
  /** No network at all, not even the default bridge (a restore drill): loopback only. */
  noNetwork?: boolean;
  /** How the engine rotates the container's log; default `containerLogRotation` (core/releases/plan.ts). */
  logRotation?: LogRotation;
  /**
   * Labels the member running it must carry (a Swarm target: the service's placement
   * labels become Swarm constraints; a standalone engine was chosen by them already).
   */
  placementLabels?: Record<string, string>;
  /**
   * Which replica of its release (the `selfdevop.release` label) this container is, on a
   * Swarm target: the runtime places a release's replicas on different members where it
   * can, so one member's loss never takes them all (issue 14's spread). An engine was
   * chosen by selfdevop's placement already and ignores it.
   */
  replicaIndex?: number;
  /**
   * A command the runtime itself runs inside the container to judge its health (a worker's
   * `workerHealth.command`), for a target where selfdevop cannot exec into the container: a
   * Swarm task runs on a member's engine, and selfdevop holds credentials only for the
   * manager. The Swarm runtime makes it the task's health check, so Swarm starts the task
   * only once it passed and replaces a task whose check keeps failing. Set on a Swarm target
   * only; an engine ignores it (selfdevop runs the command there by exec, once, in the gate).
   */
  healthCommand?: HealthCommand;
}

/** A health check the runtime runs in the container (`ContainerSpec.healthCommand`). */
export interface HealthCommand {
  /** The argv, run without a shell by the runtime (a worker's command is `sh -c …`). */
  command: string[];
  /** Between two runs; the first run is one interval after the start. */
  intervalMs: number;
  /** One run longer than this counts as failed. */
  timeoutMs: number;
  /** Consecutive failures after the start period that make the container unhealthy. */
  retries: number;
  /** Failures within this time after the start do not count (a success still counts). */
  startPeriodMs: number;
}

/** One member of a Swarm cluster as its manager reports it (`ContainerRuntime.clusterMembers`). */
export interface ClusterMember {
  id: string;
  hostname: string;
  /** The address the member advertises, where its host-mode ports open. */
  address: string;
  role: 'manager' | 'worker';
  leader: boolean;
  availability: 'active' | 'pause' | 'drain';
  /** `ready`, `down`, `disconnected` or `unknown`, as Swarm says. */
  state: string;
  labels: Record<string, string>;
  engineVersion: string | null;
}

/** A Swarm node's cluster (`GET /api/nodes/{id}/cluster`), read live from its manager. */
export interface NodeCluster {
  nodeId: string;
  /** False when the manager did not answer; `reason` then says why. */
  available: boolean;
  reason: string | null;
  members: ClusterMember[];
}

/** Replicas of one release, named by index (a member's drain). */
export interface ReleaseReplicas {
  releaseId: string;
  serviceId: string;
  replicas: number[];
}

/** What a member's drain did (`POST …/cluster/members/{member}/drain`). */
export interface MemberDrain {
  nodeId: string;
  member: ClusterMember;
  /** Replicas whose task ran on the member and left the edge before Swarm stopped them. */
  leaving: ReleaseReplicas[];
  /**
   * Replicas that had no other replica to serve in their stead, so the edge kept them:
   * Swarm stops a drained task before it starts its replacement, so these are briefly out.
   */
  kept: ReleaseReplicas[];
}

/** One call on a Swarm node's members, as the API received it (who, which node, which member). */
export interface SwarmMembersCall {
  principal: Principal;
  nodeId: string;
  /** The member's id or hostname; ignored by `read`. */
  member: string;
  ctx: RequestContext | null;
}

/**
 * Reads and changes a Swarm's members in a process that reaches its manager (issue 17).
 * Self-hosted, the API's own process does: the use cases run in-process
 * (core/nodes/cluster.ts `swarmMembersHere`). The cloud API reaches no engine: its adapter
 * hands the call to the worker function and answers what the worker answered, errors alike.
 */
export interface SwarmMembers {
  read(call: SwarmMembersCall): Promise<NodeCluster>;
  drain(call: SwarmMembersCall): Promise<MemberDrain>;
  undrain(call: SwarmMembersCall): Promise<{ nodeId: string; member: ClusterMember }>;
}

/** Log rotation (the engine's `local` driver): at most `maxFiles` files of `maxSizeMb` each per container. */
export interface LogRotation {
  maxSizeMb: number;
  maxFiles: number;
}

/** Which part of a container's stored output to read (`ContainerRuntime.logs`). */
export interface ContainerLogOptions {
  /** Lines at or after this instant (ISO 8601, ns precision allowed). */
  since?: string;
  /** Lines at or before this instant; ignored with `follow`. */
  until?: string;
  /** Only the newest N lines of the range. */
  tail?: number;
  /**
   * Only the lines this keeps (a search). Given to the adapter rather than applied after it
   * so that a line which cannot match is skipped where it is still bytes: a search over a
   * million lines then turns only its matches into strings and objects.
   */
  filter?: LogLineFilter;
  follow: boolean;
  signal: AbortSignal;
}

/** A log search as an adapter applies it (`ContainerLogOptions.filter`). */
export interface LogLineFilter {
  /**
   * Text that every line `test` keeps contains (a necessary condition, not a sufficient
   * one): an adapter may drop a stored line without it before decoding it.
   */
  literal?: string;
  /** Whether the line (its text, without time or newline) is kept. */
  test(text: string): boolean;
}

/** One line of a container's output, as its engine stored it. */
export interface ContainerLogLine {
  /** The engine's timestamp, ISO 8601 in UTC with 9 fraction digits, so strings sort by time. */
  time: string;
  stream: 'stdout' | 'stderr';
  /** Without its newline; cut to a bound (the rest is dropped, marked `…`). */
  text: string;
}

export interface ContainerInfo {
  id: string;
  name: string;
  state: 'created' | 'running' | 'exited' | 'dead' | 'paused' | 'restarting' | 'removing';
  labels: Record<string, string>;
  /** host:port the container's port is published at, when it is, as the engine says it: for logs only. */
  published: string | null;
  /** Times the engine restarted it under its restart policy (inspect only; absent from a list). */
  restarts?: number;
  /**
   * Every port binding as the engine reported it, untrusted: the edge and the probe connect
   * only where `upstreamOf` (core/nodes/address.ts) accepts one of these.
   */
  ports?: PublishedPort[];
  /**
   * What the runtime could not do as the spec asked, and the user should hear (`start`
   * only): each is written to the release's log. A Swarm target sets one when the image has
   * no shell to read its environment from a secret, so the environment is in the service's
   * spec in clear text.
   */
  warnings?: string[];
  /**
   * How the runtime's last run of it ended, in the engine's words, when the runtime knows
   * (the newest task Swarm replaced: `task failed: task: non-zero exit (137): dockerexec:
   * unhealthy container` when its health check failed, `task complete, exit code 0` when
   * the app exited on Swarm's stop): what a restart count alone cannot say.
   */
  lastFailure?: string;
}

/** A container's usage as its engine measures it (cgroup figures). */
export interface ContainerUsage {
  /** CPU time used since the container (this run of it) started, in seconds. */
  cpuSeconds: number;
  /** Memory in use without the page cache, as `docker stats` shows it. */
  memoryBytes: number;
}

/** One replica's figures in a usage snapshot; the labels are the bounded ones of the charts. */
export interface ReplicaUsage {
  orgId: string;
  serviceId: string;
  environmentId: string;
  /** The replica's index in its release, as text (a label). */
  replica: string;
  nodeId: string;
  /** CPU seconds used by the replica's current container (a counter; resets with a new container). */
  cpuSeconds: number | null;
  /** CPU cores used on average since the previous collection; null on first sight. */
  cpuCores: number | null;
  memoryBytes: number | null;
  /** Times the engine restarted the container under its restart policy. */
  restarts: number;
  /**
   * Restarts within the crash-loop window (15 minutes), as far as this collector's history
   * saw them: what a CloudWatch alarm compares, since it cannot take a running total's
   * increase. Absent where the history is not kept.
   */
  restartsInWindow?: number;
}

/** One node's figures, as ratios of the host's capacity; null when not measured. */
export interface NodeUsage {
  orgId: string;
  nodeId: string;
  cpuRatio: number | null;
  memoryUsedRatio: number | null;
  diskUsedRatio: number | null;
}

/** A data service's failed backups or drills in a row, newest first, from the store. */
export interface BackupHealth {
  orgId: string;
  dataServiceId: string;
  failuresInARow: number;
}

/** The certificate an active custom domain's host is served with, as the domain worker last read it. */
export interface CertificateExpiry {
  orgId: string;
  serviceId: string;
  environmentId: string;
  hostname: string;
  notAfter: string;
}

/**
 * A service environment's edge traffic since the previous collection (the round), and the
 * alert rules' figures over each rule's own window. Only hosts of live service
 * environments count, so the series stay bounded by them.
 */
export interface ServiceTraffic {
  orgId: string;
  serviceId: string;
  environmentId: string;
  /** The round's length, in seconds. */
  seconds: number;
  requests: number;
  responses4xx: number;
  responses5xx: number;
  /** Quantiles of the round's response times (Caddy's buckets, interpolated); null without requests. */
  latencyP50Seconds: number | null;
  latencyP95Seconds: number | null;
  /** Requests (and WebSockets) open through the edge at the round's reading, over its hosts. */
  openConnections: number;
  /**
   * Each per-service edge rule's figure over its window divided by the service's threshold
   * for it, so above 1 is past the threshold; 0 where a floor is not met; absent without
   * requests in the window. One alarm per rule then honours every service's own threshold.
   */
  ofThreshold: { http_5xx_spike?: number; latency_p95?: number };
  /** The same figures before the division: the 5xx share and the p95, over each rule's window. */
  http5xxShare: number | null;
  latencyP95WindowSeconds: number | null;
}

/** Everything one collection measured, per org, and what the store says of backups and certificates. */
export interface UsageSnapshot {
  at: string;
  replicas: ReplicaUsage[];
  nodes: NodeUsage[];
  /** Absent where the collection read no backups. */
  backups?: BackupHealth[];
  /** Absent where the collection read no certificates. */
  certificates?: CertificateExpiry[];
  /**
   * The edge's figures per service environment, from the edge's counters between
   * collections; absent where the collection does not read the edge (self-hosted, where
   * Prometheus scrapes Caddy itself).
   */
  traffic?: ServiceTraffic[];
  /**
   * Messages waiting per worker queue (self-hosted: pg-boss); absent in the cloud, where SQS
   * publishes its own `ApproximateNumberOfMessagesVisible`.
   */
  queues?: { queue: string; depth: number }[];
}

/**
 * Where collected usage goes: self-hosted, the worker's Prometheus endpoint (each snapshot
 * replaces the last, so a replica that is gone stops being exported); in the cloud,
 * CloudWatch EMF lines on the worker function's output.
 */
export interface UsageSink {
  publish(snapshot: UsageSnapshot): void | Promise<void>;
}

/** One port binding of a container as its engine answered it (`HostIp`, `HostPort`), unchecked. */
export interface PublishedPort {
  containerPort: number;
  hostIp: string;
  hostPort: string;
}

export interface OneOffResult {
  exitCode: number | null;
  timedOut: boolean;
  output: string;
  /** As `ContainerInfo.warnings`: written to the release's log. */
  warnings?: string[];
}

/** One image build on an engine, from a build context streamed in as a tar archive. */
export interface BuildSpec {
  /** `repository:tag` the image gets. */
  tag: string;
  /**
   * The build context as a tar stream, read as the engine takes it (never held whole). Not
   * read at all when the context goes as `files` instead.
   */
  context: AsyncIterable<Uint8Array>;
  /**
   * The same context as a directory on the machine that runs the build step, for a BuildKit
   * engine: served over the build's session with BuildKit's file sync, so the engine asks
   * only for files whose stat (mode, size, mtime) differ from its copy of an earlier build
   * with the same `key`. `open` makes the directory on first call (only when used); the
   * legacy builder, and an engine without sessions, read `context` instead.
   */
  files?: { open(): Promise<string>; key: string };
  /** The Dockerfile's path inside the context. */
  dockerfile: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  /** Limits asked of the engine for the build's steps; null for none. */
  memoryMb: number | null;
  cpus: number | null;
  /** The build is cancelled (and its steps killed) after this long. */
  timeoutMs: number;
  /** Aborting cancels the build as the timeout does. */
  signal?: AbortSignal;
  /**
   * Build-time secrets (id → value), offered to `RUN --mount=type=secret,id=…` through the
   * engine's BuildKit session: never a build arg, never in the context, a layer or a log.
   */
  secrets?: Record<string, string>;
}

/**
 * How a build ended. A failed build is data, not a throw: `error` names the failing
 * instruction as the engine reported it. Throws only when the engine cannot be reached.
 */
export interface BuildResult {
  /** The image id (`sha256:…`) when the build succeeded. */
  imageId: string | null;
  error: string | null;
  timedOut: boolean;
  /**
   * When the context went as `files`: the entries offered, the files the engine asked for
   * (paths, the first 100) and their bytes, over every local the builder read.
   */
  transfer?: { entries: number; requested: number; paths: string[]; bytes: number };
}

/** One image as an engine lists it (ContainerRuntime.listImages). */
export interface ImageSummary {
  id: string;
  /** `repository:tag` names; empty for an untagged image. */
  tags: string[];
  labels: Record<string, string>;
  /** When the image was made, ISO 8601. */
  createdAt: string;
  sizeBytes: number;
}

/** What a move of an image between engines did (ContainerRuntime.moveImage). */
export interface MovedImage {
  imageId: string;
  /** The bytes of the image archive sent from one engine to the other. */
  bytes: number;
}

/** A registry credential as a pull sends it (never logged). */
export interface RegistryAuth {
  server: string;
  username: string;
  password: string;
}

export interface ResolveImageOptions {
  auth?: RegistryAuth;
  /** Pull even when the node has the tag: it may have moved since. */
  refresh?: boolean;
}

/** A one-off whose stdout is read as bytes (a dump), see ContainerRuntime.runPiped. */
export interface PipedRun {
  /**
   * The container's stdout, chunk by chunk; not read, the container's writes wait. Consume
   * it to the end before awaiting `result`.
   */
  stdout: AsyncIterable<Uint8Array>;
  /** How it ended; `output` is the tail of its stderr. */
  result: Promise<OneOffResult>;
}

export interface ContainerRuntime {
  ping(target: DockerTarget): Promise<void>;
  /** Optional (a Swarm target): the cluster's members, their roles, availability and labels. */
  clusterMembers?(target: DockerTarget): Promise<ClusterMember[]>;
  /**
   * Optional (a Swarm target): sets a member's availability (by id or hostname) as Swarm's
   * `docker node update --availability` does, and answers the member as it is then.
   */
  setMemberAvailability?(
    target: DockerTarget,
    member: string,
    availability: ClusterMember['availability'],
  ): Promise<ClusterMember>;
  /**
   * Optional (placement): the engine's CPUs and memory (`docker info` NCPU, MemTotal). A
   * runtime without it, or one that cannot answer, leaves the node's capacity unknown.
   */
  capacity?(target: DockerTarget): Promise<{
    cpus: number;
    memoryMb: number;
    /** The engine's data-root (`DockerRootDir`). */ dataRoot?: string;
  }>;
  /**
   * Optional (usage collection): one container's CPU time so far and memory in use, from the
   * engine's one-shot stats (no 1 s wait for a second sample); null when it is not running.
   */
  usage?(target: DockerTarget, nameOrId: string): Promise<ContainerUsage | null>;
  /**
   * Optional (backups): runs a one-off with `stdin` streamed in (then closed) and its stdout
   * handed out as bytes, never buffered whole on either side; killed after timeoutMs, then
   * removed (with its anonymous volumes). A `stdin` that throws kills the one-off (it never
   * sees a truncated input end as if whole) and `result` rejects with that error.
   */
  runPiped?(
    target: DockerTarget,
    spec: ContainerSpec,
    options: {
      timeoutMs: number;
      stdin?: AsyncIterable<Uint8Array>;
      /** Aborted: the one-off is killed (its reader left), and `result` says how it ended. */
      signal?: AbortSignal;
    },
  ): Promise<PipedRun>;
  /** Optional (restore drills): removes a network (its containers gone first); absent: done. */
  removeNetwork?(target: DockerTarget, name: string): Promise<void>;
  /**
   * Optional (builds): builds an image on the engine, each output line to `onLine` as it
   * comes; while a promise it returned is pending no more output is read (backpressure).
   */
  build?(
    target: DockerTarget,
    spec: BuildSpec,
    onLine: (line: string) => void | Promise<void>,
  ): Promise<BuildResult>;
  /**
   * Optional (warm reuse): renames a container (`POST /containers/{id}/rename`), running or
   * not, so a release can take over a warm release's container under its own name. Throws
   * when the name is taken or the container is gone. Absent on a Swarm (a service keeps its name).
   */
  rename?(target: DockerTarget, nameOrId: string, newName: string): Promise<void>;
  /** Optional (builds): the id of an image the engine already has, or null; never pulls. */
  localImage?(target: DockerTarget, image: string): Promise<string | null>;
  /**
   * Optional (builds on several nodes): copies `image` from the engine `from` to the engine
   * `to` without a registry: the source's `GET /images/{name}/get` streamed into the
   * destination's `POST /images/load`, never held whole by this process (memory stays
   * bounded in a Lambda too). Cancelled after `timeoutMs` or when `signal` aborts; resolves
   * to the image's id on `to` (the same as on `from`) and the bytes sent.
   */
  moveImage?(
    from: DockerTarget,
    to: DockerTarget,
    image: string,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<MovedImage>;
  /** Optional (build pruning): the engine's images carrying every one of `labels`. */
  listImages?(target: DockerTarget, labels: Record<string, string>): Promise<ImageSummary[]>;
  /**
   * Optional (build pruning): removes one image by id or tag, never forced: an image a
   * container (running or stopped) uses stays, `in_use`; an image already gone is `missing`.
   */
  deleteImage?(target: DockerTarget, nameOrId: string): Promise<'removed' | 'in_use' | 'missing'>;
  /**
   * Optional (build pruning): trims the engine's build cache to at most `keepBytes`
   * (`POST /build/prune?keep-storage=`, as `docker builder prune --keep-storage`), the
   * least recently used first. Resolves to the bytes reclaimed.
   */
  pruneBuildCache?(target: DockerTarget, keepBytes: number): Promise<{ reclaimedBytes: number }>;
  /**
   * The image's id (`sha256:…`) on the node. Uses the node's copy, pulling only when it is
   * absent, unless `refresh` asks to pull first (a mutable tag re-resolved on each deploy);
   * `auth` is the registry's credential for the pull.
   */
  resolveImage(target: DockerTarget, image: string, options?: ResolveImageOptions): Promise<string>;
  /** Creates and starts; when a container of that name exists it is returned as it is. */
  start(target: DockerTarget, spec: ContainerSpec): Promise<ContainerInfo>;
  /**
   * Runs to completion (or timeout, then killed), returns its output, removes it. Each line
   * goes to `onLine` as it comes; while a promise it returned is pending, no more output is
   * read (the container's writes wait), so a slow sink never buffers a flood.
   */
  runOnce(
    target: DockerTarget,
    spec: ContainerSpec,
    timeoutMs: number,
    onLine?: (line: string) => void | Promise<void>,
  ): Promise<OneOffResult>;
  inspect(target: DockerTarget, nameOrId: string): Promise<ContainerInfo | null>;
  list(target: DockerTarget, labels: Record<string, string>): Promise<ContainerInfo[]>;
  stop(target: DockerTarget, nameOrId: string, graceSeconds: number): Promise<void>;
  remove(target: DockerTarget, nameOrId: string): Promise<void>;
  /**
   * Optional (worker health commands): runs `cmd` inside a running container (as `docker
   * exec`), killed after timeoutMs; a failing command is data, not a throw.
   */
  exec?(
    target: DockerTarget,
    nameOrId: string,
    cmd: string[],
    timeoutMs: number,
  ): Promise<OneOffResult>;
  /** Optional (data services): removes a named volume; a missing one is already removed. */
  removeVolume?(target: DockerTarget, name: string): Promise<void>;
  /**
   * Optional (app logs): the container's stored output (every restart of it, as the engine
   * keeps it), each line with the engine's timestamp, oldest first; with `follow`, then
   * what it writes until `signal` aborts or the container ends. Pulled one line at a time:
   * nothing is read from the engine while the consumer does not ask (backpressure), so a
   * million lines never sit in memory. Throws ContainerNotFound for an unknown container.
   */
  logs?(
    target: DockerTarget,
    nameOrId: string,
    options: ContainerLogOptions,
  ): AsyncIterable<ContainerLogLine>;
  /** Follows the container's output until signal aborts or the container ends. */
  followLogs?(
    target: DockerTarget,
    nameOrId: string,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
  ): Promise<void>;
}

/** One HTTP route at the edge, as selfdevop thinks of it; adapters translate it. */
export interface RouteSpec {
  id: string;
  hosts: string[];
  /** host:port targets; traffic is balanced across them. */
  upstreams: string[];
  sticky: boolean;
  /** Connections to an upstream removed by a change may live this long (WebSockets). */
  drainSeconds: number;
  /** Spreading over upstreams when not sticky; round_robin when absent. */
  loadBalancing?: 'round_robin' | 'least_conn';
}

export interface EdgeRouter {
  ping(): Promise<void>;
  /** Creates or replaces the route with this id and reads it back before resolving. */
  put(route: RouteSpec): Promise<void>;
  /** Optional: creates or replaces many routes in one configuration change (bulk domains). */
  putMany?(routes: RouteSpec[]): Promise<void>;
  get(id: string): Promise<RouteSpec | null>;
  remove(id: string): Promise<void>;
  list(): Promise<RouteSpec[]>;
  /**
   * Optional (custom domains): adds and removes hosts of the route `id` in one change that
   * leaves its upstreams as they are at that moment, so it cannot undo a concurrent switch.
   * Resolves to the route as changed, or null when there is no route with that id.
   */
  updateHosts?(
    id: string,
    change: { add?: string[]; remove?: string[] },
  ): Promise<RouteSpec | null>;
  /** Optional (custom domains): the certificate the edge serves for `hostname` (a TLS handshake with SNI). */
  certificate?(hostname: string): Promise<EdgeCertificate>;
  /**
   * Optional: puts back what the edge lost (a lost or reset config) in one change: every
   * route that is missing, and every host missing from a route that is there. It never
   * changes the upstreams of a route that is there, nor takes a host away, so it cannot
   * undo a deploy or a domain change that raced the read it was planned from.
   */
  restore?(routes: RouteSpec[]): Promise<EdgeRestored>;
  /**
   * Optional (draining replicas): how many requests the edge has sent to each of
   * `upstreams` (host:port) and not yet seen answered; an upstream it knows nothing of
   * counts 0. Read only once the edge can no longer pick an upstream an earlier put dropped
   * (a dynamic-upstream refresh and the edge DNS cache after it), so a leaving replica with
   * 0 here may be stopped without cutting a request.
   */
  inFlight?(upstreams: readonly string[]): Promise<Record<string, number>>;
  /**
   * Optional (the cloud's edge figures): the edge's request counters per host since it
   * started, as one reading. Self-hosted, Prometheus scrapes the same counters itself.
   */
  traffic?(): Promise<EdgeHostCounters[]>;
}

/**
 * One host's requests as the edge counted them since it started (running totals, summed
 * over handlers, methods and codes): what a rate or a quantile over a window is taken from.
 */
export interface EdgeHostCounters {
  /** Lower case, as the edge labels it. */
  host: string;
  requests: number;
  responses4xx: number;
  responses5xx: number;
  /**
   * The duration histogram, cumulative: `count` requests took at most `le` seconds; in
   * ascending `le`, the last one `Infinity` (equal to `requests`).
   */
  buckets: { le: number; count: number }[];
  /**
   * Requests in flight now, a proxied WebSocket among them for as long as it stays open: a
   * gauge, the reading's own value, never a running total (no delta is taken of it).
   */
  openConnections: number;
}

/** What restore put back: route ids, and `<host> on <route id>` for hosts. */
export interface EdgeRestored {
  routes: string[];
  hosts: string[];
}

/** A service environment with a live release: what the edge must route, read from the database. */
export interface LiveRoute {
  serviceId: string;
  serviceName: string;
  environmentId: string;
  environmentName: string;
  sticky: boolean;
  drainSeconds: number;
  /** How the edge spreads over the upstreams; round_robin when null. */
  loadBalancing: 'round_robin' | 'least_conn' | null;
  /** The live release's healthy replicas' host:port, in replica order (at least one). */
  upstreams: string[];
  /** Its custom domains that are routed (verified or later), oldest first. */
  customHosts: string[];
}

/**
 * Every route the edge must serve, across orgs, so the edge can be rebuilt from the
 * database (a lost Caddy autosave) instead of waiting for each service's next deploy.
 */
export interface RouteCatalog {
  liveRoutes(): Promise<LiveRoute[]>;
}

/** What the edge presents for one hostname. `active`: a certificate for it, unexpired, not self-signed. */
export interface EdgeCertificate {
  status: 'active' | 'missing';
  issuer: string | null;
  notAfter: string | null;
  /** Why it is missing (handshake refused, wrong name, expired…), for the domain's lastError. */
  detail: string | null;
}

/**
 * Where the edge finds a route's upstreams at request time. Caddy reads them through DNS
 * SRV records the control plane serves, so moving traffic to a new release changes a
 * record instead of reloading the proxy (a reload drops idle keep-alive connections).
 * Keyed by the route's DNS label.
 */
export interface UpstreamRegistry {
  set(label: string, upstreams: string[]): Promise<void>;
  get(label: string): Promise<string[] | null>;
  remove(label: string): Promise<void>;
}

/**
 * What the edge's DNS server mirrors in memory, so answering Caddy costs no database round
 * trip: every route at once, and a word after each write from any process.
 */
export interface UpstreamFeed {
  all(): Promise<Map<string, string[]>>;
  /**
   * `onChange(label)` once a write to `label` is visible to `get`; `onChange(null)` when
   * writes may have been missed (the first subscribe, a reconnect): reload everything.
   */
  watch(onChange: (label: string | null) => void): Promise<{ close(): Promise<void> }>;
}

export interface DnsResolver {
  /** TXT records at name, each joined from its chunks; [] when there are none. */
  txt(name: string): Promise<string[]>;
  cname(name: string): Promise<string[]>;
  a(name: string): Promise<string[]>;
}

/** Result of one HTTP health probe; a probe never throws, failures are data. */
export interface HealthProbeResult {
  ok: boolean;
  status: number | null;
  error: string | null;
}

/** One HTTP GET of a candidate's health endpoint: ok on 2xx/3xx within timeoutMs. */
export interface HealthProbe {
  check(url: string, timeoutMs: number): Promise<HealthProbeResult>;
}

// ---------------------------------------------------------------- store

/** Lookups that happen before the org is known (login, API keys). Kept narrow on purpose. */
export interface IdentityRepo {
  createUser(user: UserWithPassword): Promise<void>;
  findUserByEmail(email: string): Promise<UserWithPassword | null>;
  findUserById(id: string): Promise<User | null>;
  membershipsOf(userId: string): Promise<Membership[]>;
  findApiKeyByHash(keyHash: string): Promise<ApiKey | null>;
  countUsers(): Promise<number>;
  /**
   * Creates the user only if there is no user yet, atomically with the count (a first-user
   * install's owner): of concurrent callers exactly one gets true, the others false. The
   * winner is the installation's operator.
   */
  createFirstUser(user: UserWithPassword): Promise<boolean>;
  /**
   * Creates the user, and makes it the installation's operator if, atomically with the
   * insert, no other user exists (a self-hosted install's very first account).
   */
  createUserFirstIsOperator(user: UserWithPassword): Promise<{ operator: boolean }>;
  /** Whether the user is an operator of the installation (the platform's admin, no org's). */
  isOperator(userId: string): Promise<boolean>;
}

/**
 * What every API process must agree on about sign-ins: attempt counters (login and signup
 * limits) and sessions ended before their expiry. Shared storage, so that a brute force
 * spread over processes is counted once and a logout holds everywhere.
 */
export interface AuthGuardRepo {
  /**
   * Counts one attempt under key in a fixed window of windowMs that starts at the first
   * attempt after the previous window ended; returns the count so far and the window's start.
   */
  countAttempt(
    key: string,
    windowMs: number,
    now: Date,
  ): Promise<{ count: number; windowStart: Date }>;
  clearAttempts(key: string): Promise<void>;
  /** Ends a session; expiresAt is when its token would have expired anyway. */
  revokeSession(sessionId: string, expiresAt: Date): Promise<void>;
  isSessionRevoked(sessionId: string): Promise<boolean>;
}

/**
 * Custom domains' look-ups across orgs, for callers that know a hostname or nothing at all:
 * the edge's on-demand TLS `ask` and the sweep that re-arms stopped checks.
 */
export interface DomainLookup {
  /** Which org owns a hostname (case-insensitive), for workers that receive only a name. */
  findDomainByHostname(hostname: string): Promise<Pick<Domain, 'id' | 'orgId' | 'status'> | null>;
  /**
   * Domains whose checks look stopped — never checked, `active` ones not checked since
   * `before.active`, other non-failed ones not since `before.other` — stalest first, at
   * most `limit` (≤ 1000).
   */
  domainsToCheck(
    before: { active: string; other: string },
    limit: number,
  ): Promise<Pick<Domain, 'id' | 'orgId' | 'status' | 'checkedAt'>[]>;
}

/** Releases looked up across orgs, for the sweep that finds releases whose first message was lost. */
export interface ReleaseLookup {
  /**
   * Releases still `queued` since before `before` with no step recorded, oldest first, at
   * most `limit` (≤ 1000).
   */
  joblessReleases(
    before: string,
    limit: number,
  ): Promise<Pick<Release, 'id' | 'orgId' | 'serviceId' | 'environmentId' | 'createdAt'>[]>;
  /**
   * Optional (build pruning): every node, as `{orgId, nodeId}`, that a release built from git
   * ran a replica on, at most `limit` (≤ 5000).
   */
  buildNodes?(limit: number): Promise<{ orgId: string; nodeId: string }[]>;
}

/** Backups and drills left `running` by a worker that died, looked up across orgs (the backup sweep). */
export interface BackupLookup {
  /**
   * Backups `running` since before `before` (by `startedAt`), and completed backups whose
   * drill is `running` since before it (by `drilledAt`); ids only, at most `limit` (≤ 1000).
   */
  stuckBackups(
    before: string,
    limit: number,
  ): Promise<
    { orgId: string; dataServiceId: string; backupId: string; kind: 'backup' | 'drill' }[]
  >;
  /**
   * Data services whose move is `moving` with a heartbeat older than `beatBefore`, or with no
   * heartbeat and started (`move.at`) before `startBefore`: moves whose worker died. Ids only,
   * at most `limit` (≤ 1000); the sweep re-reads each in its org and decides with `moveAlive`.
   */
  staleMoves(
    beatBefore: string,
    startBefore: string,
    limit: number,
  ): Promise<{ orgId: string; dataServiceId: string }[]>;
}

export interface ListFilter {
  projectId?: string;
  serviceId?: string;
  environmentId?: string;
}

/** The org of the transaction, confined by id (the only row it may see). */
export interface OrgRepo {
  insert(org: Org): Promise<void>;
  get(): Promise<Org | null>;
}

export interface MembershipRepo {
  insert(m: Membership): Promise<void>;
  list(): Promise<Membership[]>;
  /** The members with their email addresses, oldest first. */
  members(): Promise<Member[]>;
  get(userId: string): Promise<Membership | null>;
  /**
   * Holds the org's membership changes to one transaction at a time until this one ends, so
   * "another owner remains" still holds when the change it allowed commits.
   */
  lock(): Promise<void>;
  /** False when the user is not a member. */
  setRole(userId: string, role: Role): Promise<boolean>;
  /** False when the user is not a member. */
  delete(userId: string): Promise<boolean>;
}

export interface InviteRepo {
  insert(invite: InviteWithHash): Promise<void>;
  get(id: string): Promise<Invite | null>;
  /** Every invite of the org, oldest first (ids sort by creation time). */
  list(page: PageRequest): Promise<Page<Invite>>;
  /** Open invites (neither accepted nor revoked) for an address, expired or not. */
  openFor(email: string): Promise<Invite[]>;
  /** Revokes an open invite; false when there is none with that id (or it was used). */
  revoke(id: string, at: string): Promise<boolean>;
  /**
   * Compare-and-set: marks the invite accepted only while it is open and unexpired at `at`,
   * so of two accepts racing with one token exactly one wins.
   */
  accept(id: string, userId: string, at: string): Promise<boolean>;
}

/** A service's push webhook (push-to-deploy): its URL names `id`; `sealedSecret` signs. */
export interface PushHook {
  id: string;
  orgId: string;
  serviceId: string;
  sealedSecret: string;
  createdAt: string;
}

export interface PushHookRepo {
  /**
   * Stores the service's hook, or replaces the secret of the one it has (a rotation keeps
   * the URL, so the git host's settings change in one field); answers the stored hook.
   */
  save(hook: PushHook): Promise<PushHook>;
  forService(serviceId: string): Promise<PushHook | null>;
  /** Records a delivery id; false when it was recorded before (a replay). */
  claimDelivery(hookId: string, deliveryId: string, at: string): Promise<boolean>;
  /** Forgets a claimed delivery whose deploy was refused, so the host's retry is not a replay. */
  forgetDelivery(hookId: string, deliveryId: string): Promise<void>;
  /** Records the commit the latest push wants deployed, replacing one not yet started. */
  want(hookId: string, sha: string): Promise<void>;
  /** Takes (clears and answers) the service's wanted commit; one caller wins it. */
  takeWanted(serviceId: string): Promise<{ hookId: string; sha: string } | null>;
  /** Puts a taken commit back, unless a newer push is wanted by now. */
  putBackWanted(hookId: string, sha: string): Promise<void>;
}

/** What the polls of a service's followed branch saw (migration 0036). */
export interface GitPoll {
  serviceId: string;
  /** When the last poll ran (it may have failed: see `error`). */
  polledAt: string | null;
  /** The head the last successful poll found. */
  sha: string | null;
  /** Why the last poll failed; null when it succeeded. */
  error: string | null;
  /** The release the newest head a poll found started, if it started one. */
  releaseId: string | null;
}

export interface GitPollRepo {
  get(serviceId: string): Promise<GitPoll | null>;
  /** Records a poll's outcome (creating the row); `sha` and `releaseId` left out keep theirs. */
  record(
    serviceId: string,
    outcome: { polledAt: string; error: string | null; sha?: string; releaseId?: string },
  ): Promise<void>;
  /** The commit a poll wants deployed once the release in flight ends (no push hook to hold it). */
  want(serviceId: string, sha: string): Promise<void>;
  /** Takes (clears and answers) the commit a poll wants; one caller wins it. */
  takeWanted(serviceId: string): Promise<string | null>;
  /** Puts a taken commit back, unless a newer one is wanted by now. */
  putBackWanted(serviceId: string, sha: string): Promise<void>;
}

/** The `git-poll` job's look-up across orgs: the services whose poll is due, ids only. */
export interface GitPollLookup {
  /**
   * Services with a poll interval never polled, or polled at least their interval before
   * `now`, longest waiting first, at most `limit` (≤ 1000).
   */
  duePolls(now: string, limit: number): Promise<{ orgId: string; serviceId: string }[]>;
}

/** The one look-up of a push hook before its org is known: by the id in its URL. */
export interface PushHookLookup {
  findPushHook(id: string): Promise<PushHook | null>;
}

/** The one look-up of an invite before its org is known: by the hash of its token. */
export interface InviteLookup {
  findInviteByTokenHash(tokenHash: string): Promise<Invite | null>;
}

export interface ApiKeyRepo {
  insert(key: ApiKeyWithHash): Promise<void>;
  list(page: PageRequest): Promise<Page<ApiKey>>;
  revoke(id: string, at: string): Promise<boolean>;
}

export interface ProjectRepo {
  insert(p: Project): Promise<void>;
  get(id: string): Promise<Project | null>;
  list(page: PageRequest): Promise<Page<Project>>;
  /** Renames; NotFound when the project is not the org's, AlreadyExists for a taken name. */
  update(id: string, patch: Pick<Project, 'name'>): Promise<void>;
  /**
   * Deletes the project with its environments and services and everything theirs (as
   * `ServiceRepo.delete`); false when there is none. Its data services must be gone first.
   */
  delete(id: string): Promise<boolean>;
}

export interface EnvironmentRepo {
  insert(e: Environment): Promise<void>;
  get(id: string): Promise<Environment | null>;
  findByName(projectId: string, name: string): Promise<Environment | null>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<Environment>>;
  /** Renames; NotFound when the environment is not the org's, AlreadyExists for a taken name. */
  update(id: string, patch: Pick<Environment, 'name'>): Promise<void>;
  /** Deletes the environment with its releases (steps, logs, jobs), secrets and domains. */
  delete(id: string): Promise<boolean>;
}

export interface ServiceRepo {
  insert(s: Service): Promise<void>;
  get(id: string): Promise<Service | null>;
  /** Changes the given fields; NotFound when the service is not the org's. */
  update(
    id: string,
    patch: Partial<Omit<Service, 'id' | 'orgId' | 'projectId' | 'createdAt'>>,
  ): Promise<void>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<Service>>;
  /**
   * Deletes the service with its releases (steps, logs, jobs), secrets, domains, push hook
   * and data-service links; false when there is none.
   */
  delete(id: string): Promise<boolean>;
}

export interface NodeRepo {
  insert(n: NodeRecord): Promise<void>;
  get(id: string): Promise<NodeRecord | null>;
  list(page: PageRequest): Promise<Page<NodeRecord>>;
  /** Replaces the sealed credentials; NotFound when the node is not the org's. */
  setCredentials(
    id: string,
    patch: Pick<NodeRecord, 'sealedTls' | 'sealedSsh' | 'credentialsUpdatedAt'>,
  ): Promise<void>;
  /** Changes name, labels or address; NotFound when not the org's, AlreadyExists for a taken name. */
  update(
    id: string,
    patch: Partial<Pick<NodeRecord, 'name' | 'labels' | 'address'>>,
  ): Promise<void>;
  /** Sets drain mode (no new placements while on); NotFound when the node is not the org's. */
  setDrainMode(id: string, drainMode: boolean): Promise<void>;
  /**
   * Writes a node check's outcome, only while the node's reachability is still `from`
   * (compare-and-set): of two checkers seeing one change, one moves it and reports it;
   * false for the other, and for a node that is gone.
   */
  recordCheck(id: string, from: NodeReachability, patch: NodeCheckRecord): Promise<boolean>;
  /**
   * Forgets the node and its sealed credentials; false when it is not the org's. Releases
   * that ran on it keep their history but no longer name it (`nodeId` null); its data
   * services must be gone first (the core refuses before).
   */
  delete(id: string): Promise<boolean>;
}

/** What a node check writes on the node (core/nodes/reachability.ts decides it). */
export type NodeCheckRecord = Pick<
  NodeRecord,
  'reachability' | 'reachabilitySince' | 'lastSeenAt' | 'missedChecks'
>;

/** Nodes looked up across orgs, for the node checks, which start knowing no org. */
export interface NodeLookup {
  /** The orgs that have at least one node (ids only), in id order. */
  orgsWithNodes(): Promise<string[]>;
}

export interface ReleaseRepo {
  /** Throws ReleaseAlreadyInFlight when another release of the service environment is. */
  insert(r: Release): Promise<void>;
  get(id: string): Promise<Release | null>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<Release>>;
  /** Compare-and-set: applies only when the release is still in `from`; false otherwise. */
  transition(
    id: string,
    from: ReleaseStatus,
    patch: Partial<Release> & { status: ReleaseStatus },
  ): Promise<boolean>;
  update(id: string, patch: Partial<Omit<Release, 'id' | 'orgId' | 'status'>>): Promise<void>;
  inFlight(serviceId: string, environmentId: string): Promise<Release | null>;
  /** The newest release of the service environment with one of `statuses`. */
  latest(
    serviceId: string,
    environmentId: string,
    statuses: ReleaseStatus[],
  ): Promise<Release | null>;
  /**
   * `latest` for every service environment of the org at once (those with such a release),
   * in no particular order: one read where placement and node checks made one per service.
   */
  latestOfEach(statuses: ReleaseStatus[]): Promise<Release[]>;
}

export interface ReleaseStepRepo {
  /** Inserts or replaces the step of that name for the release. */
  upsert(step: ReleaseStep): Promise<void>;
  list(releaseId: string): Promise<ReleaseStep[]>;
}

export interface ReleaseLogRepo {
  append(releaseId: string, lines: Omit<ReleaseLogLine, 'releaseId' | 'seq'>[]): Promise<void>;
  /** Lines after `afterSeq`, in order. */
  list(releaseId: string, afterSeq?: number, limit?: number): Promise<ReleaseLogLine[]>;
}

export interface DeployJobRepo {
  insert(j: DeployJob): Promise<void>;
  get(id: string): Promise<DeployJob | null>;
  update(
    id: string,
    patch: Partial<Pick<DeployJob, 'status' | 'attempts' | 'updatedAt'>>,
  ): Promise<void>;
  list(page: PageRequest): Promise<Page<DeployJob>>;
}

export interface SecretRepo {
  /** Inserts, or replaces the value of the secret with the same name. */
  put(s: SecretRecord): Promise<void>;
  list(serviceId: string, environmentId: string): Promise<SecretRecord[]>;
  delete(serviceId: string, environmentId: string, name: string): Promise<boolean>;
}

export interface DomainRepo {
  insert(d: Domain): Promise<void>;
  get(id: string): Promise<Domain | null>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<Domain>>;
  update(id: string, patch: Partial<Omit<Domain, 'id' | 'orgId'>>): Promise<void>;
  delete(id: string): Promise<boolean>;
}

export interface WebhookRepo {
  insert(w: Webhook): Promise<void>;
  list(): Promise<Webhook[]>;
  delete(id: string): Promise<boolean>;
}

export interface WebhookDeliveryRepo {
  /** Records one attempt, then keeps only the newest `keep` attempts of its webhook. */
  append(d: WebhookDelivery, keep: number): Promise<void>;
  /** A webhook's recorded attempts, oldest first. */
  list(webhookId: string, page: PageRequest): Promise<Page<WebhookDelivery>>;
}

export interface NotificationChannelRepo {
  insert(c: NotificationChannel): Promise<void>;
  list(): Promise<NotificationChannel[]>;
  delete(id: string): Promise<boolean>;
}

/** Events held until their channel's grouping window closes. */
export interface HeldNotificationRepo {
  /** Holds one event for one channel; false when it is held already (a retried fan-out). */
  hold(h: HeldNotification): Promise<boolean>;
  /** A channel's held events, oldest first, up to `limit`. */
  list(channelId: string, limit: number): Promise<HeldNotification[]>;
  remove(ids: string[]): Promise<void>;
}

export interface NotificationDeliveryRepo {
  /** Records one attempt, then keeps only the newest `keep` attempts of its channel. */
  append(d: NotificationDelivery, keep: number): Promise<void>;
  /** A channel's recorded attempts, oldest first. */
  list(channelId: string, page: PageRequest): Promise<Page<NotificationDelivery>>;
  /** When the channel last delivered a message of events (tests aside), or null. */
  lastDeliveredAt(channelId: string): Promise<string | null>;
}

/** An org's registry credentials, one per server. */
export interface RegistryRepo {
  /** AlreadyExists (server) when the org has a credential for that server. */
  insert(r: Registry): Promise<void>;
  list(): Promise<Registry[]>;
  /** The credential for `server` (normalised, as `registryOf` gives it), or null. */
  byServer(server: string): Promise<Registry | null>;
  delete(id: string): Promise<boolean>;
}

export interface DataServiceRepo {
  /** AlreadyExists (name) when the project has a data service of that name. */
  insert(d: DataService): Promise<void>;
  get(id: string): Promise<DataService | null>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<DataService>>;
  update(id: string, patch: Partial<Omit<DataService, 'id' | 'orgId'>>): Promise<void>;
  /**
   * Compare-and-set of the move (issue 15): writes `next` only if the stored move still equals
   * `expected` (as JSON: key order and absent vs undefined keys do not matter), so a worker
   * and the sweep that fails its stale move never undo each other. False when it differed.
   */
  setMove(
    id: string,
    expected: DataServiceMove | null,
    next: DataServiceMove | null,
  ): Promise<boolean>;
  /** Its links go with it. */
  delete(id: string): Promise<boolean>;
}

/** A data service's backups with their newest drill, oldest first (ids sort by time). */
export interface DataServiceBackupRepo {
  insert(b: DataServiceBackup): Promise<void>;
  get(id: string): Promise<DataServiceBackup | null>;
  list(dataServiceId: string): Promise<DataServiceBackup[]>;
  update(id: string, patch: Partial<Omit<DataServiceBackup, 'id' | 'orgId'>>): Promise<void>;
  delete(id: string): Promise<boolean>;
}

/** The control plane's own backups (the install's, no org's) and their one settings row. */
export interface ControlBackupRepo {
  insert(b: ControlBackup): Promise<void>;
  get(id: string): Promise<ControlBackup | null>;
  /** Oldest first. */
  list(): Promise<ControlBackup[]>;
  update(id: string, patch: Partial<Omit<ControlBackup, 'id'>>): Promise<void>;
  delete(id: string): Promise<boolean>;
  settings(): Promise<ControlBackupSettings | null>;
  saveSettings(s: ControlBackupSettings): Promise<void>;
}

export interface DataServiceLinkRepo {
  /** AlreadyExists when the pair is linked or the service already has a link of that env name. */
  insert(l: DataServiceLink): Promise<void>;
  list(filter: { dataServiceId?: string; serviceId?: string }): Promise<DataServiceLink[]>;
  delete(id: string): Promise<boolean>;
}

export interface JobRepo {
  /** AlreadyExists (name) when the service environment has a job of that name. */
  insert(j: Job): Promise<void>;
  get(id: string): Promise<Job | null>;
  list(page: PageRequest, filter?: ListFilter): Promise<Page<Job>>;
  update(
    id: string,
    patch: Partial<Omit<Job, 'id' | 'orgId' | 'serviceId' | 'environmentId'>>,
  ): Promise<void>;
  /** Its runs go with it. */
  delete(id: string): Promise<boolean>;
}

export interface JobRunRepo {
  /**
   * Records a run. An exclusive run while another exclusive one of the job is `running`
   * is not recorded: false (the database's partial unique index decides races).
   */
  start(r: JobRun): Promise<boolean>;
  finish(
    id: string,
    patch: Pick<JobRun, 'status' | 'exitCode' | 'finishedAt' | 'durationMs' | 'logTail' | 'error'>,
  ): Promise<void>;
  /** Runs still `running` of a job. */
  running(jobId: string): Promise<JobRun[]>;
  /** A job's runs, oldest first (only the newest `jobRunsKept` are kept). */
  list(jobId: string, page: PageRequest): Promise<Page<JobRun>>;
}

/** A service's own threshold for one alert rule (core/alerts/rules.ts), replacing the default. */
export interface AlertThreshold {
  orgId: string;
  serviceId: string;
  rule: string;
  value: number;
  updatedAt: string;
}

export interface AlertThresholdRepo {
  list(filter?: { serviceId?: string }): Promise<AlertThreshold[]>;
  /** Inserts or replaces the (service, rule) threshold. */
  set(t: AlertThreshold): Promise<void>;
  /** False when there was none. */
  remove(serviceId: string, rule: string): Promise<boolean>;
}

/**
 * What the alert rules watch, across orgs: each live service environment with its custom
 * hosts and its threshold overrides. Read by the metrics endpoint to export the
 * host → service join and the thresholds as bounded gauges.
 */
export interface AlertTarget {
  orgId: string;
  serviceId: string;
  serviceName: string;
  environmentId: string;
  environmentName: string;
  customHosts: string[];
  thresholds: Record<string, number>;
}

export interface AlertTargetLookup {
  alertTargets(): Promise<AlertTarget[]>;
}

export interface AuditRepo {
  append(e: AuditEvent): Promise<void>;
  list(
    page: PageRequest,
    filter?: { action?: string; targetId?: string },
  ): Promise<Page<AuditEvent>>;
  /**
   * How many of the org's events with one of `actions` were recorded after `since`,
   * and when the oldest of them was (null when none).
   */
  countSince(
    actions: readonly string[],
    since: string,
  ): Promise<{ count: number; oldest: string | null }>;
}

/** One org's repositories, all inside the transaction `Store.withOrg` opened. */
export interface OrgRepos {
  readonly orgId: string;
  orgs: OrgRepo;
  memberships: MembershipRepo;
  invites: InviteRepo;
  apiKeys: ApiKeyRepo;
  projects: ProjectRepo;
  environments: EnvironmentRepo;
  services: ServiceRepo;
  nodes: NodeRepo;
  releases: ReleaseRepo;
  releaseSteps: ReleaseStepRepo;
  releaseLogs: ReleaseLogRepo;
  deployJobs: DeployJobRepo;
  secrets: SecretRepo;
  domains: DomainRepo;
  webhooks: WebhookRepo;
  webhookDeliveries: WebhookDeliveryRepo;
  notificationChannels: NotificationChannelRepo;
  heldNotifications: HeldNotificationRepo;
  notificationDeliveries: NotificationDeliveryRepo;
  pushHooks: PushHookRepo;
  gitPolls: GitPollRepo;
  dataServices: DataServiceRepo;
  dataServiceLinks: DataServiceLinkRepo;
  registries: RegistryRepo;
  jobs: JobRepo;
  jobRuns: JobRunRepo;
  alertThresholds: AlertThresholdRepo;
  dataServiceBackups: DataServiceBackupRepo;
  audit: AuditRepo;
}

/** The edge-rebuild job's last run, for the edge status page (one record for the install). */
export interface EdgeRebuildLog {
  record(r: EdgeRebuild): Promise<void>;
  last(): Promise<EdgeRebuild | null>;
}

export interface EdgeRebuild {
  at: string;
  restoredRoutes: number;
  restoredHosts: number;
}

/** What a request for a build slot answered (BuildSlots.take). */
export type BuildSlotAnswer =
  | { granted: true }
  | {
      granted: false;
      /** The builds holding the engine's slots now. */
      running: { releaseId: string; orgId: string }[];
      /** Builds waiting that were queued before this one. */
      ahead: number;
    };

/**
 * At most N builds per engine at once, across orgs (one engine may be registered by several
 * orgs), handed out fairly: the org with the fewest builds running there first, then the
 * one served longest ago, then the oldest request. Outside any org, like the lookups.
 */
export interface BuildSlots {
  /**
   * Takes a slot of `engine` for the release, or queues its request (asking again keeps its
   * place). A granted slot is held until `free` or `leaseSeconds` pass (a dead worker);
   * asking again while holding it renews the lease. Requests of releases no longer queued
   * or building are dropped.
   */
  take(
    request: { releaseId: string; orgId: string; engine: string },
    limit: number,
    leaseSeconds: number,
  ): Promise<BuildSlotAnswer>;
  /** Frees the release's slot or drops its request (the build ended, or it was cancelled). */
  free(releaseId: string, orgId: string): Promise<void>;
}

export interface Store {
  /**
   * Runs fn in one transaction confined to orgId: in PostgreSQL by row-level security,
   * so even a query without a WHERE clause sees only that org's rows. A throw rolls back
   * every write. Reads see committed rows as of each read (READ COMMITTED), so a store may
   * run the reads fn makes before its first write each on their own.
   */
  withOrg<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T>;
  identity: IdentityRepo;
  domainLookup: DomainLookup;
  authGuards: AuthGuardRepo;
  releaseLookup: ReleaseLookup;
  /** Optional: stuck backups across orgs, for the backup sweep (both stores have it). */
  backupLookup?: BackupLookup;
  /** Optional: per-engine build slots (both stores have it). */
  buildSlots?: BuildSlots;
  nodeLookup: NodeLookup;
  /** Optional: where the edge-rebuild job notes its runs (both stores have it). */
  edgeRebuilds?: EdgeRebuildLog;
  /** Optional: the control plane's own backups (both stores have it). */
  controlBackups?: ControlBackupRepo;
  inviteLookup: InviteLookup;
  pushHookLookup: PushHookLookup;
  /** Optional: the services whose branch poll is due (both stores have it). */
  gitPollLookup?: GitPollLookup;
  /** Live service environments and their thresholds across orgs (alerting). */
  alertTargetLookup?: AlertTargetLookup;
  ping(): Promise<void>;
  close(): Promise<void>;
}
