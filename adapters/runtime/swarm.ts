/**
 * ContainerRuntime on a Docker Swarm cluster, through one of its managers (a node of kind
 * `swarm`; issue 17). The second file that imports dockerode, for the Engine's Swarm API.
 *
 * Each container the release engine starts is a Swarm service of one task, named as the
 * container would be: the engine already starts, gates, switches, scales and retires a
 * release replica by replica, so a service per replica needs no Swarm branch in the core,
 * while Swarm still places each task (constraints from the service's placement labels),
 * restarts it, and reschedules it when its member dies. No routing mesh: the endpoint is
 * `dnsrr` and the port is published in host mode on the member running the task (the
 * ingress mesh and service VIPs need IPVS, which many kernels lack), so the edge and the
 * probe reach each task at its member's address. Images, builds and one-off containers
 * other than migrations run on the manager's own engine.
 */
import type Docker from 'dockerode';
import { createHash, randomBytes } from 'node:crypto';
import { CoreError, NotFound, Unavailable } from '../../core/errors.ts';
import type {
  ClusterMember,
  ContainerInfo,
  ContainerLogLine,
  ContainerLogOptions,
  ContainerRuntime,
  ContainerSpec,
  DockerTarget,
  OneOffResult,
} from '../../core/ports.ts';
import { containerLogRotation } from '../../core/releases/plan.ts';
import { onFirstUse } from '../on-first-use.ts';
import { fromDockerTarget, type DockerRuntimeOptions } from './docker.ts';
import { dockerLogLines, engineTimestamp } from './docker-logs.ts';
import { ContainerNotFound, ImageNotFound } from './errors.ts';

const loadDockerode = onFirstUse(() => import('dockerode').then((m) => m.default));

export interface SwarmRuntimeOptions {
  /** How long `start` waits for a service's task to run; default 60 000 ms. */
  taskStartTimeoutMs?: number;
  /** How often tasks are read while waiting for a stop, a removal or a followed log; default 250 ms. */
  pollMs?: number;
  /**
   * How often tasks are read while a deploy waits for one to run (a replica, a migration);
   * default 50 ms. The start waits on Swarm for a second or more, and every poll interval
   * adds half of itself to it on average (a 250 ms poll cost the Swarm bench ~125 ms per
   * replica, ~190 for the slowest of three), for one cheap read of one service's tasks.
   */
  startPollMs?: number;
  /** A task Swarm cannot place for this long fails the start with Swarm's reason; default 3000 ms. */
  unplacedGraceMs?: number;
  /** How long `remove` waits for a stopped service's ended tasks to be reaped; default 30 000 ms. */
  reapWaitMs?: number;
  /** Connection options shared with the standalone runtime (connect timeout, ssh agent). */
  connection?: DockerRuntimeOptions;
}

/** A Swarm task as the Engine API answers it (the fields read here). */
interface SwarmTask {
  ID: string;
  ServiceID: string;
  NodeID?: string;
  Slot?: number;
  CreatedAt?: string;
  DesiredState?: string;
  Spec?: { ContainerSpec?: { Labels?: Record<string, string> } };
  Status?: {
    State?: string;
    Err?: string;
    Message?: string;
    ContainerStatus?: { ContainerID?: string; ExitCode?: number };
    PortStatus?: { Ports?: { TargetPort?: number; PublishedPort?: number }[] };
  };
}

interface SwarmService {
  ID: string;
  Version?: { Index?: number };
  Spec: Record<string, unknown> & {
    Name?: string;
    Labels?: Record<string, string>;
    Mode?: { Replicated?: { Replicas?: number } };
  };
}

interface SwarmNode {
  ID: string;
  Version?: { Index?: number };
  Description?: { Hostname?: string; Engine?: { EngineVersion?: string } };
  Spec?: { Role?: string; Availability?: string; Labels?: Record<string, string> };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string; Addr?: string };
}

/** Task states after which a task never runs again. */
const endedStates = new Set(['complete', 'failed', 'shutdown', 'rejected', 'orphaned', 'remove']);
const unscheduledStates = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing']);

/** The label naming the service a sealed-environment secret belongs to. */
const envOfLabel = 'selfdevop.env-of';

/** Where a task finds its sealed environment (`/run/secrets/<this>`). */
export const envSecretFile = 'selfdevop-env';

/**
 * The environment of a task, sealed in a Swarm secret instead of the service spec: the
 * secret's id and name, and the command the task would have run (the image's entrypoint and
 * command, or the spec's), which the shim runs with the environment added.
 */
export interface SealedEnv {
  secretId: string;
  secretName: string;
  argv: string[];
}

/**
 * On a service whose environment is in its spec in clear text (the image cannot read it from
 * a secret): why, as `envInSpecReason` said it. Read back by a start that found the service.
 */
const envInSpecLabel = 'selfdevop.env-in-spec';

/** Labels selfdevop keeps on a service for itself, never answered as the container's. */
const ownLabels = new Set([envInSpecLabel]);

/**
 * What an image holds of what the sealed environment's shim runs: `/bin/sh`, and `env` in a
 * directory of its `PATH` (the shim's `exec env` looks there).
 */
export interface ImageShell {
  sh: boolean;
  env: boolean;
}

/** The `PATH` a container gets from the engine when its image sets none. */
export const defaultContainerPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Where the shim's `env` may be, for an image's `Env` (pure): each absolute `PATH` entry's `env`. */
export function envCandidates(imageEnv: readonly string[] = []): string[] {
  const path =
    imageEnv.find((e) => e.startsWith('PATH='))?.slice('PATH='.length) ?? defaultContainerPath;
  const dirs = path.split(':').filter((d) => d.startsWith('/'));
  return [...new Set(dirs.map((d) => `${d.replace(/\/+$/, '')}/env`))];
}

/**
 * Why an image's environment cannot be sealed (pure), or null when it can: the shim needs
 * `/bin/sh` to read the secret and `env` to add the variables. Without them Swarm has no
 * other way to hand a task its environment than the spec's `Env` (a secret is a file: an app
 * would have to read it itself), so that is where it goes, and the user is told.
 */
export function envInSpecReason(shell: ImageShell): string | null {
  if (shell.sh && shell.env) return null;
  const missing = [!shell.sh && '/bin/sh', !shell.env && 'env'].filter(Boolean).join(' nor ');
  return `the image has no ${missing}`;
}

/** The warning a start answers for a service whose environment is in its spec (pure). */
export function envInSpecWarning(reason: string): string {
  return `the environment is in the Swarm service's spec in clear text (docker service inspect shows it), not in a Swarm secret: ${reason}, which reading it from the secret needs (add a shell to the image to keep it sealed)`;
}

/** How a start hands a task its environment: sealed, or in the spec (`inSpecBecause`), or none. */
interface EnvDelivery {
  sealed: SealedEnv | null;
  inSpecBecause?: string;
}

/** An image as the manager's engine answers its inspect (the fields read here). */
interface ImageInspect {
  Id?: string;
  RepoDigests?: string[];
  Config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null };
}

/** `'…'` for a POSIX shell: nothing in it is expanded. */
const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The sealed environment file (pure): sourced by the shim's `sh`, it replaces the shell by
 * `env`, which adds every variable (names a shell could not export too) and execs the
 * command, so the app is PID 1 with the environment a container's `Env` would have given it.
 */
export function envScript(env: Record<string, string>): string {
  const pairs = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`));
  return `exec env ${pairs.join(' ')}${pairs.length ? ' ' : ''}"$@"\n`;
}

/**
 * A Swarm secret's name for a service's environment: `<service>-env-<nonce>`, at most 64
 * characters. Each start makes its own (two deliveries of one step never share one).
 */
export function envSecretName(service: string, nonce: string): string {
  const base =
    service.length <= 50
      ? service
      : `${service.slice(0, 37)}-${createHash('sha256').update(service).digest('hex').slice(0, 12)}`;
  return `${base}-env-${nonce}`;
}

/** Swarm refuses a service name longer than this (a DNS label). */
const maxServiceName = 63;

/** On a service whose name was shortened: the container name its caller knows it by. */
const nameLabel = 'selfdevop.name';

/**
 * A service's name for a container name: the same when Swarm takes it; a longer one (a
 * release's container name from real ids is ~96 characters) keeps its first 50 characters
 * and a hash of the whole, so every call with that container name finds the one service.
 */
export function swarmServiceName(name: string): string {
  if (name.length <= maxServiceName) return name;
  return `${name.slice(0, 50)}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** The container name the service stands for (its label when its own name was shortened). */
const containerNameOf = (service: SwarmService): string =>
  service.Spec.Labels?.[nameLabel] ?? service.Spec.Name ?? service.ID;

/** The constraint pinning a replica's first task to the member the spread chose for it. */
const spreadPinPrefix = 'node.id==';

/**
 * How long one read of the members and their tasks serves the spread of a release's
 * replicas: the replicas of one start (a `maxSurge` batch) read within milliseconds of each
 * other, a later batch or a retried step a little later. Older reads are read again.
 */
const spreadReadMs = 5000;

/** The spread's member for a replica, and the members as read for it. */
interface SpreadPin {
  member: string;
  members: SwarmNode[];
}

/**
 * A start's pin: still on the service (`kept`), or being dropped (`dropping`, answering
 * the error the update ended with, or null).
 */
interface PinState {
  kept: boolean;
  dropping: Promise<unknown> | null;
}

/** A member as the spread reads it. */
export interface SpreadMember {
  id: string;
  ready: boolean;
  active: boolean;
  labels: Record<string, string>;
}

/**
 * The member a release's replica `index` starts on (pure), or null when fewer than two
 * members may take it. Swarm places each one-task service on its own, on the member with the
 * fewest tasks overall, so a release's replicas can all land on one member (seen in CI: 2 on
 * one, 1 on another, none on the third); a placement preference would not help, since Swarm
 * spreads only the tasks of one service. So the eligible members (ready, active, carrying the
 * placement labels) are ordered least loaded first (the tasks Swarm wants running; the
 * release's own are not counted, so every replica of one start, read at any moment of it,
 * sees the same order), ties by id, and replica i takes the i-th, round robin: N replicas on
 * min(N, members) members.
 */
export function spreadMember(
  members: SpreadMember[],
  tasks: { nodeId?: string; release?: string }[],
  release: string,
  index: number,
  placementLabels: Record<string, string> = {},
): string | null {
  const eligible = members.filter(
    (m) =>
      m.ready && m.active && Object.entries(placementLabels).every(([k, v]) => m.labels[k] === v),
  );
  if (eligible.length < 2) return null;
  const load = new Map<string, number>();
  for (const t of tasks)
    if (t.nodeId && t.release !== release) load.set(t.nodeId, (load.get(t.nodeId) ?? 0) + 1);
  const order = eligible
    .map((m) => m.id)
    .sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0));
  return order[index % order.length]!;
}

/**
 * The Swarm service spec for a release's container; pure, so plans can be checked without a
 * cluster. Without `sealed`, the environment is the spec's `Env`: `envInSpec` says why (the
 * image has no shell), kept in a label of the service.
 */
export function serviceSpec(
  spec: ContainerSpec,
  o: {
    /** A one-off (a migration): run once as a job, no port, no health check. */
    oneOff?: boolean;
    /** The environment sealed in a secret, run through the shim. */
    sealed?: SealedEnv | null;
    /** The member the spread chose for the first task. */
    pin?: string;
    /** Why the environment is in the spec (an image without the shim's needs). */
    envInSpec?: string;
  } = {},
): Record<string, unknown> {
  const { oneOff = false, sealed, pin, envInSpec } = o;
  const rotation = spec.logRotation ?? containerLogRotation;
  const limits: Record<string, number> = {};
  if (spec.memoryMb) limits.MemoryBytes = spec.memoryMb * 1024 * 1024;
  if (spec.cpus) limits.NanoCPUs = Math.round(spec.cpus * 1e9);
  const containerSpec: Record<string, unknown> = {
    Image: spec.image,
    Env: sealed ? [] : Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...spec.labels },
  };
  if (sealed) {
    // The values live in the secret (encrypted in the managers' Raft log, on a tmpfs in the
    // task); the spec, which `docker service inspect` shows, only names it.
    containerSpec.Command = [
      '/bin/sh',
      '-c',
      `. /run/secrets/${envSecretFile}`,
      'sh',
      ...sealed.argv,
    ];
    containerSpec.Secrets = [
      {
        File: { Name: envSecretFile, UID: '0', GID: '0', Mode: 0o444 },
        SecretID: sealed.secretId,
        SecretName: sealed.secretName,
      },
    ];
  } else {
    if (spec.entrypoint) containerSpec.Command = [...spec.entrypoint];
    if (spec.cmd) containerSpec[spec.entrypoint ? 'Args' : 'Command'] = [...spec.cmd];
  }
  if (spec.user) containerSpec.User = spec.user;
  if (spec.healthCommand && !oneOff) containerSpec.Healthcheck = healthCheck(spec, sealed);
  const port = oneOff ? undefined : spec.containerPort;
  const name = swarmServiceName(spec.name);
  return {
    Name: name,
    Labels: {
      ...spec.labels,
      ...(name === spec.name ? {} : { [nameLabel]: spec.name }),
      ...(!sealed && envInSpec ? { [envInSpecLabel]: envInSpec } : {}),
    },
    TaskTemplate: {
      ContainerSpec: containerSpec,
      // Limits and reservations alike, so Swarm places a task only where it fits.
      Resources: { Limits: limits, Reservations: limits },
      // A one-off runs once; a replica is restarted by Swarm, wherever it runs.
      RestartPolicy: oneOff
        ? { Condition: 'none' }
        : { Condition: spec.restartPolicy === 'no' ? 'none' : 'any', Delay: 1_000_000_000 },
      Placement: {
        Constraints: [
          ...Object.entries(spec.placementLabels ?? {}).map(([k, v]) => `node.labels.${k}==${v}`),
          // The spread's member, for the first task only: dropped once it runs (unpin).
          ...(pin ? [`${spreadPinPrefix}${pin}`] : []),
        ],
      },
      LogDriver: {
        Name: 'json-file',
        Options: { 'max-size': `${rotation.maxSizeMb}m`, 'max-file': String(rotation.maxFiles) },
      },
      ...(spec.network ? { Networks: [{ Target: spec.network }] } : {}),
    },
    Mode: oneOff
      ? { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } }
      : { Replicated: { Replicas: 1 } },
    // dnsrr: no VIP (IPVS); host mode: the port opens on the task's member, no ingress mesh.
    EndpointSpec: {
      Mode: 'dnsrr',
      ...(port ? { Ports: [{ Protocol: 'tcp', TargetPort: port, PublishMode: 'host' }] } : {}),
    },
  };
}

/**
 * The task's health check (Docker's `HealthConfig`, durations in ns) for a spec's health
 * command. Swarm holds the task `starting` until it passes once (swarmkit's container
 * controller waits for the `healthy` event before it reports the task running) and fails
 * the task when it fails `Retries` times in a row after the start period (`unhealthy`:
 * the container is stopped; the task fails with "unhealthy container" when the app exits
 * non-zero, and is `complete` with no error when it exits 0 on that stop); the restart
 * policy then starts a new one. Docker's key is `Healthcheck` (it reads any case, and
 * answers this one). With a sealed environment the check runs through the same
 * shim as the app (Docker runs it by exec, with the spec's empty `Env`), so it sees what the
 * app sees.
 */
function healthCheck(spec: ContainerSpec, sealed?: SealedEnv | null): Record<string, unknown> {
  const h = spec.healthCommand!;
  const ns = (ms: number) => Math.round(ms * 1e6);
  return {
    Test: [
      'CMD',
      ...(sealed ? ['/bin/sh', '-c', `. /run/secrets/${envSecretFile}`, 'sh'] : []),
      ...h.command,
    ],
    Interval: ns(h.intervalMs),
    Timeout: ns(h.timeoutMs),
    Retries: h.retries,
    StartPeriod: ns(h.startPeriodMs),
  };
}

/** How an ended task ended, in Swarm's words: its state, its error or else its exit code. */
function endedTask(t: SwarmTask): string {
  const code = t.Status?.ContainerStatus?.ExitCode;
  return `task ${t.Status?.State ?? 'unknown'}${t.Status?.Err ? `: ${t.Status.Err}` : code !== undefined ? `, exit code ${code}` : ''}`;
}

/** A service whose task could not run, with Swarm's reason. */
export class SwarmTaskFailed extends CoreError {
  constructor(service: string, reason: string) {
    super('conflict', 'swarm_task_failed', `swarm service ${service}: ${reason}`, { service });
  }
}

/** A capability the Swarm target does not have yet (issue 17, later steps). */
export class NotOnSwarm extends CoreError {
  constructor(what: string) {
    super('conflict', 'not_on_swarm', `${what} is not supported on a Swarm target yet`);
  }
}

export class SwarmRuntime {
  private readonly clients = new Map<string, Docker>();
  /**
   * What each image (by id: content-addressed, so one answer holds on every manager) holds
   * of the shim's needs, probed once: a deploy's later starts of that image pay nothing.
   * A failed probe is not kept. Bounded: the oldest goes when a 257th image comes.
   */
  private readonly shells = new Map<string, Promise<ImageShell>>();
  /** The spread's reads, per manager and release, until they expire (`spreadRead`). */
  private readonly spreadReads = new Map<
    string,
    { until: number; read: Promise<{ nodes: SwarmNode[]; tasks: SwarmTask[] }> }
  >();
  private readonly taskStartTimeoutMs: number;
  private readonly pollMs: number;
  private readonly startPollMs: number;
  private readonly unplacedGraceMs: number;
  private readonly reapWaitMs: number;
  private readonly options: SwarmRuntimeOptions;

  constructor(options: SwarmRuntimeOptions = {}) {
    this.options = options;
    this.taskStartTimeoutMs = options.taskStartTimeoutMs ?? 60_000;
    this.pollMs = options.pollMs ?? 250;
    this.startPollMs = options.startPollMs ?? 50;
    this.unplacedGraceMs = options.unplacedGraceMs ?? 3000;
    this.reapWaitMs = options.reapWaitMs ?? 30_000;
  }

  /** The engine answers and is a manager of an active Swarm. */
  async ping(target: DockerTarget): Promise<void> {
    const info = (await this.call(target, (d) => d.info())) as {
      Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean };
    };
    if (info.Swarm?.LocalNodeState !== 'active')
      throw new SwarmTaskFailed(
        target.dockerHost,
        `the engine is not in a Swarm (state ${info.Swarm?.LocalNodeState ?? 'unknown'}): run docker swarm init, or register it as an engine`,
      );
    if (!info.Swarm.ControlAvailable)
      throw new SwarmTaskFailed(
        target.dockerHost,
        'the engine is a Swarm worker, not a manager: register one of the managers',
      );
  }

  /** The cluster's members as the manager knows them. */
  async members(target: DockerTarget): Promise<ClusterMember[]> {
    const nodes = (await this.call(target, (d) => d.listNodes())) as SwarmNode[];
    return nodes
      .map((n) => ({
        id: n.ID,
        hostname: n.Description?.Hostname ?? n.ID,
        address: n.Status?.Addr ?? '',
        role: n.Spec?.Role === 'manager' ? ('manager' as const) : ('worker' as const),
        leader: n.ManagerStatus?.Leader === true,
        availability: (['active', 'pause', 'drain'].includes(n.Spec?.Availability ?? '')
          ? n.Spec!.Availability
          : 'active') as ClusterMember['availability'],
        state: n.Status?.State ?? 'unknown',
        labels: { ...(n.Spec?.Labels ?? {}) },
        engineVersion: n.Description?.Engine?.EngineVersion ?? null,
      }))
      .sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
  }

  /**
   * Sets a member's availability (`docker node update --availability`): `drain` makes Swarm
   * stop its tasks and run them on other members, `pause` keeps them but places none there,
   * `active` takes tasks again. `member` is its id or hostname. The node's spec is written
   * against the version read, so a concurrent change (labels) is read again, not undone.
   */
  async setAvailability(
    target: DockerTarget,
    member: string,
    availability: ClusterMember['availability'],
  ): Promise<ClusterMember> {
    for (let attempt = 0; ; attempt++) {
      const node = await this.memberOrNull(target, member);
      if (!node) throw new NotFound('cluster_member', member);
      if (node.Spec?.Availability === availability) break;
      try {
        await this.call(target, (d) =>
          d.getNode(node.ID).update({
            version: node.Version?.Index ?? 0,
            ...node.Spec,
            Availability: availability,
          }),
        );
        break;
      } catch (e) {
        // `update out of sequence`: another writer changed the node since the read.
        if (attempt >= 4 || !/out of sequence/i.test((e as Error).message)) throw e;
      }
    }
    const node = (await this.memberOrNull(target, member))!;
    return (await this.members(target)).find((m) => m.id === node.ID)!;
  }

  /** A member by id or hostname; null when the manager knows none. */
  private async memberOrNull(target: DockerTarget, member: string): Promise<SwarmNode | null> {
    try {
      return (await this.call(target, (d) => d.getNode(member).inspect())) as SwarmNode;
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 400) throw e;
    }
    // The API takes ids (and names on most engines): a hostname is looked up in the list.
    const nodes = (await this.call(target, (d) => d.listNodes())) as SwarmNode[];
    return nodes.find((n) => n.ID === member || n.Description?.Hostname === member) ?? null;
  }

  /**
   * The service of `spec.name` with its one task running, created when absent (a retried
   * step finds its first attempt's), started again when it was stopped (scaled to 0).
   */
  async start(target: DockerTarget, spec: ContainerSpec): Promise<ContainerInfo> {
    let service = await this.serviceOrNull(target, spec.name);
    // The members as the spread read them, when it did: where the task runs is read there.
    let members: SwarmNode[] | undefined;
    if (!service) {
      if (spec.network) await this.ensureOverlay(target, spec.network);
      // Independent reads and the secret, at once (a deploy's time is mostly these calls).
      const inspect = this.imageInspectOnce(target, spec.image);
      const [imageOf, envOf, pinOf] = await Promise.allSettled([
        this.pinnedImage(target, spec.image, inspect),
        this.deliverEnv(target, spec, inspect),
        this.spreadPin(target, spec),
      ]);
      const failed = [imageOf, envOf, pinOf].find((r) => r.status === 'rejected');
      if (failed) {
        if (envOf.status === 'fulfilled' && envOf.value.sealed)
          await this.removeSecret(target, envOf.value.sealed.secretId).catch(() => undefined);
        throw (failed as PromiseRejectedResult).reason;
      }
      const image = (imageOf as PromiseFulfilledResult<string>).value;
      const { sealed, inSpecBecause } = (envOf as PromiseFulfilledResult<EnvDelivery>).value;
      const pin = (pinOf as PromiseFulfilledResult<SpreadPin | null>).value;
      members = pin?.members;
      const body = serviceSpec(
        { ...spec, image },
        { sealed, pin: pin?.member, envInSpec: inSpecBecause },
      );
      let created: { id?: string; ID?: string } | null = null;
      try {
        created = (await this.call(target, (d) =>
          d.createService(body as Docker.CreateServiceOptions),
        )) as { id?: string; ID?: string };
      } catch (e) {
        // Two deliveries of one step: the other one created it (with its own secret: ours goes).
        if (sealed) await this.removeSecret(target, sealed.secretId).catch(() => undefined);
        if ((e as { statusCode?: number }).statusCode !== 409) throw e;
      }
      const id = created?.id ?? created?.ID;
      // The spec just written is the service as far as a start reads it (one call less on a
      // deploy's path); what writes to it later reads its version first.
      service = id
        ? { ID: id, Spec: body as SwarmService['Spec'] }
        : await this.serviceOrNull(target, spec.name);
      if (!service) throw new SwarmTaskFailed(spec.name, 'created, then not found');
    }
    let earlier = new Set<string>();
    if ((service.Spec.Mode?.Replicated?.Replicas ?? 1) === 0) {
      earlier = new Set((await this.tasksOf(target, service.ID)).map((t) => t.ID));
      await this.setReplicas(target, service, 1);
    }
    let run: { task: SwarmTask; tasks: SwarmTask[] };
    try {
      run = await this.runningTask(target, service, earlier);
    } catch (e) {
      // Nothing of it ran: leave no service behind, as an engine leaves no container.
      if (e instanceof ImageNotFound) await this.discard(target, service);
      throw e;
    }
    const address = members?.find((n) => n.ID === run.task.NodeID)?.Status?.Addr;
    const info = await this.infoOf(target, service, run.task, {
      tasks: run.tasks,
      ...(address ? { address } : {}),
    });
    // Said on every start of it, a retried one too (the label is on the service).
    const inSpec = service.Spec.Labels?.[envInSpecLabel];
    return inSpec ? { ...info, warnings: [envInSpecWarning(inSpec)] } : info;
  }

  /**
   * The member this replica's first task goes to (`spreadMember`), or null: not a replica
   * of a release, or fewer than two members to spread over. With the members it read.
   */
  private async spreadPin(target: DockerTarget, spec: ContainerSpec): Promise<SpreadPin | null> {
    const release = spec.labels['selfdevop.release'];
    if (spec.replicaIndex === undefined || !release) return null;
    const { nodes, tasks } = await this.spreadRead(target, release);
    const member = spreadMember(
      nodes.map((n) => ({
        id: n.ID,
        ready: n.Status?.State === 'ready',
        active: (n.Spec?.Availability ?? 'active') === 'active',
        labels: n.Spec?.Labels ?? {},
      })),
      tasks.map((t) => ({
        ...(t.NodeID ? { nodeId: t.NodeID } : {}),
        ...(t.Spec?.ContainerSpec?.Labels?.['selfdevop.release']
          ? { release: t.Spec.ContainerSpec.Labels['selfdevop.release'] }
          : {}),
      })),
      release,
      spec.replicaIndex,
      spec.placementLabels,
    );
    return member ? { member, members: nodes } : null;
  }

  /**
   * The members and the tasks Swarm wants running, read once for the replicas of one
   * release that start together (and shared for `spreadReadMs`): each replica reading them
   * itself cost two reads of the whole cluster per replica. Sharing changes no choice, since
   * `spreadMember` leaves the release's own tasks out of the order. A failed read is not
   * kept: the next replica, or the step's retry, reads again.
   */
  private spreadRead(
    target: DockerTarget,
    release: string,
  ): Promise<{ nodes: SwarmNode[]; tasks: SwarmTask[] }> {
    const now = Date.now();
    for (const [k, v] of this.spreadReads) if (v.until <= now) this.spreadReads.delete(k);
    const key = `${target.dockerHost}\n${release}`;
    const kept = this.spreadReads.get(key);
    if (kept) return kept.read;
    const read = Promise.all([
      this.call(target, (d) => d.listNodes()) as Promise<SwarmNode[]>,
      this.call(target, (d) =>
        d.listTasks({ filters: { 'desired-state': ['running'] } }),
      ) as Promise<SwarmTask[]>,
    ]).then(([nodes, tasks]) => ({ nodes, tasks }));
    const entry = { until: now + spreadReadMs, read };
    this.spreadReads.set(key, entry);
    read.catch(() => {
      if (this.spreadReads.get(key) === entry) this.spreadReads.delete(key);
    });
    return read;
  }

  /**
   * Drops the spread's pin from the service, so Swarm may run the task anywhere the
   * placement labels allow when its member is lost (a pin kept would leave the replacement
   * unplaceable once that member is gone). The running task stays: Swarm leaves a task be
   * when only the constraints changed and its member still matches them (swarmkit's
   * IsTaskDirtyPlacementConstraintsOnly) once the task has a member: a task still pending
   * would be replaced. Written against the version read (Swarm moves it after a create, when
   * it allocates the endpoint, so a version from before is mostly out of sequence), read
   * again on a concurrent change.
   */
  private async unpin(target: DockerTarget, serviceId: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const service = await this.serviceOrNull(target, serviceId);
      if (!service || !isPinned(service)) return;
      const { ID: id, Version: version } = service;
      const template = service.Spec.TaskTemplate as {
        Placement?: { Constraints?: string[] };
      };
      const spec = {
        ...service.Spec,
        TaskTemplate: {
          ...template,
          Placement: {
            ...template.Placement,
            Constraints: (template.Placement?.Constraints ?? []).filter(
              (c) => !c.startsWith(spreadPinPrefix),
            ),
          },
        },
      };
      try {
        await this.call(target, (d) =>
          d.getService(id).update({ ...spec, version: version?.Index ?? 0 }),
        );
        return;
      } catch (e) {
        if (attempt >= 4 || !/out of sequence/i.test((e as Error).message)) throw e;
      }
    }
  }

  /** Scaled to 0, then removed once Swarm's reaper is done with its tasks (see remove). */
  private async discard(target: DockerTarget, service: SwarmService): Promise<void> {
    const fresh = await this.serviceOrNull(target, service.ID);
    if (fresh && (fresh.Spec.Mode?.Replicated?.Replicas ?? 1) !== 0)
      await this.setReplicas(target, fresh, 0).catch(() => undefined);
    await this.remove(target, service.ID).catch(() => undefined);
  }

  async inspect(target: DockerTarget, name: string): Promise<ContainerInfo | null> {
    const service = await this.serviceOrNull(target, name);
    if (!service) return null;
    return this.infoOf(target, service, await this.currentTask(target, service.ID));
  }

  async list(target: DockerTarget, labels: Record<string, string>): Promise<ContainerInfo[]> {
    const services = (await this.call(target, (d) =>
      d.listServices({
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      }),
    )) as unknown as SwarmService[];
    const infos = await Promise.all(
      services.map(async (s) => this.infoOf(target, s, await this.currentTask(target, s.ID))),
    );
    // By name, as an engine's list is.
    return infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Scales the service to 0: its task gets `graceSeconds` to stop (the release's drain),
   * the service stays so `start` can bring it back (a failed replace strategy). Waits
   * (at most the grace and 30 s) until no task runs on a member that can still stop it.
   */
  async stop(target: DockerTarget, name: string, graceSeconds: number): Promise<void> {
    const service = await this.serviceOrNull(target, name);
    if (!service) return;
    const spec = service.Spec as { TaskTemplate?: { ContainerSpec?: Record<string, unknown> } };
    if (spec.TaskTemplate?.ContainerSpec)
      spec.TaskTemplate.ContainerSpec.StopGracePeriod = Math.round(graceSeconds * 1e9);
    await this.setReplicas(target, service, 0);
    const deadline = Date.now() + (graceSeconds + 30) * 1000;
    while (Date.now() < deadline) {
      const running = (await this.tasksOf(target, service.ID)).filter(
        (t) => t.Status?.State === 'running',
      );
      if (running.length === 0) return;
      // A member that is not ready (down, unknown, disconnected) reports nothing until it
      // returns, so the manager keeps its task `running` however long it is gone; Swarm
      // stops the task when the member comes back (its desired state is shutdown now).
      // Waiting for it would stall the retire of a whole set on one lost member.
      const ready = await this.readyMembers(target);
      if (running.every((t) => !t.NodeID || !ready.has(t.NodeID))) return;
      await delay(this.pollMs);
    }
  }

  /**
   * Deletes the service. Not while Swarm's task reaper is deleting its stopped tasks: the
   * leader of Engine 20.10 then crashes (swarmkit's SetServiceTasksRemove dereferences a
   * task the reaper deleted between its read and its write: a nil pointer panic, seen here
   * right after a stop, and the member stays down with every task it ran). A stopped
   * (scaled to 0) service's tasks are reaped once they end, so it is removed once none is
   * left that a ready member still runs or the reaper has yet to take (bounded); a task
   * still running on a lost member is not reaped, and a live service's tasks neither.
   */
  async remove(target: DockerTarget, name: string): Promise<void> {
    const service = await this.serviceOrNull(target, name);
    if (!service) return;
    if ((service.Spec.Mode?.Replicated?.Replicas ?? 1) === 0) {
      const deadline = Date.now() + this.reapWaitMs;
      while (Date.now() < deadline) {
        const tasks = await this.tasksOf(target, service.ID);
        if (tasks.length === 0) break;
        const ready = await this.readyMembers(target);
        const settled = tasks.every(
          (t) => t.Status?.State === 'running' && (!t.NodeID || !ready.has(t.NodeID)),
        );
        if (settled) break;
        await delay(this.pollMs);
      }
    }
    try {
      await this.call(target, (d) => d.getService(service.ID).remove());
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 404) throw e;
    }
    // The sealed environment goes with its service (and so with the release's services),
    // with any a start left when it died before its service was made.
    const left = (await this.call(target, (d) =>
      d.listSecrets({ filters: { label: [`${envOfLabel}=${containerNameOf(service)}`] } }),
    ).catch(() => [])) as { ID: string }[];
    for (const id of new Set([...secretsOf(service), ...left.map((x) => x.ID)]))
      await this.removeSecret(target, id);
  }

  /**
   * How a task gets `spec.env`: nothing to deliver without env; else a Swarm secret holding
   * it as the shim's script when the image can run the shim (`imageShell`), else the spec's
   * `Env`, with the reason. The shim's command is the spec's or else the image's (inspected
   * on the manager, where the image was resolved), since the shim replaces the entrypoint.
   */
  private async deliverEnv(
    target: DockerTarget,
    spec: ContainerSpec,
    inspect: () => Promise<ImageInspect>,
  ): Promise<EnvDelivery> {
    if (Object.keys(spec.env).length === 0) return { sealed: null };
    const imageMissing = (e: unknown) => {
      if ((e as { statusCode?: number }).statusCode === 404)
        throw new ImageNotFound(
          spec.image,
          `not on the manager, which reads it to seal the environment`,
        );
      throw e;
    };
    const shell = await this.imageShell(target, spec.image, inspect).catch(imageMissing);
    const reason = envInSpecReason(shell);
    if (reason) return { sealed: null, inSpecBecause: reason };
    let argv: string[];
    if (spec.entrypoint) argv = [...spec.entrypoint, ...(spec.cmd ?? [])];
    else {
      const config = (await inspect().catch(imageMissing)).Config;
      argv = [...(config?.Entrypoint ?? []), ...(spec.cmd ?? config?.Cmd ?? [])];
    }
    const name = envSecretName(spec.name, randomBytes(4).toString('hex'));
    const created = (await this.call(target, (d) =>
      d.createSecret({
        Name: name,
        Labels: { ...spec.labels, [envOfLabel]: spec.name },
        Data: Buffer.from(envScript(spec.env)).toString('base64'),
      }),
    )) as { id?: string; ID?: string };
    return { sealed: { secretId: (created.id ?? created.ID)!, secretName: name, argv } };
  }

  /**
   * Whether `image` (on the manager) has `/bin/sh` and an `env` on its `PATH`, from the
   * answers kept per image id. An id (`sha256:…`, what a release starts) is its own key, so
   * a known image costs no call; a name is inspected for its id first (a tag moves).
   */
  private imageShell(
    target: DockerTarget,
    image: string,
    inspect: () => Promise<ImageInspect>,
  ): Promise<ImageShell> {
    const known = image.startsWith('sha256:') ? this.shells.get(image) : undefined;
    if (known) return known;
    return inspect().then((info) => {
      const id = info.Id ?? image;
      let probe = this.shells.get(id);
      if (!probe) {
        probe = this.probeShell(target, image, envCandidates(info.Config?.Env ?? []));
        if (this.shells.size >= 256) this.shells.delete(this.shells.keys().next().value!);
        this.shells.set(id, probe);
        probe.catch(() => {
          if (this.shells.get(id) === probe) this.shells.delete(id);
        });
      }
      return probe;
    });
  }

  /**
   * Looks into the image without running it: a container of it is created on the manager's
   * engine (never started: the command given is never run, so an image without any command
   * can be created too), each path asked with `HEAD /containers/{id}/archive` (404: absent),
   * then the container goes with any anonymous volume of the image.
   */
  private async probeShell(
    target: DockerTarget,
    image: string,
    envPaths: string[],
  ): Promise<ImageShell> {
    const container = await this.call(target, (d) =>
      d.createContainer({
        Image: image,
        Entrypoint: ['/selfdevop-shell-probe'],
        Cmd: [],
        NetworkDisabled: true,
        Labels: { 'selfdevop.probe': 'shell' },
      }),
    );
    const has = (path: string) =>
      this.call(target, (d) => d.getContainer(container.id).infoArchive({ path })).then(
        (stream: unknown) => {
          (stream as { destroy?: () => void } | null)?.destroy?.();
          return true;
        },
        (e: unknown) => {
          if ((e as { statusCode?: number }).statusCode === 404) return false;
          throw e;
        },
      );
    try {
      const [sh, ...envs] = await Promise.all(['/bin/sh', ...envPaths].map(has));
      return { sh: sh!, env: envs.some(Boolean) };
    } finally {
      await this.call(target, (d) =>
        d.getContainer(container.id).remove({ force: true, v: true }),
      ).catch(() => undefined);
    }
  }

  /** One inspect of `image` on the manager, shared by what a start reads of it. */
  private imageInspectOnce(target: DockerTarget, image: string): () => Promise<ImageInspect> {
    let read: Promise<ImageInspect> | undefined;
    return () =>
      (read ??= this.call(target, (d) => d.getImage(image).inspect()) as Promise<ImageInspect>);
  }

  /** Deletes a secret; one in use (another service still names it) or gone is left be. */
  private async removeSecret(target: DockerTarget, idOrName: string): Promise<void> {
    try {
      await this.call(target, (d) => d.getSecret(idOrName).remove());
    } catch (e) {
      const code = (e as { statusCode?: number }).statusCode;
      if (code !== 404 && code !== 400 && code !== 409) throw e;
    }
  }

  /**
   * A one-off (a migration) as a Swarm job of one task with the release's image: Swarm
   * places it like the replicas, so it runs where the app would. Its output is the
   * service's log, read once it ended; the job is removed afterwards.
   */
  async runOnce(
    target: DockerTarget,
    spec: ContainerSpec,
    timeoutMs: number,
    onLine?: (line: string) => void | Promise<void>,
  ): Promise<OneOffResult> {
    await this.remove(target, spec.name);
    if (spec.network) await this.ensureOverlay(target, spec.network);
    const inspect = this.imageInspectOnce(target, spec.image);
    const image = await this.pinnedImage(target, spec.image, inspect);
    const { sealed, inSpecBecause } = await this.deliverEnv(target, spec, inspect);
    const warnings = inSpecBecause ? { warnings: [envInSpecWarning(inSpecBecause)] } : {};
    const created = (await this.call(target, (d) =>
      d.createService(
        serviceSpec(
          { ...spec, image },
          { oneOff: true, sealed, envInSpec: inSpecBecause },
        ) as Docker.CreateServiceOptions,
      ),
    ).catch(async (e: unknown) => {
      if (sealed) await this.removeSecret(target, sealed.secretId).catch(() => undefined);
      throw e;
    })) as { id?: string; ID?: string };
    const id = created.id ?? created.ID;
    if (!id) throw new SwarmTaskFailed(spec.name, 'the manager answered no service id');
    try {
      const deadline = Date.now() + timeoutMs;
      let task: SwarmTask | undefined;
      while (Date.now() < deadline) {
        task = (await this.tasksOf(target, id))[0];
        if (task && endedStates.has(task.Status?.State ?? '')) break;
        await delay(this.startPollMs);
      }
      const ended = task && endedStates.has(task.Status?.State ?? '');
      const err = task?.Status?.Err ?? '';
      if (ended && missingImage(err)) throw new ImageNotFound(spec.image, err);
      let output = (await this.serviceLogs(target, id)).replace(/\n$/, '');
      const unstartable =
        ended && /starting container failed/.test(err) ? unstartableExitCode(err) : null;
      // What the engine said when it could not run the command is the output, as `docker run` shows it.
      if (unstartable !== null) output = output ? `${output}\n${err}` : err;
      for (const line of output.split('\n')) if (line.length > 0) await onLine?.(line);
      if (!ended) return { exitCode: null, timedOut: true, output, ...warnings };
      if (unstartable !== null)
        return { exitCode: unstartable, timedOut: false, output, ...warnings };
      const code = task!.Status?.ContainerStatus?.ExitCode;
      if (code === undefined && task!.Status?.State !== 'complete')
        throw new SwarmTaskFailed(spec.name, err || (task!.Status?.State ?? 'failed'));
      return { exitCode: code ?? 0, timedOut: false, output, ...warnings };
    } finally {
      await this.remove(target, spec.name).catch(() => undefined);
    }
  }

  /**
   * The replica's output, every task of its service (a restart or a reschedule is a new
   * task), as the manager collects it from the members (`GET /services/{id}/logs`, the
   * same frames and timestamps as a container's). A task on a member that is gone has no
   * stored output to give until it returns.
   */
  async *logs(
    target: DockerTarget,
    name: string,
    options: ContainerLogOptions,
  ): AsyncGenerator<ContainerLogLine> {
    const { signal } = options;
    if (signal.aborted) return;
    const service = await this.serviceOrNull(target, name);
    if (!service) throw new ContainerNotFound(name);
    const query: Record<string, string | number | boolean> = {
      stdout: true,
      stderr: true,
      timestamps: true,
      follow: options.follow,
    };
    if (options.since) query.since = engineTimestamp(options.since);
    if (options.tail !== undefined) query.tail = options.tail;
    const stream = await this.call(
      target,
      (docker) =>
        new Promise<NodeJS.ReadableStream>((resolve, reject) =>
          docker.modem.dial(
            {
              path: `/services/${encodeURIComponent(service.ID)}/logs?`,
              method: 'GET',
              options: query,
              isStream: true,
              abortSignal: signal,
              statusCodes: { 200: true, 404: 'no such service', 500: 'server error' },
            },
            (err: unknown, data: unknown) =>
              err ? reject(err) : resolve(data as NodeJS.ReadableStream),
          ),
        ),
    ).catch((e: unknown) => {
      if (signal.aborted) return null;
      if ((e as { statusCode?: number }).statusCode === 404) throw new ContainerNotFound(name);
      throw e;
    });
    if (!stream) return;
    const readable = stream as NodeJS.ReadableStream & { destroy?: () => void };
    const abort = () => readable.destroy?.();
    signal.addEventListener('abort', abort, { once: true });
    // Service logs have no `until`: the lines after it are dropped here.
    const until = !options.follow && options.until ? options.until : null;
    try {
      for await (const line of dockerLogLines(
        readable as AsyncIterable<Buffer>,
        false,
        options.filter,
      )) {
        if (until && line.time > until) continue;
        yield line;
      }
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      signal.removeEventListener('abort', abort);
      readable.destroy?.();
    }
  }

  /**
   * Follows the replica's output until `signal` aborts or its task ends: a service's log
   * stream stays open after its task stopped (the service is still there), so the task is
   * read every `pollMs` and the follow ends once none runs.
   */
  async followLogs(
    target: DockerTarget,
    name: string,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return;
    const service = await this.serviceOrNull(target, name);
    if (!service) throw new ContainerNotFound(name);
    const own = new AbortController();
    const stop = () => own.abort();
    signal.addEventListener('abort', stop, { once: true });
    const watch = (async () => {
      while (!own.signal.aborted) {
        await delay(this.pollMs);
        const task = await this.currentTask(target, service.ID).catch(() => undefined);
        if (task !== undefined && task?.Status?.State !== 'running') own.abort();
      }
    })();
    try {
      for await (const line of this.logs(target, name, {
        follow: true,
        signal: own.signal,
      }))
        onLine(line.text, line.stream);
    } finally {
      signal.removeEventListener('abort', stop);
      own.abort();
      await watch;
    }
  }

  // ------------------------------------------------------------------ internals

  /**
   * A task running (with the service's tasks as read then), or Swarm's reason why none
   * does (unschedulable, failing to start). A pinned service (the spread) loses its pin as
   * soon as Swarm gave its task a member, while the task starts there: the update then
   * costs the start nothing, and the start never returns with the pin in place.
   */
  private async runningTask(
    target: DockerTarget,
    service: SwarmService,
    earlier: ReadonlySet<string> = new Set(),
  ): Promise<{ task: SwarmTask; tasks: SwarmTask[] }> {
    const pin: PinState = { kept: isPinned(service), dropping: null };
    try {
      const run = await this.waitRunning(target, service, earlier, pin);
      // Seen running before it was seen placed: the pin goes now.
      if (pin.kept) pin.dropping = this.unpinQuietly(target, service.ID);
      const failed = await pin.dropping;
      if (failed) throw failed;
      return run;
    } catch (e) {
      // Not left racing with what the caller does next (a discard writes the same service).
      await pin.dropping;
      throw e;
    }
  }

  /** `unpin`, answering the error it ended with, or null (never rejects: it runs unawaited). */
  private unpinQuietly(target: DockerTarget, serviceId: string): Promise<unknown> {
    return this.unpin(target, serviceId).then(
      () => null,
      (e: unknown) => e,
    );
  }

  private async waitRunning(
    target: DockerTarget,
    service: SwarmService,
    earlier: ReadonlySet<string>,
    pin: PinState,
  ): Promise<{ task: SwarmTask; tasks: SwarmTask[] }> {
    const check = (
      service.Spec.TaskTemplate as
        | {
            ContainerSpec?: {
              Healthcheck?: {
                Test?: string[];
                Interval?: number;
                Timeout?: number;
                Retries?: number;
                StartPeriod?: number;
              };
            };
          }
        | undefined
    )?.ContainerSpec?.Healthcheck;
    // A task with a health check runs only once it passed: the check's own time (its start
    // period, then a run per interval until it fails for good) comes on top of the start's.
    const checkMs = check
      ? ((check.StartPeriod ?? 0) +
          ((check.Retries ?? 3) + 1) * ((check.Interval ?? 0) + (check.Timeout ?? 0))) /
        1e6
      : 0;
    const timeoutMs = this.taskStartTimeoutMs + checkMs;
    const deadline = Date.now() + timeoutMs;
    let last = 'no task yet';
    let unplacedSince: number | null = null;
    while (Date.now() < deadline) {
      const tasks = await this.tasksOf(target, service.ID);
      const running = tasks.find(
        (t) => t.Status?.State === 'running' && t.DesiredState === 'running',
      );
      if (running) return { task: running, tasks };
      const newest = tasks[0];
      // Not restarted (restart policy none): a task that ran and ended is the answer, as a
      // container that exited at once is; one that never started is a failure.
      const noRestart =
        (service.Spec.TaskTemplate as { RestartPolicy?: { Condition?: string } } | undefined)
          ?.RestartPolicy?.Condition === 'none';
      const image = String(
        (service.Spec.TaskTemplate as { ContainerSpec?: { Image?: string } } | undefined)
          ?.ContainerSpec?.Image ?? service.Spec.Name,
      );
      // A member without the image rejects its task, and Swarm may place the next one on a
      // member that has it: the image is missing once the task is not restarted, or after
      // three rejections (below).
      // The task of this start: not one a stopped service kept from before. Swarm shuts a
      // task down once it ended, restarted or not, so the newest of this start is it.
      const wanted = tasks.find((t) => !earlier.has(t.ID));
      const wantedErr = wanted?.Status?.Err ?? '';
      if (
        pin.kept &&
        wanted?.NodeID &&
        wanted.DesiredState === 'running' &&
        !endedStates.has(wanted.Status?.State ?? '')
      ) {
        // Swarm gave the task its member: the pin goes while the task starts there.
        pin.kept = false;
        pin.dropping = this.unpinQuietly(target, service.ID);
      }
      if (noRestart && wanted?.Status?.State === 'rejected' && missingImage(wantedErr))
        throw new ImageNotFound(image, wantedErr);
      if (noRestart && wanted && endedStates.has(wanted.Status?.State ?? '')) {
        if (wanted.Status?.ContainerStatus?.ContainerID && wanted.Status.State !== 'rejected')
          return { task: wanted, tasks };
        throw new SwarmTaskFailed(
          service.Spec.Name ?? service.ID,
          `its task did not start: ${wantedErr || wanted.Status?.State}`,
        );
      }
      // With a health check, a task of this start that ended before one ran did not pass
      // it: swarmkit stops a task whose check fails `Retries` times after the start period
      // and, if the app then exits 0 (as on a SIGTERM it handles), reports the task
      // `complete` with no error; only a non-zero exit says "unhealthy container". Swarm
      // would only start another to fail the same way: the first is the answer.
      const ended = check
        ? tasks.find(
            (t) => !earlier.has(t.ID) && ['complete', 'failed'].includes(t.Status?.State ?? ''),
          )
        : undefined;
      if (ended)
        throw new SwarmTaskFailed(
          service.Spec.Name ?? service.ID,
          `its health check \`${check?.Test?.at(-1) ?? '?'}\` did not pass: Swarm ended the task before it ran (${endedTask(ended)}; Swarm stops a task whose check fails ${check?.Retries ?? 3} times in a row after its start period)`,
        );
      // Swarm keeps a task no member may take pending for ever (its constraints, or its
      // reservations, fit nowhere): a deploy says so instead of waiting out the deadline.
      const unplaced = tasks[0]?.Status?.State === 'pending' && tasks[0].Status.Err;
      if (unplaced && pin.kept) {
        // The spread's member cannot take it (its reservations, or it left): the spread is a
        // preference, so the pin goes and Swarm places the task where it can.
        await this.unpin(target, service.ID);
        pin.kept = false;
        await delay(this.startPollMs);
        continue;
      }
      unplacedSince = unplaced ? (unplacedSince ?? Date.now()) : null;
      if (unplaced && Date.now() - unplacedSince! >= this.unplacedGraceMs)
        throw new SwarmTaskFailed(
          service.Spec.Name ?? service.ID,
          `no member takes its task: ${tasks[0]!.Status!.Err} (check the service's placement labels against the members' labels: selfdevop nodes cluster)`,
        );
      const failed = tasks.filter((t) => ['failed', 'rejected'].includes(t.Status?.State ?? ''));
      // Swarm restarts a failing task for ever; three failures is an answer.
      if (failed.length >= 3 && missingImage(failed[0]!.Status?.Err ?? ''))
        throw new ImageNotFound(image, failed[0]!.Status!.Err!);
      if (failed.length >= 3)
        throw new SwarmTaskFailed(
          service.Spec.Name ?? service.ID,
          `its task failed ${failed.length} times: ${failed[0]!.Status?.Err ?? failed[0]!.Status?.State}`,
        );
      if (newest)
        last = `task ${newest.Status?.State ?? 'unknown'}${newest.Status?.Err ? `: ${newest.Status.Err}` : newest.Status?.Message ? ` (${newest.Status.Message})` : ''}`;
      await delay(this.startPollMs);
    }
    throw new SwarmTaskFailed(
      service.Spec.Name ?? service.ID,
      `no task running after ${Math.round(timeoutMs)} ms: ${last}`,
    );
  }

  /**
   * The service's current task: the newest running one Swarm wants running, then any
   * running one, then the newest. A dead member's task stays `running` in the manager's
   * view (its desired state shut down once the member is seen down) while Swarm runs its
   * replacement elsewhere, and the replacement is where the replica is now.
   */
  private async currentTask(target: DockerTarget, serviceId: string): Promise<SwarmTask | null> {
    const tasks = await this.tasksOf(target, serviceId);
    return (
      tasks.find((t) => t.Status?.State === 'running' && t.DesiredState === 'running') ??
      tasks.find((t) => t.Status?.State === 'running') ??
      tasks[0] ??
      null
    );
  }

  /** The service's tasks, newest first. */
  private async tasksOf(target: DockerTarget, serviceId: string): Promise<SwarmTask[]> {
    const tasks = (await this.call(target, (d) =>
      d.listTasks({ filters: { service: [serviceId] } }),
    )) as SwarmTask[];
    // The filter also matches by name prefix: keep the service's own.
    return tasks
      .filter((t) => t.ServiceID === serviceId)
      .sort((a, b) => ((a.CreatedAt ?? '') < (b.CreatedAt ?? '') ? 1 : -1));
  }

  /**
   * What the port says of a replica's service. `known` is what the caller read just now
   * (the service's tasks, the task's member address), not read again.
   */
  private async infoOf(
    target: DockerTarget,
    service: SwarmService,
    task: SwarmTask | null,
    known: { tasks?: SwarmTask[]; address?: string } = {},
  ): Promise<ContainerInfo> {
    const state = task?.Status?.State ?? '';
    const [address, tasks] = await Promise.all([
      known.address ?? (task?.NodeID ? this.memberAddress(target, task.NodeID) : null),
      known.tasks ?? this.tasksOf(target, service.ID),
    ]);
    // The newest task that ended while Swarm wanted its service running (it replaced it):
    // failed or rejected with an error, or complete (exit 0, as after the stop Swarm sends a
    // task whose health check keeps failing, when the app handles it).
    const failedTask =
      (service.Spec.Mode?.Replicated?.Replicas ?? 0) > 0
        ? tasks.find(
            (t) => t !== task && ['failed', 'rejected', 'complete'].includes(t.Status?.State ?? ''),
          )
        : undefined;
    // A task that is not running publishes nothing, whatever its last port status says.
    const ports = (state === 'running' ? (task?.Status?.PortStatus?.Ports ?? []) : [])
      .filter((p) => p.TargetPort && p.PublishedPort)
      .map((p) => ({
        containerPort: p.TargetPort!,
        hostIp: address ?? '',
        hostPort: String(p.PublishedPort),
      }));
    return {
      id: service.ID,
      name: containerNameOf(service),
      state:
        state === 'running'
          ? 'running'
          : unscheduledStates.has(state) || state === 'starting' || state === 'ready'
            ? 'created'
            : state === 'rejected'
              ? 'dead'
              : 'exited',
      labels: Object.fromEntries(
        Object.entries(service.Spec.Labels ?? {}).filter(
          ([k]) => k !== nameLabel && !ownLabels.has(k),
        ),
      ),
      published: ports[0] ? `${ports[0].hostIp}:${ports[0].hostPort}` : null,
      // Every task Swarm started beyond the first is a restart (or a reschedule).
      restarts: Math.max(0, tasks.length - 1),
      ports,
      ...(failedTask ? { lastFailure: endedTask(failedTask) } : {}),
    };
  }

  /** The ids of the members the manager sees `ready` (their agents report to it). */
  private async readyMembers(target: DockerTarget): Promise<Set<string>> {
    const nodes = (await this.call(target, (d) => d.listNodes())) as SwarmNode[];
    return new Set(nodes.filter((n) => n.Status?.State === 'ready').map((n) => n.ID));
  }

  private async memberAddress(target: DockerTarget, nodeId: string): Promise<string | null> {
    try {
      const node = (await this.call(target, (d) => d.getNode(nodeId).inspect())) as SwarmNode;
      return node.Status?.Addr ?? null;
    } catch {
      return null;
    }
  }

  private async serviceOrNull(target: DockerTarget, name: string): Promise<SwarmService | null> {
    try {
      return (await this.call(target, (d) =>
        d.getService(swarmServiceName(name)).inspect(),
      )) as SwarmService;
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return null;
      throw e;
    }
  }

  private async setReplicas(
    target: DockerTarget,
    service: SwarmService,
    replicas: number,
  ): Promise<void> {
    const spec = { ...service.Spec, Mode: { Replicated: { Replicas: replicas } } };
    await this.call(target, (d) =>
      d.getService(service.ID).update({ ...spec, version: service.Version?.Index ?? 0 }),
    );
  }

  /**
   * An image id (`sha256:…`, what the build step resolved) names the manager's copy; when
   * that image came from a registry its repo digest is used instead, so every member pulls
   * the very same image. A local-only image must already be on every member.
   */
  private async pinnedImage(
    target: DockerTarget,
    image: string,
    inspect: () => Promise<ImageInspect>,
  ): Promise<string> {
    if (!image.startsWith('sha256:')) return image;
    try {
      const info = await inspect();
      return info.RepoDigests?.[0] ?? image;
    } catch {
      return image;
    }
  }

  /**
   * The project's network as the overlay its services join, for a container pinned to the
   * manager's engine (a data service): refused when a network of that name there is not an
   * overlay, since a local bridge would hold the container where no task reaches it.
   */
  async ensureProjectNetwork(target: DockerTarget, name: string): Promise<void> {
    const driver = await this.ensureOverlay(target, name);
    if (driver !== 'overlay')
      throw new CoreError(
        'conflict',
        'project_network_not_overlay',
        `network ${name} on the Swarm manager ${target.dockerHost} is a ${driver} network, not the cluster's overlay: the project's tasks on other members could not reach a container on it; remove it (docker network rm ${name}) and try again`,
        { network: name, driver },
      );
  }

  /** The project's network, as an attachable overlay across the cluster; answers its driver. */
  private async ensureOverlay(target: DockerTarget, name: string): Promise<string> {
    const existing = (await this.call(target, (d) =>
      d.listNetworks({ filters: { name: [name] } }),
    )) as { Name: string; Driver: string }[];
    const found = existing.find((n) => n.Name === name);
    if (found) return found.Driver;
    try {
      await this.call(target, (d) =>
        d.createNetwork({ Name: name, Driver: 'overlay', Attachable: true, CheckDuplicate: true }),
      );
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw e;
    }
    return 'overlay';
  }

  /** A finished service's output (stdout and stderr), demultiplexed. */
  private async serviceLogs(target: DockerTarget, id: string): Promise<string> {
    try {
      const raw = (await this.call(target, (d) =>
        d.getService(id).logs({ stdout: true, stderr: true, follow: false }),
      )) as unknown as Buffer;
      return demux(Buffer.isBuffer(raw) ? raw : Buffer.from(String(raw)));
    } catch {
      return '';
    }
  }

  private async client(target: DockerTarget): Promise<Docker> {
    const key = createHash('sha256')
      .update(JSON.stringify([target.dockerHost, target.tls ?? null, target.ssh ?? null]))
      .digest('hex');
    let docker = this.clients.get(key);
    if (!docker) {
      const Dockerode = await loadDockerode();
      docker = new Dockerode(fromDockerTarget(target, this.options.connection));
      // Bounded: the oldest client goes when a 17th target comes.
      if (this.clients.size >= 16) this.clients.delete(this.clients.keys().next().value!);
      this.clients.set(key, docker);
    }
    return docker;
  }

  private async call<T>(target: DockerTarget, fn: (docker: Docker) => Promise<T>): Promise<T> {
    const docker = await this.client(target);
    try {
      return await fn(docker);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && connectionCodes.has(code))
        // The engine runtime's words (`docker_unavailable`): one error for both kinds of node.
        throw new Unavailable('docker', `${target.dockerHost}: ${code}`);
      if (leaderless(e))
        // Transient too: a step is retried (and a leader election here takes ~20 s) instead
        // of failing the release on the first call the cluster could not commit.
        throw new Unavailable(
          'docker',
          `${target.dockerHost}: the Swarm has no leader to answer (${String((e as Error).message).trim()})`,
        );
      throw e;
    }
  }
}

const connectionCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
]);

/**
 * A manager's answer while the Swarm has no leader it can reach (the leader was lost, one is
 * being elected): 503 "does not have a leader", or 500 with the Raft call's gRPC status
 * `DeadlineExceeded` or `Unavailable`.
 */
function leaderless(e: unknown): boolean {
  const { statusCode, message } = e as { statusCode?: number; message?: string };
  if (statusCode === 503) return true;
  return (
    statusCode === 500 &&
    /does not have a leader|rpc error: code = (DeadlineExceeded|Unavailable)\b/.test(message ?? '')
  );
}

/** A task error saying its image is on no member and cannot be pulled. */
const missingImage = (err: string) =>
  /No such image|pull access denied|manifest unknown|repository does not exist|not found: manifest/i.test(
    err,
  );

/**
 * A task whose command cannot be executed fails as `docker run` reports it (127 not
 * found, 126 not executable): the one-off failing, not the cluster.
 */
function unstartableExitCode(err: string): number | null {
  if (!/\bexec: /.test(err) && !/executable file not found|no such file or directory/.test(err))
    return null;
  return /permission denied/.test(err) ? 126 : 127;
}

/** The Engine's multiplexed log frames (8-byte header, then the payload) as text. */
function demux(raw: Buffer): string {
  let out = '';
  let at = 0;
  while (at + 8 <= raw.length && raw[at]! <= 2 && raw[at + 1] === 0) {
    const size = raw.readUInt32BE(at + 4);
    out += raw.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return at === 0 ? raw.toString('utf8') : out;
}

/** The service still carries the spread's pin (its first task has not run yet). */
function isPinned(service: SwarmService): boolean {
  const constraints =
    (service.Spec.TaskTemplate as { Placement?: { Constraints?: string[] } } | undefined)?.Placement
      ?.Constraints ?? [];
  return constraints.some((c) => c.startsWith(spreadPinPrefix));
}

/** The secrets a service's tasks are given (its sealed environment). */
function secretsOf(service: SwarmService): string[] {
  const refs =
    (service.Spec.TaskTemplate as { ContainerSpec?: { Secrets?: { SecretID?: string }[] } })
      ?.ContainerSpec?.Secrets ?? [];
  return refs.map((r) => r.SecretID).filter((id): id is string => typeof id === 'string');
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One ContainerRuntime for both kinds of node: a target of a swarm node goes to the Swarm
 * runtime, every other to the standalone engine runtime. Images and builds of a Swarm
 * target run on its manager's engine, and so does everything of a pinned Swarm target
 * (`DockerTarget.pinned`: a data service): plain containers and volumes on that engine,
 * attached to the project's attachable overlay so the apps' tasks on any member reach them.
 *
 * @example const runtime = withSwarm(new DockerRuntime(), new SwarmRuntime());
 */
export function withSwarm(engine: ContainerRuntime, swarm: SwarmRuntime): ContainerRuntime {
  const unsupported = (what: string) => () => Promise.reject(new NotOnSwarm(what));
  const onManager = (t: DockerTarget): DockerTarget => {
    const { swarm: _cluster, ...rest } = t;
    return rest;
  };
  /** Swarm services: a cluster's target, unless pinned to the manager's engine. */
  const tasks = (t: DockerTarget): boolean => t.swarm === true && t.pinned !== true;
  /** The engine a call that is not Swarm's goes to (the manager's, for a pinned cluster). */
  const one = (t: DockerTarget): DockerTarget => (t.swarm ? onManager(t) : t);
  /**
   * A pinned container on a cluster joins the project network only as the overlay the
   * services join too: created as that first, else the engine would make a local bridge of
   * the same name, which no task on another member reaches. A drill's own internal network
   * stays a bridge on the manager (only the drill's containers, all there, join it).
   */
  const overlayFirst = async (t: DockerTarget, spec: ContainerSpec): Promise<void> => {
    if (t.swarm && spec.network && !spec.internalNetwork && !spec.noNetwork && !spec.hostNetwork)
      await swarm.ensureProjectNetwork(onManager(t), spec.network);
  };
  const runtime: ContainerRuntime = {
    ping: (t) => (tasks(t) ? swarm.ping(t) : engine.ping(one(t))),
    resolveImage: (t, image, o) => engine.resolveImage(onManager(t), image, o),
    start: async (t, spec) => {
      if (tasks(t)) return swarm.start(t, spec);
      await overlayFirst(t, spec);
      return engine.start(one(t), spec);
    },
    runOnce: async (t, spec, ms, onLine) => {
      if (tasks(t)) return swarm.runOnce(t, spec, ms, onLine);
      await overlayFirst(t, spec);
      return engine.runOnce(one(t), spec, ms, onLine);
    },
    inspect: (t, name) => (tasks(t) ? swarm.inspect(t, name) : engine.inspect(one(t), name)),
    list: (t, labels) => (tasks(t) ? swarm.list(t, labels) : engine.list(one(t), labels)),
    stop: (t, name, grace) =>
      tasks(t) ? swarm.stop(t, name, grace) : engine.stop(one(t), name, grace),
    remove: (t, name) => (tasks(t) ? swarm.remove(t, name) : engine.remove(one(t), name)),
    clusterMembers: (t) =>
      t.swarm ? swarm.members(t) : Promise.reject(new NotOnSwarm('listing members of an engine')),
    setMemberAvailability: (t, member, availability) =>
      t.swarm
        ? swarm.setAvailability(t, member, availability)
        : Promise.reject(new NotOnSwarm('draining a member of an engine')),
  };
  // A Swarm schedules by its own accounting: the placement asks no engine size of it.
  if (engine.capacity)
    runtime.capacity = (t) =>
      t.swarm ? unsupported('an engine size')() : engine.capacity!.call(engine, t);
  if (engine.build) runtime.build = (t, spec, onLine) => engine.build!(onManager(t), spec, onLine);
  if (engine.localImage) runtime.localImage = (t, image) => engine.localImage!(onManager(t), image);
  // A Swarm service keeps the name it was created with: a warm reuse starts fresh there.
  if (engine.rename)
    runtime.rename = (t, name, newName) =>
      tasks(t) ? unsupported('renaming a service')() : engine.rename!(one(t), name, newName);
  // Backups, restores and drills are pinned (they read the data volume on the manager);
  // a one-off of a Swarm service's own is not streamed yet.
  if (engine.runPiped)
    runtime.runPiped = async (t, spec, o) => {
      if (tasks(t)) return unsupported('a streamed one-off of a Swarm service')();
      await overlayFirst(t, spec);
      return engine.runPiped!(one(t), spec, o);
    };
  if (engine.exec)
    runtime.exec = (t, name, cmd, ms) =>
      tasks(t) ? unsupported('exec in a task')() : engine.exec!(one(t), name, cmd, ms);
  if (engine.removeVolume)
    runtime.removeVolume = (t, name) =>
      tasks(t) ? unsupported('volumes of Swarm services')() : engine.removeVolume!(one(t), name);
  // A replica's logs are its service's: every task's, wherever Swarm ran it.
  if (engine.logs)
    runtime.logs = (t, name, o) =>
      tasks(t) ? swarm.logs(t, name, o) : engine.logs!(one(t), name, o);
  if (engine.followLogs)
    runtime.followLogs = (t, name, onLine, signal) =>
      tasks(t)
        ? swarm.followLogs(t, name, onLine, signal)
        : engine.followLogs!(one(t), name, onLine, signal);
  // Measured per container: a task's usage would be read on its member, not the manager.
  if (engine.usage)
    runtime.usage = (t, name) =>
      tasks(t) ? unsupported('usage of a task')() : engine.usage!(one(t), name);
  // Images live on the manager's own engine (builds, moves and pruning act there).
  if (engine.moveImage)
    runtime.moveImage = (from, to, image, o) =>
      engine.moveImage!(onManager(from), onManager(to), image, o);
  if (engine.listImages)
    runtime.listImages = (t, labels) => engine.listImages!(onManager(t), labels);
  if (engine.deleteImage)
    runtime.deleteImage = (t, name) => engine.deleteImage!(onManager(t), name);
  if (engine.pruneBuildCache)
    runtime.pruneBuildCache = (t, keep) => engine.pruneBuildCache!(onManager(t), keep);
  // A project's network on a Swarm is an overlay the manager removes like any network.
  if (engine.removeNetwork)
    runtime.removeNetwork = (t, name) => engine.removeNetwork!(onManager(t), name);
  return runtime;
}
