/**
 * An in-memory ContainerRuntime for fast tests of the deploy engine. It passes the same
 * contract suite as DockerRuntime, and adds knobs to script what images do and to inject
 * faults.
 *
 * @example
 * const runtime = MemoryRuntime.withTestImages();        // the selfdevop-test/* images
 * runtime.addImage('acme/api:1', { oneOffs: { '/bin/migrate': { exitCode: 3, lines: ['boom'] } } });
 * runtime.failNext('start', new Unavailable('docker', 'unix:///var/run/docker.sock: down'));
 * runtime.setReachable('tcp://10.0.0.9:2376', false);   // that node's engine does not answer
 * const reply = runtime.httpGet(info.published!, '/health'); // what a probe would see
 */
import { Unavailable } from '../../core/errors.ts';
import type {
  Clock,
  ContainerInfo,
  ContainerLogLine,
  ContainerLogOptions,
  ContainerRuntime,
  ContainerSpec,
  DockerTarget,
  ImageSummary,
  MovedImage,
  OneOffResult,
  BuildResult,
  BuildSpec,
  PublishedPort,
  ResolveImageOptions,
} from '../../core/ports.ts';
import { SystemClock } from '../clock/system.ts';
import { ContainerNotFound, ImageNotFound } from './errors.ts';
import { OutputTail } from './output-tail.ts';

/** What a one-off (runOnce) of an image does. */
export interface OneOffPlan {
  /** Exit code when it finishes; default 0. */
  exitCode?: number;
  /** Output lines, delivered to onLine in order; default none. */
  lines?: string[];
  /** How long it runs on the runtime's clock; longer than the timeout means it times out. Default 0. */
  durationMs?: number;
  /** Never finishes: always ends by timeout. */
  hang?: boolean;
}

/** What the next builds do (`setBuild`); the default builds a healthy app in no time. */
export interface BuildPlan {
  /** Output lines, delivered to onLine in order; default one line naming the tag. */
  lines?: string[];
  /** The build fails with this (the failing instruction, as an engine names it). */
  error?: string;
  /** Never finishes: ends by its timeout. */
  hang?: boolean;
  /**
   * Runs until its signal aborts (a long build on a real engine), whatever the clock says;
   * `building` resolves once it started.
   */
  untilAborted?: boolean;
  /** How the built image behaves; default a healthy web app. */
  image?: MemoryImage;
}

/** One HTTP answer of the fake app. */
export interface FakeResponse {
  status: number;
  body: string;
}

/** How an image behaves. Every field is optional; the defaults make a healthy web app. */
export interface MemoryImage {
  /** resolveImage's answer; default a stable fake `sha256:` derived from the name. */
  digest?: string;
  /** The version in the body of `/`; default the env APP_VERSION, else the tag. */
  version?: string;
  /**
   * Whether `healthPath` answers 200: true (default), false (404 forever), or
   * `{ afterMs }` (404 until that long after start, on the runtime's clock).
   */
  healthy?: boolean | { afterMs: number };
  /** The health path the fake app serves; default `/health`. */
  healthPath?: string;
  /** The container exits with this code right after start (a crashing app). */
  exitOnStart?: number;
  /** Lines the container logs when it starts (seen by followLogs). */
  startLines?: string[];
  /** runOnce plans by command, the command's words joined by one space (`/bin/migrate`). */
  oneOffs?: Record<string, OneOffPlan>;
  /** runOnce plan for any command not in oneOffs (and for no command); default exit 0, no output. */
  defaultOneOff?: OneOffPlan;
  /** exec plans by command (words joined by one space); default exit 0, no output. */
  execs?: Record<string, OneOffPlan>;
  /** Full control over HTTP answers; return undefined to fall back to the default app. */
  respond?: (path: string, container: MemoryContainer) => FakeResponse | undefined;
}

/** A container as the fake keeps it; `containers()` and `container()` return these for assertions. */
export interface MemoryContainer {
  id: string;
  dockerHost: string;
  spec: ContainerSpec;
  state: ContainerInfo['state'];
  exitCode: number | null;
  published: string | null;
  /** On the runtime's clock, ms since epoch; null until started. */
  startedAt: number | null;
  /** Overrides the image's health for this container (setHealthy). */
  healthOverride: boolean | null;
  /** `time` as `ContainerLogLine.time` (9 fraction digits), on the runtime's clock. */
  logs: { line: string; stream: 'stdout' | 'stderr'; time: string }[];
}

/** Every method of the port, for failNext and the call log. */
export type RuntimeMethod =
  | 'ping'
  | 'capacity'
  | 'build'
  | 'localImage'
  | 'moveImage'
  | 'listImages'
  | 'deleteImage'
  | 'pruneBuildCache'
  | 'resolveImage'
  | 'start'
  | 'runOnce'
  | 'exec'
  | 'inspect'
  | 'list'
  | 'stop'
  | 'remove'
  | 'rename'
  | 'removeVolume'
  | 'removeNetwork'
  | 'followLogs'
  | 'logs';

/** One recorded call, for tests that assert what the engine asked for. */
export interface RuntimeCall {
  method: RuntimeMethod;
  dockerHost: string;
  /** The container name, image or id the call was about (labels JSON for list). */
  subject: string;
}

export interface MemoryRuntimeOptions {
  /** Drives health delays and one-off durations; pass a ManualClock to make them instant. */
  clock?: Pick<Clock, 'now' | 'sleep'>;
  /** First published host port; they count up from here. Default 40001. */
  firstPort?: number;
}

/** A node by its dockerHost, or the target itself. */
export type NodeRef = string | DockerTarget;

type StoredImage = MemoryImage & { name: string; digest: string };

type Follower = {
  nameOrId: string;
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  end: () => void;
};

/** A hand-written fake Docker: images, containers and one-offs scripted by knobs. */
export class MemoryRuntime implements ContainerRuntime {
  /** Calls in order, for assertions. */
  readonly calls: RuntimeCall[] = [];
  /** What each resolveImage was asked (credential, refresh), for tests of the build step. */
  readonly resolveOptions: Array<ResolveImageOptions & { image: string }> = [];
  private readonly images = new Map<string, StoredImage>();
  /** Built images live on the nodes that built them or had them moved there (dockerHosts). */
  private readonly builtOn = new Map<string, Set<string>>();
  /** Labels and creation time of built images, as the engine lists them. */
  private readonly builtMeta = new Map<
    string,
    { labels: Record<string, string>; createdAt: string }
  >();
  /** Build-cache prunes asked for, in order. */
  readonly cachePrunes: { dockerHost: string; keepBytes: number }[] = [];
  private readonly nodes = new Map<string, Map<string, MemoryContainer>>();
  private readonly unreachable = new Map<string, string>();
  private readonly faults = new Map<RuntimeMethod, Error[]>();
  private readonly followers = new Set<Follower>();
  private readonly clock: Pick<Clock, 'now' | 'sleep'>;
  private nextPort: number;
  private nextId = 0;
  private buildPlan: BuildPlan = {};
  /** Builds in progress now (`untilAborted` ones, waiting for their signal). */
  buildsRunning = 0;
  /** Builds asked for, in order (without their context), with the context's size in bytes. */
  readonly builds: (Omit<BuildSpec, 'context' | 'signal'> & { contextBytes: number })[] = [];

  constructor(options: MemoryRuntimeOptions = {}) {
    this.clock = options.clock ?? new SystemClock();
    this.nextPort = options.firstPort ?? 40001;
  }

  /** A runtime that knows the selfdevop-test/* images and behaves as they do (test-images/README.md). */
  static withTestImages(options: MemoryRuntimeOptions = {}): MemoryRuntime {
    const runtime = new MemoryRuntime(options);
    const migrate = (exitCode: number, last: string): Record<string, OneOffPlan> => ({
      '/bin/migrate': { exitCode, lines: ['migrate: starting', 'applying 001_init', last] },
      '/bin/migrate-hang': { hang: true, lines: ['migrate: starting, this one never finishes'] },
    });
    const ok = migrate(0, 'migrate: done');
    // As Docker answers a command the image does not have.
    const notFound: OneOffPlan = {
      exitCode: 127,
      lines: ['exec: no such file or directory in the image'],
    };
    const listening = (version: string, mode = 'normal') => [
      `app ${version} listening on :8080 (mode ${mode})`,
    ];
    for (const version of ['v1', 'v2', 'migrate-ok']) {
      runtime.addImage(`selfdevop-test/app:${version}`, {
        startLines: listening(version),
        oneOffs: ok,
        defaultOneOff: notFound,
      });
    }
    runtime.addImage('selfdevop-test/app:unhealthy', {
      healthy: false,
      startLines: listening('unhealthy', 'unhealthy'),
      oneOffs: ok,
      defaultOneOff: notFound,
    });
    runtime.addImage('selfdevop-test/app:slow', {
      healthy: { afterMs: 3000 },
      startLines: listening('slow'),
      oneOffs: ok,
      defaultOneOff: notFound,
    });
    runtime.addImage('selfdevop-test/app:crash', {
      exitOnStart: 1,
      startLines: ['app crash: crashing on purpose'],
      oneOffs: ok,
      defaultOneOff: notFound,
    });
    runtime.addImage('selfdevop-test/app:migrate-fail', {
      startLines: listening('migrate-fail'),
      oneOffs: migrate(3, 'error: 002_users failed: relation "users" already exists'),
      defaultOneOff: notFound,
    });
    for (const version of ['v1', 'v2']) {
      runtime.addImage(`selfdevop-test/ws:${version}`, {
        startLines: [`ws ${version} listening on :8080`],
      });
    }
    return runtime;
  }

  // ---------------------------------------------------------------- knobs

  /** Makes an image available on every node (as if pullable); replaces an earlier one of that name. */
  addImage(name: string, image: MemoryImage = {}): this {
    this.images.set(name, { ...image, name, digest: image.digest ?? fakeDigest(name) });
    return this;
  }

  /** Takes an image away, so resolveImage and start fail with ImageNotFound. */
  removeImage(name: string): this {
    this.images.delete(name);
    return this;
  }

  /** An unreachable engine answers every call with Unavailable('docker', '<host>: <reason>'). */
  setReachable(node: NodeRef, reachable: boolean, reason = 'connect ECONNREFUSED'): this {
    const dockerHost = hostOf(node);
    if (reachable) this.unreachable.delete(dockerHost);
    else this.unreachable.set(dockerHost, reason);
    return this;
  }

  /** The next call of `method` (any target) throws `error`; queued calls fail in order. */
  failNext(method: RuntimeMethod, error: Error, times = 1): this {
    const queue = this.faults.get(method) ?? [];
    for (let i = 0; i < times; i++) queue.push(error);
    this.faults.set(method, queue);
    return this;
  }

  /** Overrides health for one container: a serving app that starts failing its probes. */
  setHealthy(node: NodeRef, nameOrId: string, healthy: boolean): this {
    this.mustFind(hostOf(node), nameOrId).healthOverride = healthy;
    return this;
  }

  /** A running container dies (state exited, port unpublished), as if its process crashed. */
  crash(node: NodeRef, nameOrId: string, exitCode = 1): this {
    const c = this.mustFind(hostOf(node), nameOrId);
    this.exit(c, exitCode);
    return this;
  }

  /** Appends a log line to a container (at `time`, default now) and hands it to its followers. */
  emitLog(
    node: NodeRef,
    nameOrId: string,
    line: string,
    stream: 'stdout' | 'stderr' = 'stdout',
    time?: string,
  ): this {
    const dockerHost = hostOf(node);
    const c = this.mustFind(dockerHost, nameOrId);
    c.logs.push({ line, stream, time: time ?? this.logTime() });
    for (const f of this.followers)
      if (this.find(dockerHost, f.nameOrId) === c) f.onLine(line, stream);
    return this;
  }

  /** All containers on a node (or on every node), oldest first. */
  containers(node?: NodeRef): MemoryContainer[] {
    const nodes = node ? [this.nodes.get(hostOf(node)) ?? new Map()] : [...this.nodes.values()];
    return nodes.flatMap((n) => [...n.values()]);
  }

  /** One container by name or id, or undefined. */
  container(node: NodeRef, nameOrId: string): MemoryContainer | undefined {
    return this.find(hostOf(node), nameOrId);
  }

  /**
   * What an HTTP GET to a published address would answer, or null when nothing listens
   * there (connection refused). The default app serves `/` ("selfdevop-test app <version>"),
   * `/version`, the health path and `/env/<NAME>` like selfdevop-test/app does.
   */
  httpGet(published: string, path: string): FakeResponse | null {
    const c = this.containers().find((x) => x.published === published && x.state === 'running');
    if (!c) return null;
    const image = this.images.get(c.spec.image) ?? this.imageByDigest(c.spec.image);
    const custom = image?.respond?.(path, c);
    if (custom) return custom;
    const version = c.spec.env.APP_VERSION ?? image?.version ?? tagOf(image?.name ?? c.spec.image);
    if (path === (image?.healthPath ?? '/health')) {
      return this.isHealthy(c, image)
        ? { status: 200, body: 'ok\n' }
        : { status: 404, body: '404 Not Found\n' };
    }
    if (path === '/') return { status: 200, body: `selfdevop-test app ${version}\n` };
    if (path === '/version') return { status: 200, body: `${version}\n` };
    const env = /^\/env\/([A-Za-z_][A-Za-z0-9_]*)$/.exec(path)?.[1];
    if (env !== undefined) {
      const value = env === 'APP_VERSION' ? version : c.spec.env[env];
      if (value !== undefined) return { status: 200, body: value };
    }
    return { status: 404, body: '404 Not Found\n' };
  }

  // ---------------------------------------------------------------- the port

  async ping(target: DockerTarget): Promise<void> {
    this.enter('ping', target, target.dockerHost);
  }

  /** Engine sizes per docker host, as `docker info` would report them (placement tests). */
  readonly capacities = new Map<string, { cpus: number; memoryMb: number }>();

  async capacity(target: DockerTarget): Promise<{ cpus: number; memoryMb: number }> {
    this.enter('capacity', target, target.dockerHost);
    return this.capacities.get(target.dockerHost) ?? { cpus: 64, memoryMb: 262_144 };
  }

  /** Scripts what the following builds do. */
  setBuild(plan: BuildPlan): this {
    this.buildPlan = plan;
    return this;
  }

  async build(
    target: DockerTarget,
    spec: BuildSpec,
    onLine: (line: string) => void | Promise<void>,
  ): Promise<BuildResult> {
    this.enter('build', target, spec.tag);
    let contextBytes = 0;
    for await (const chunk of spec.context) contextBytes += chunk.byteLength;
    const { context: _context, signal: _signal, ...rest } = spec;
    this.builds.push({ ...rest, contextBytes });
    const plan = this.buildPlan;
    for (const line of plan.lines ?? [`[1/1] building ${spec.tag}`]) await onLine(line);
    const cancelled = { imageId: null, error: 'the build was cancelled', timedOut: false };
    if (spec.signal?.aborted) return cancelled;
    if (plan.untilAborted) {
      if (!spec.signal) throw new Error('a build that runs until aborted needs a signal');
      this.buildsRunning++;
      try {
        await new Promise<void>((resolve) =>
          spec.signal!.addEventListener('abort', () => resolve(), { once: true }),
        );
      } finally {
        this.buildsRunning--;
      }
      return cancelled;
    }
    if (plan.hang) {
      try {
        await this.clock.sleep(spec.timeoutMs, spec.signal);
      } catch (e) {
        if (spec.signal?.aborted) return cancelled;
        throw e;
      }
      return { imageId: null, error: 'the build timed out', timedOut: true };
    }
    if (plan.error !== undefined) return { imageId: null, error: plan.error, timedOut: false };
    this.addImage(spec.tag, plan.image ?? {});
    this.builtOn.set(spec.tag, new Set([...(this.builtOn.get(spec.tag) ?? []), target.dockerHost]));
    this.builtMeta.set(spec.tag, {
      labels: { ...spec.labels },
      createdAt: this.clock.now().toISOString(),
    });
    return { imageId: this.images.get(spec.tag)!.digest, error: null, timedOut: false };
  }

  /** Takes a built image off one node (as `docker rmi` there); other nodes keep theirs. */
  dropImage(node: NodeRef, name: string): this {
    this.builtOn.get(name)?.delete(hostOf(node));
    return this;
  }

  async localImage(target: DockerTarget, image: string): Promise<string | null> {
    this.enter('localImage', target, image);
    return this.imageOn(target.dockerHost, image)?.digest ?? null;
  }

  /** Moves that ran, in order, with the size they report (1 MiB each). */
  readonly moves: { from: string; to: string; image: string }[] = [];
  /** Set: moves run until their signal aborts (a large image on a slow link). */
  holdMoves = false;
  /** Moves in progress now (held ones, waiting for their signal). */
  movesRunning = 0;

  async moveImage(
    from: DockerTarget,
    to: DockerTarget,
    image: string,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<MovedImage> {
    this.enter('moveImage', from, image);
    const reason = this.unreachable.get(to.dockerHost);
    if (reason !== undefined) throw new Unavailable('docker', `${to.dockerHost}: ${reason}`);
    if (options.signal?.aborted) throw new Error(`moving image ${image} was cancelled`);
    if (this.holdMoves) {
      const signal = options.signal;
      if (!signal) throw new Error('a held move needs a signal');
      this.movesRunning++;
      try {
        await new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => resolve(), { once: true }),
        );
      } finally {
        this.movesRunning--;
      }
      throw new Error(`moving image ${image} was cancelled`);
    }
    const found = this.imageOn(from.dockerHost, image);
    if (!found) throw new Error(`image ${image} is not on ${from.dockerHost}: nothing to move`);
    this.builtOn.get(found.name)?.add(to.dockerHost);
    this.moves.push({ from: from.dockerHost, to: to.dockerHost, image });
    return { imageId: found.digest, bytes: 1024 * 1024 };
  }

  async listImages(target: DockerTarget, labels: Record<string, string>): Promise<ImageSummary[]> {
    this.enter('listImages', target, JSON.stringify(labels));
    const out: ImageSummary[] = [];
    for (const [name, on] of this.builtOn) {
      const meta = this.builtMeta.get(name);
      const image = this.images.get(name);
      if (!on.has(target.dockerHost) || !meta || !image) continue;
      if (!Object.entries(labels).every(([k, v]) => meta.labels[k] === v)) continue;
      out.push({
        id: image.digest,
        tags: [name],
        labels: { ...meta.labels },
        createdAt: meta.createdAt,
        sizeBytes: 1024 * 1024,
      });
    }
    return out;
  }

  async deleteImage(
    target: DockerTarget,
    nameOrId: string,
  ): Promise<'removed' | 'in_use' | 'missing'> {
    this.enter('deleteImage', target, nameOrId);
    const found = this.imageOn(target.dockerHost, nameOrId);
    if (!found || !this.builtOn.has(found.name)) return 'missing';
    for (const c of this.nodes.get(target.dockerHost)?.values() ?? [])
      if (c.spec.image === found.name || c.spec.image === found.digest) return 'in_use';
    this.builtOn.get(found.name)!.delete(target.dockerHost);
    return 'removed';
  }

  async pruneBuildCache(
    target: DockerTarget,
    keepBytes: number,
  ): Promise<{ reclaimedBytes: number }> {
    this.enter('pruneBuildCache', target, String(keepBytes));
    this.cachePrunes.push({ dockerHost: target.dockerHost, keepBytes });
    return { reclaimedBytes: 0 };
  }

  /** An image as node `dockerHost` has it: added ones everywhere, built ones where built or moved. */
  private imageOn(dockerHost: string, image: string): StoredImage | undefined {
    const found = this.images.get(image) ?? this.imageByDigest(image);
    if (!found) return undefined;
    const on = this.builtOn.get(found.name);
    return !on || on.has(dockerHost) ? found : undefined;
  }

  async resolveImage(
    target: DockerTarget,
    image: string,
    options: ResolveImageOptions = {},
  ): Promise<string> {
    this.enter('resolveImage', target, image);
    this.resolveOptions.push({ image, ...options });
    return this.mustImage(image).digest;
  }

  async start(target: DockerTarget, spec: ContainerSpec): Promise<ContainerInfo> {
    this.enter('start', target, spec.name);
    const existing = this.find(target.dockerHost, spec.name);
    if (existing) {
      if (existing.state === 'created' || existing.state === 'exited') this.run(existing);
      return toInfo(existing);
    }
    this.mustImage(spec.image);
    // A built image is on its own nodes only: elsewhere Docker would try a pull, and fail.
    if (!this.imageOn(target.dockerHost, spec.image))
      throw new ImageNotFound(spec.image, `it was built on another node than ${target.dockerHost}`);
    const c: MemoryContainer = {
      id: this.newId(),
      dockerHost: target.dockerHost,
      spec: structuredClone(spec),
      state: 'created',
      exitCode: null,
      published: null,
      startedAt: null,
      healthOverride: null,
      logs: [],
    };
    this.node(target.dockerHost).set(c.id, c);
    this.run(c);
    return toInfo(c);
  }

  async runOnce(
    target: DockerTarget,
    spec: ContainerSpec,
    timeoutMs: number,
    onLine?: (line: string) => void | Promise<void>,
  ): Promise<OneOffResult> {
    this.enter('runOnce', target, spec.name);
    const image = this.mustImage(spec.image);
    const plan = image.oneOffs?.[(spec.cmd ?? []).join(' ')] ?? image.defaultOneOff ?? {};
    // Visible while it runs, gone afterwards, as with Docker.
    const c: MemoryContainer = {
      id: this.newId(),
      dockerHost: target.dockerHost,
      spec: structuredClone(spec),
      state: 'running',
      exitCode: null,
      published: null,
      startedAt: this.clock.now().getTime(),
      healthOverride: null,
      logs: [],
    };
    this.node(target.dockerHost).set(c.id, c);
    const tail = new OutputTail();
    try {
      for (const line of plan.lines ?? []) {
        tail.push(line);
        c.logs.push({ line, stream: 'stdout', time: this.logTime() });
        try {
          await onLine?.(line);
        } catch {
          // Same as Docker: a failing log sink does not fail the one-off.
        }
      }
      const duration = plan.hang ? Infinity : (plan.durationMs ?? 0);
      if (duration > timeoutMs) {
        await this.clock.sleep(timeoutMs);
        return { exitCode: null, timedOut: true, output: tail.toString() };
      }
      if (duration > 0) await this.clock.sleep(duration);
      return { exitCode: plan.exitCode ?? 0, timedOut: false, output: tail.toString() };
    } finally {
      this.node(target.dockerHost).delete(c.id);
    }
  }

  async exec(
    target: DockerTarget,
    nameOrId: string,
    cmd: string[],
    timeoutMs: number,
  ): Promise<OneOffResult> {
    this.enter('exec', target, nameOrId);
    const c = this.find(target.dockerHost, nameOrId);
    if (!c || c.state !== 'running')
      throw new Error(`container ${nameOrId} is not running: cannot exec in it`);
    const plan = this.mustImage(c.spec.image).execs?.[cmd.join(' ')] ?? {};
    const duration = plan.hang ? Infinity : (plan.durationMs ?? 0);
    const output = (plan.lines ?? []).join('\n');
    if (duration > timeoutMs) {
      await this.clock.sleep(timeoutMs);
      return { exitCode: null, timedOut: true, output };
    }
    if (duration > 0) await this.clock.sleep(duration);
    return { exitCode: plan.exitCode ?? 0, timedOut: false, output };
  }

  async inspect(target: DockerTarget, nameOrId: string): Promise<ContainerInfo | null> {
    this.enter('inspect', target, nameOrId);
    const c = this.find(target.dockerHost, nameOrId);
    return c ? toInfo(c) : null;
  }

  async list(target: DockerTarget, labels: Record<string, string>): Promise<ContainerInfo[]> {
    this.enter('list', target, JSON.stringify(labels));
    return this.containers(target.dockerHost)
      .filter((c) => Object.entries(labels).every(([k, v]) => c.spec.labels[k] === v))
      .map(toInfo)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async stop(target: DockerTarget, nameOrId: string, _graceSeconds: number): Promise<void> {
    this.enter('stop', target, nameOrId);
    const c = this.find(target.dockerHost, nameOrId);
    if (c && (c.state === 'running' || c.state === 'restarting' || c.state === 'paused'))
      this.exit(c, 0);
  }

  async remove(target: DockerTarget, nameOrId: string): Promise<void> {
    this.enter('remove', target, nameOrId);
    const c = this.find(target.dockerHost, nameOrId);
    if (!c) return;
    this.exit(c, c.exitCode ?? 137);
    this.node(target.dockerHost).delete(c.id);
  }

  async rename(target: DockerTarget, nameOrId: string, newName: string): Promise<void> {
    this.enter('rename', target, `${nameOrId} ${newName}`);
    const c = this.mustFind(target.dockerHost, nameOrId);
    if (this.find(target.dockerHost, newName))
      throw new Error(`Conflict. The container name "/${newName}" is already in use`);
    c.spec = { ...c.spec, name: newName };
  }

  /** Volumes are not modelled here; removing one is a no-op, as for a missing one. */
  async removeVolume(target: DockerTarget, name: string): Promise<void> {
    this.enter('removeVolume', target, name);
  }

  /** Networks are not modelled here either; removing one is a no-op. */
  async removeNetwork(target: DockerTarget, name: string): Promise<void> {
    this.enter('removeNetwork', target, name);
  }

  async followLogs(
    target: DockerTarget,
    nameOrId: string,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.enter('followLogs', target, nameOrId);
    if (signal.aborted) return;
    const c = this.find(target.dockerHost, nameOrId);
    if (!c) throw new ContainerNotFound(nameOrId);
    for (const { line, stream } of [...c.logs]) onLine(line, stream);
    if (c.state !== 'running' || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const follower: Follower = {
        nameOrId: c.id,
        onLine,
        end: () => {
          this.followers.delete(follower);
          signal.removeEventListener('abort', follower.end);
          resolve();
        },
      };
      this.followers.add(follower);
      signal.addEventListener('abort', follower.end, { once: true });
    });
  }

  async *logs(
    target: DockerTarget,
    nameOrId: string,
    options: ContainerLogOptions,
  ): AsyncGenerator<ContainerLogLine> {
    this.enter('logs', target, nameOrId);
    const c = this.find(target.dockerHost, nameOrId);
    if (!c) throw new ContainerNotFound(nameOrId);
    const { since, until, tail, follow, filter, signal } = options;
    const inRange = (time: string) =>
      (!since || time >= since) && (follow || !until || time <= until);
    const kept = (l: MemoryContainer['logs'][number]) => !filter || filter.test(l.line);
    let stored = c.logs.filter((l) => inRange(l.time) && kept(l));
    if (tail !== undefined) stored = tail === 0 ? [] : stored.slice(-tail);
    const toLine = (l: MemoryContainer['logs'][number]): ContainerLogLine => ({
      time: l.time,
      stream: l.stream,
      text: l.line,
    });
    let seen = c.logs.length;
    for (const l of stored) {
      if (signal.aborted) return;
      yield toLine(l);
    }
    if (!follow) return;
    // Following: new lines as they are appended, until the signal or the container's end.
    while (!signal.aborted && c.state === 'running') {
      while (seen < c.logs.length && !signal.aborted) {
        const l = c.logs[seen++]!;
        if (kept(l)) yield toLine(l);
      }
      if (c.state !== 'running') break;
      await new Promise<void>((resolve) => {
        const follower: Follower = {
          nameOrId: c.id,
          onLine: () => end(),
          end: () => end(),
        };
        const end = () => {
          this.followers.delete(follower);
          signal.removeEventListener('abort', end);
          resolve();
        };
        this.followers.add(follower);
        signal.addEventListener('abort', end, { once: true });
      });
    }
    while (seen < c.logs.length && !signal.aborted) {
      const l = c.logs[seen++]!;
      if (kept(l)) yield toLine(l);
    }
  }

  // ---------------------------------------------------------------- internals

  private logSeq = 0;

  /** The runtime's clock as a log time; a counter in the sub-millisecond digits keeps order. */
  private logTime(): string {
    const iso = this.clock.now().toISOString();
    return `${iso.slice(0, 23)}${String(this.logSeq++ % 1_000_000).padStart(6, '0')}Z`;
  }

  private enter(method: RuntimeMethod, target: DockerTarget, subject: string): void {
    this.calls.push({ method, dockerHost: target.dockerHost, subject });
    const fault = this.faults.get(method)?.shift();
    if (fault) throw fault;
    const reason = this.unreachable.get(target.dockerHost);
    if (reason !== undefined) throw new Unavailable('docker', `${target.dockerHost}: ${reason}`);
  }

  private node(dockerHost: string): Map<string, MemoryContainer> {
    let node = this.nodes.get(dockerHost);
    if (!node) {
      node = new Map();
      this.nodes.set(dockerHost, node);
    }
    return node;
  }

  private find(dockerHost: string, nameOrId: string): MemoryContainer | undefined {
    for (const c of this.nodes.get(dockerHost)?.values() ?? []) {
      if (c.id === nameOrId || c.spec.name === nameOrId) return c;
    }
    return undefined;
  }

  private mustFind(dockerHost: string, nameOrId: string): MemoryContainer {
    const c = this.find(dockerHost, nameOrId);
    if (!c) throw new ContainerNotFound(nameOrId);
    return c;
  }

  private imageByDigest(digest: string): StoredImage | undefined {
    for (const image of this.images.values()) if (image.digest === digest) return image;
    return undefined;
  }

  private mustImage(name: string): StoredImage {
    const image = this.images.get(name) ?? this.imageByDigest(name);
    if (!image) throw new ImageNotFound(name, 'no such image in the MemoryRuntime (addImage it)');
    return image;
  }

  private run(c: MemoryContainer): void {
    const image = this.mustImage(c.spec.image);
    c.startedAt = this.clock.now().getTime();
    c.exitCode = null;
    for (const line of image.startLines ?? [])
      c.logs.push({
        line,
        stream: image.exitOnStart ? 'stderr' : 'stdout',
        time: this.logTime(),
      });
    if (image.exitOnStart !== undefined) {
      this.exit(c, image.exitOnStart);
      return;
    }
    c.state = 'running';
    if (c.spec.containerPort)
      c.published ??= `${c.spec.publishIp ?? '127.0.0.1'}:${this.nextPort++}`;
  }

  private exit(c: MemoryContainer, exitCode: number): void {
    c.state = 'exited';
    c.exitCode = exitCode;
    c.published = null;
    for (const f of [...this.followers]) if (f.nameOrId === c.id) f.end();
  }

  private isHealthy(c: MemoryContainer, image: MemoryImage | undefined): boolean {
    if (c.healthOverride !== null) return c.healthOverride;
    const healthy = image?.healthy ?? true;
    if (typeof healthy === 'boolean') return healthy;
    return c.startedAt !== null && this.clock.now().getTime() - c.startedAt >= healthy.afterMs;
  }

  private newId(): string {
    return (++this.nextId).toString(16).padStart(64, '0');
  }
}

function hostOf(node: NodeRef): string {
  return typeof node === 'string' ? node : node.dockerHost;
}

function toInfo(c: MemoryContainer): ContainerInfo {
  return {
    id: c.id,
    name: c.spec.name,
    state: c.state,
    labels: { ...c.spec.labels },
    published: c.published,
    ports: portsOf(c),
  };
}

/** The binding as an engine reports it: on the spec's publishIp, at the port handed out. */
function portsOf(c: MemoryContainer): PublishedPort[] {
  if (!c.published || c.spec.containerPort === undefined) return [];
  const i = c.published.lastIndexOf(':');
  return [
    {
      containerPort: c.spec.containerPort,
      hostIp: c.published.slice(0, i).replace(/^\[(.*)\]$/, '$1'),
      hostPort: c.published.slice(i + 1),
    },
  ];
}

function tagOf(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) return image.slice(at + 1);
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? image.slice(colon + 1) : 'latest';
}

/** A stable, fake content digest: 64 hex chars from a simple hash of the name (no crypto in tests' way). */
function fakeDigest(name: string): string {
  let hex = '';
  let h = 0x811c9dc5;
  for (let round = 0; hex.length < 64; round++) {
    for (const ch of `${round}:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
    hex += h.toString(16).padStart(8, '0');
  }
  return `sha256:${hex.slice(0, 64)}`;
}
