/**
 * ContainerRuntime on a real Docker Engine, through dockerode. The only file that imports
 * dockerode. One client per target (dockerHost + credentials) is kept, a bounded number of
 * them; an ssh:// client keeps one SSH connection to its node while it is in use.
 */
import type Docker from 'dockerode';
import type {
  ContainerCreateOptions,
  ContainerInspectInfo,
  ContainerInfo as DockerListItem,
} from 'dockerode';
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { PassThrough, Transform, Writable, type Duplex } from 'node:stream';
import { InvalidInput, isCoreError, Unavailable } from '../../core/errors.ts';
import type {
  BuildResult,
  BuildSpec,
  ContainerInfo,
  ContainerLogLine,
  ContainerLogOptions,
  ContainerRuntime,
  ContainerSpec,
  ContainerUsage,
  DockerTarget,
  ImageSummary,
  Logger,
  MovedImage,
  OneOffResult,
  PipedRun,
  PublishedPort,
  ResolveImageOptions,
} from '../../core/ports.ts';
import { SshDockerAgent } from './docker-ssh.ts';
import { getOverHttp10 } from './docker-http10.ts';
import { dockerLogLines, engineTimestamp, maxLogLineBytes } from './docker-logs.ts';
import { isoToNanos, logScanDone, logScanEnv, logScanScript } from './docker-log-scan.ts';
import { afterTime } from '../../core/services/logs.ts';
import { containerLogRotation } from '../../core/releases/plan.ts';
import { runBuild, type BuildClient, type Builder } from './docker-build.ts';
import {
  fileSyncMethod,
  serveBuildSession,
  sessionMethods,
  type SessionDirs,
} from './buildkit-session.ts';
import { ContainerNotFound, ImageNotFound, ImageRefreshFailed } from './errors.ts';
import { DemuxedLines, LineSplitter, OutputTail } from './output-tail.ts';
import { onFirstUse } from '../on-first-use.ts';

export interface DockerRuntimeOptions {
  /** A TCP (or SSH handshake) connect to an engine gives up after this long; default 5000 ms. */
  connectTimeoutMs?: number;
  /** Extra ssh2 options for ssh:// hosts (e.g. privateKey). */
  sshOptions?: Record<string, unknown>;
  /** The ssh-agent socket for ssh:// hosts without stored credentials (the configuration's SSH_AUTH_SOCK). */
  sshAgent?: string;
  /** An SSH connection to a node with no request on it for this long is closed; default 30 000 ms. */
  sshIdleTimeoutMs?: number;
  /**
   * Engine clients kept at once (one per dockerHost and credentials); the least recently used
   * beyond this is closed. Default 64.
   */
  maxClients?: number;
  /** runOnce keeps the last this-many bytes of output; default 64 KiB. */
  maxOutputBytes?: number;
  /** A line of output longer than this many characters is cut (and the cut said); default 8 KiB. */
  maxLineLength?: number;
  /**
   * After a one-off ends, its output still in transit is read until none has arrived for this
   * long (or for 60 s at most); default 2000 ms.
   */
  drainOutputMs?: number;
  /**
   * A short call (ping, inspect, list, create, start, remove) that gets no answer in this long
   * fails as Unavailable; default 30 000 ms. Stop gets its grace on top; waits and logs are unbounded.
   */
  requestTimeoutMs?: number;
  /** A pull that has not finished in this long fails; default 600 000 ms. */
  pullTimeoutMs?: number;
  /** Which builder builds images from git: `buildkit` (default) or `legacy`. */
  builder?: Builder;
  /**
   * The image a log search's scanner runs in, on the replica's own engine (any image with
   * `node` on its PATH; never pulled); default `selfdevop/node:24`. Empty: every search reads
   * through the Engine API.
   */
  logScanImage?: string;
  /**
   * A scanner that does not finish in this long is killed and the engine read takes over
   * after its last line; default 600 000 ms. Its reader's pace counts (its writes wait for
   * the reader), and a reader that leaves kills it at once.
   */
  logScanTimeoutMs?: number;
  /**
   * A search reads through the Engine API for this long first (a small log is done before a
   * scanner could start), then hands the rest to the scanner; default 500 ms, 0: the
   * scanner at once.
   */
  logScanAfterMs?: number;
  /** Where a search that falls back to the engine read says why. */
  logger?: Logger;
}

// dockerode (with ssh2 and grpc-js) is most of a bundle that includes it, and many processes
// that build a DockerRuntime (the API Lambda) never talk to an engine: it loads on first use.
const loadDockerode = onFirstUse(() => import('dockerode').then((m) => m.default));

const defaultConnectTimeoutMs = 5000;
const defaultMaxClients = 64;
const defaultMaxOutputBytes = 64 * 1024;
const defaultPublishIp = '127.0.0.1';
const defaultLogScanImage = 'selfdevop/node:24';
const containerStates = new Set<ContainerInfo['state']>([
  'created',
  'running',
  'exited',
  'dead',
  'paused',
  'restarting',
  'removing',
]);

/**
 * Translates a dockerHost (`unix:///path`, `tcp://host:port`, `ssh://user@host[:port]`) into
 * dockerode options; for ssh:// the ssh2 options DockerRuntime opens its shared connection
 * with. Throws InvalidInput on anything else.
 */
export function fromDockerTarget(
  target: DockerTarget,
  options: DockerRuntimeOptions = {},
): Docker.DockerOptions & { agent?: http.Agent } {
  const connectTimeoutMs = options.connectTimeoutMs ?? defaultConnectTimeoutMs;
  let url: URL;
  try {
    url = new URL(target.dockerHost);
  } catch {
    throw new InvalidInput(
      `dockerHost ${target.dockerHost} is not a URL such as unix:///var/run/docker.sock, tcp://host:2376 or ssh://user@host`,
    );
  }
  switch (url.protocol) {
    case 'unix:': {
      const socketPath = decodeURIComponent(url.pathname);
      if (!socketPath || socketPath === '/')
        throw new InvalidInput(`dockerHost ${target.dockerHost} names no socket path`);
      return { socketPath };
    }
    case 'tcp:': {
      if (!url.hostname) throw new InvalidInput(`dockerHost ${target.dockerHost} names no host`);
      const tls = target.tls;
      return {
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: Number(url.port || (tls ? 2376 : 2375)),
        protocol: tls ? 'https' : 'http',
        ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
        agent: connectTimeoutAgent(Boolean(tls), connectTimeoutMs),
      };
    }
    case 'ssh:': {
      if (!url.hostname) throw new InvalidInput(`dockerHost ${target.dockerHost} names no host`);
      return {
        protocol: 'ssh',
        host: url.hostname,
        port: Number(url.port || 22),
        username: decodeURIComponent(url.username) || 'root',
        sshOptions: {
          agent: options.sshAgent,
          readyTimeout: connectTimeoutMs,
          // A shared connection that stops answering is noticed and replaced, not waited on.
          keepaliveInterval: 15_000,
          keepaliveCountMax: 3,
          ...options.sshOptions,
          ...(target.ssh ? sshCredentials(target.ssh) : {}),
        },
      };
    }
    default:
      throw new InvalidInput(
        `dockerHost ${target.dockerHost} must start with unix://, tcp:// or ssh://`,
      );
  }
}

/**
 * ssh2 options for a node's own key. The node's key, not the process's agent, and the
 * pinned host key checked byte for byte: a server presenting another key is refused
 * before any command runs (ssh2 then fails the handshake).
 */
function sshCredentials(ssh: NonNullable<DockerTarget['ssh']>): Record<string, unknown> {
  const pinned = ssh.hostKey ? Buffer.from(ssh.hostKey.split(' ')[1] ?? '', 'base64') : null;
  return {
    agent: undefined,
    privateKey: ssh.privateKey,
    ...(pinned ? { hostVerifier: (key: Buffer) => pinned.length > 0 && key.equals(pinned) } : {}),
  };
}

/** The Docker create body for a spec; pure, so plans can be checked without an engine. */
export function containerCreateOptions(
  spec: ContainerSpec,
  oneOff = false,
): ContainerCreateOptions {
  const port = oneOff ? undefined : spec.containerPort;
  const portKey = `${port}/tcp`;
  const hostConfig: NonNullable<ContainerCreateOptions['HostConfig']> = {
    RestartPolicy: { Name: oneOff ? 'no' : spec.restartPolicy },
    // Every container selfdevop starts rotates its log, so no app can fill its node's disk.
    // The `local` driver (length-prefixed protobuf records) rather than json-file: the
    // engine decodes it for a read about 1.5–2× faster than JSON lines (measured on 1M lines,
    // bench:observe), and the app-logs search is bounded by that read. Uncompressed: a
    // read of a rotated file then needs no temporary inflated copy (and max-file 1 demands it).
    LogConfig: {
      Type: 'local',
      Config: {
        'max-size': `${(spec.logRotation ?? containerLogRotation).maxSizeMb}m`,
        'max-file': String((spec.logRotation ?? containerLogRotation).maxFiles),
        compress: 'false',
      },
    },
  };
  if (port)
    hostConfig.PortBindings = {
      [portKey]: [{ HostIp: spec.publishIp ?? defaultPublishIp, HostPort: '' }],
    };
  if (spec.memoryMb) hostConfig.Memory = spec.memoryMb * 1024 * 1024;
  if (spec.cpus) hostConfig.NanoCpus = Math.round(spec.cpus * 1e9);
  if (spec.hostNetwork) hostConfig.NetworkMode = 'host';
  const binds = [...(spec.binds ?? []), ...(spec.volumes ?? [])];
  // A source without a slash is a named volume to the engine, made on first use.
  if (binds.length) hostConfig.Binds = binds;
  if (spec.network && !spec.hostNetwork) hostConfig.NetworkMode = spec.network;
  if (spec.noNetwork) hostConfig.NetworkMode = 'none';
  const options: ContainerCreateOptions = {
    name: spec.name,
    Image: spec.image,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    Labels: { ...spec.labels },
    HostConfig: hostConfig,
  };
  if (spec.cmd) options.Cmd = [...spec.cmd];
  if (spec.user) options.User = spec.user;
  if (spec.entrypoint) options.Entrypoint = [...spec.entrypoint];
  if (port) options.ExposedPorts = { [portKey]: {} };
  if (oneOff) {
    options.AttachStdout = true;
    options.AttachStderr = true;
    options.Tty = false;
  }
  return options;
}

/** A ContainerRuntime that drives Docker Engines over a unix socket, TCP(+TLS) or SSH. */
export class DockerRuntime implements ContainerRuntime {
  /** In least-recently-used order: a hit moves its entry to the end. */
  private readonly clients = new Map<string, CachedClient>();
  private readonly options: DockerRuntimeOptions;
  private readonly requestTimeoutMs: number;

  constructor(options: DockerRuntimeOptions = {}) {
    this.options = options;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  async ping(target: DockerTarget): Promise<void> {
    // dockerode takes an abortSignal on ping too; its typings do not say so.
    const ping = (docker: Docker) =>
      (docker.ping as unknown as (o: { abortSignal: AbortSignal }) => Promise<unknown>).call(
        docker,
        { abortSignal: this.deadline() },
      );
    await this.call(target, 'ping', ping);
  }

  async capacity(
    target: DockerTarget,
  ): Promise<{ cpus: number; memoryMb: number; dataRoot?: string }> {
    const info = (await this.call(target, 'info', (docker) => docker.info())) as {
      NCPU?: number;
      MemTotal?: number;
      DockerRootDir?: string;
    };
    return {
      cpus: info.NCPU ?? 0,
      memoryMb: Math.floor((info.MemTotal ?? 0) / (1024 * 1024)),
      ...(info.DockerRootDir ? { dataRoot: info.DockerRootDir } : {}),
    };
  }

  async usage(target: DockerTarget, nameOrId: string): Promise<ContainerUsage | null> {
    return this.call(target, `stats ${nameOrId}`, async (docker) => {
      let stats: EngineStats;
      try {
        // one-shot: the engine answers at once instead of waiting a second for a second
        // sample; the collector computes rates from its own previous reading.
        stats = (await docker.getContainer(nameOrId).stats({
          stream: false,
          'one-shot': true,
          abortSignal: this.deadline(),
        } as unknown as { stream: false })) as unknown as EngineStats;
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw e;
      }
      return usageFromStats(stats);
    });
  }

  async resolveImage(
    target: DockerTarget,
    image: string,
    options: ResolveImageOptions = {},
  ): Promise<string> {
    return this.call(target, `resolve image ${image}`, (docker) =>
      this.ensureImage(docker, image, options),
    );
  }

  async build(
    target: DockerTarget,
    spec: BuildSpec,
    onLine: (line: string) => void | Promise<void>,
  ): Promise<BuildResult> {
    return this.call(target, `build ${spec.tag}`, async (docker) => {
      const client = sessionBuildClient(docker, spec.secrets ?? {}, spec.files);
      let result;
      try {
        result = await runBuild(
          client,
          spec,
          this.options.builder ?? 'buildkit',
          onLine,
          this.options.maxLineLength,
        );
      } finally {
        // A checkout still being written (a build that failed before it asked) is waited
        // for: its tree is closed after this, and must not be while it is written.
        await client.settled();
      }
      const transfer = client.transfer();
      return transfer ? { ...result, transfer } : result;
    });
  }

  async localImage(target: DockerTarget, image: string): Promise<string | null> {
    return this.call(target, `inspect image ${image}`, (docker) =>
      this.imageIdOrNull(docker, image),
    );
  }

  async moveImage(
    from: DockerTarget,
    to: DockerTarget,
    image: string,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<MovedImage> {
    const expected = await this.call(from, `inspect image ${image}`, (docker) =>
      this.imageIdOrNull(docker, image),
    );
    if (!expected) throw new Error(`image ${image} is not on ${from.dockerHost}: nothing to move`);
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, options.timeoutMs);
    const cancel = () => abort.abort();
    options.signal?.addEventListener('abort', cancel, { once: true });
    // A signal aborted before the call never fires its event.
    if (options.signal?.aborted) abort.abort();
    // Both HTTP streams are cut on abort: the engines then drop the half-sent archive.
    const open: { destroy?: (e?: Error) => void }[] = [];
    const stopped = () =>
      new Error(
        timedOut
          ? `moving image ${image} did not finish in ${Math.round(options.timeoutMs / 1000)} s and was cancelled`
          : `moving image ${image} was cancelled`,
      );
    const onAbort = () => {
      for (const s of open) s.destroy?.(stopped());
    };
    abort.signal.addEventListener('abort', onAbort, { once: true });
    let bytes = 0;
    try {
      // Saved by name, so the archive carries the tag and the load puts it on the other node.
      const saved = await this.call(from, `save ${image}`, (docker) =>
        dialStream(docker, {
          path: `/images/${image}/get`,
          method: 'GET',
          abortSignal: abort.signal,
        }),
      );
      open.push(saved as NodeJS.ReadableStream & { destroy?: () => void });
      // The archive passes through, counted, with backpressure: never held whole here.
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      saved.on('error', (e: Error) => counted.destroy(e));
      saved.pipe(counted);
      open.push(counted);
      const loaded = await this.call(to, `load ${image}`, (docker) =>
        dialStream(docker, {
          path: '/images/load?',
          method: 'POST',
          options: { quiet: '1' },
          file: counted,
          abortSignal: abort.signal,
        }),
      );
      open.push(loaded as NodeJS.ReadableStream & { destroy?: () => void });
      let error: string | null = null;
      let rest = '';
      for await (const chunk of loaded as AsyncIterable<Buffer | string>) {
        const lines = (rest + chunk.toString()).split('\n');
        rest = lines.pop() ?? '';
        if (rest.length > 1024 * 1024) rest = '';
        for (const line of lines) {
          try {
            const event = JSON.parse(line) as {
              error?: string;
              errorDetail?: { message?: string };
            };
            if (event.error || event.errorDetail)
              error = event.errorDetail?.message ?? event.error ?? 'the load failed';
          } catch {
            // Not JSON: progress text, nothing to act on.
          }
        }
      }
      if (abort.signal.aborted) throw stopped();
      if (error !== null)
        throw new Error(`docker load ${image} on ${to.dockerHost} failed: ${error}`);
    } catch (e) {
      if (abort.signal.aborted) throw stopped();
      throw e;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', cancel);
      abort.signal.removeEventListener('abort', onAbort);
    }
    const there = await this.call(to, `inspect image ${image}`, (docker) =>
      this.imageIdOrNull(docker, image),
    );
    if (there !== expected)
      throw new Error(
        `image ${image} is ${there ?? 'missing'} on ${to.dockerHost} after the load, not ${expected} as on ${from.dockerHost}`,
      );
    return { imageId: expected, bytes };
  }

  async listImages(target: DockerTarget, labels: Record<string, string>): Promise<ImageSummary[]> {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const images = await this.call(target, 'list images', (docker) =>
      docker.listImages({
        filters: JSON.stringify({ label }),
        abortSignal: this.deadline(),
      } as Docker.ListImagesOptions),
    );
    return images.map((i) => ({
      id: i.Id,
      tags: (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>'),
      labels: { ...(i.Labels ?? {}) },
      createdAt: new Date(i.Created * 1000).toISOString(),
      sizeBytes: i.Size,
    }));
  }

  async deleteImage(
    target: DockerTarget,
    nameOrId: string,
  ): Promise<'removed' | 'in_use' | 'missing'> {
    return this.call(target, `remove image ${nameOrId}`, async (docker) => {
      try {
        // Never forced: the engine keeps an image any container (even a stopped one) uses.
        await docker.getImage(nameOrId).remove({
          force: false,
          noprune: false,
          abortSignal: this.deadline(),
        } as Docker.ImageRemoveOptions);
        return 'removed';
      } catch (e) {
        if (statusOf(e) === 404) return 'missing';
        if (statusOf(e) === 409) return 'in_use';
        throw e;
      }
    });
  }

  async pruneBuildCache(
    target: DockerTarget,
    keepBytes: number,
  ): Promise<{ reclaimedBytes: number }> {
    return this.call(target, 'prune the build cache', async (docker) => {
      const modem = (docker as unknown as { modem: ModemDial }).modem;
      const answer = await new Promise<unknown>((resolve, reject) =>
        modem.dial(
          {
            path: '/build/prune?',
            method: 'POST',
            options: { 'keep-storage': String(Math.max(0, Math.floor(keepBytes))) },
            abortSignal: AbortSignal.timeout(this.requestTimeoutMs * 4),
            statusCodes: { 200: true, 500: 'server error' },
          },
          (err, data) => (err ? reject(err) : resolve(data)),
        ),
      );
      return {
        reclaimedBytes: (answer as { SpaceReclaimed?: number } | null)?.SpaceReclaimed ?? 0,
      };
    });
  }

  async start(target: DockerTarget, spec: ContainerSpec): Promise<ContainerInfo> {
    return this.call(target, `start ${spec.name}`, async (docker) => {
      // Why: a retried deploy step must find the container its first attempt made.
      const existing = await this.inspectOrNull(docker, spec.name);
      if (existing) return this.ensureRunning(docker, existing);
      let id: string;
      try {
        id = await this.create(docker, containerCreateOptions(spec), spec.internalNetwork);
      } catch (e) {
        const raced = statusOf(e) === 409 ? await this.inspectOrNull(docker, spec.name) : null;
        if (raced) return this.ensureRunning(docker, raced);
        throw e;
      }
      await this.startTolerant(docker, id);
      return toInfo(await docker.getContainer(id).inspect({ abortSignal: this.deadline() }));
    });
  }

  async runOnce(
    target: DockerTarget,
    spec: ContainerSpec,
    timeoutMs: number,
    onLine?: (line: string) => void | Promise<void>,
  ): Promise<OneOffResult> {
    return this.call(target, `run ${spec.name}`, async (docker) => {
      // Why: a worker that died mid-run leaves its one-off behind under the same name; the
      // retried step runs it again from the start (migrations are expected to be re-runnable).
      await this.removeTolerant(docker, spec.name);
      const id = await this.create(
        docker,
        containerCreateOptions(spec, true),
        spec.internalNetwork,
      );
      const container = docker.getContainer(id);
      try {
        return await this.runCreated(docker, container, timeoutMs, onLine);
      } finally {
        await this.removeTolerant(docker, id).catch(() => undefined);
      }
    });
  }

  async exec(
    target: DockerTarget,
    nameOrId: string,
    cmd: string[],
    timeoutMs: number,
  ): Promise<OneOffResult> {
    return this.call(target, `exec in ${nameOrId}`, async (docker) => {
      const exec = await docker
        .getContainer(nameOrId)
        .exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
      const tail = new OutputTail(this.options.maxOutputBytes ?? defaultMaxOutputBytes);
      const lines = new DemuxedLines((line) => tail.push(line), this.options.maxLineLength);
      const stream = await exec.start({ hijack: true, stdin: false });
      const ended = new Promise<void>((resolve) => {
        lines.once('finish', () => resolve());
        stream.once('error', () => resolve());
        stream.once('end', () => resolve());
      });
      stream.pipe(lines);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      try {
        // The engine cannot kill an exec'd process on its own; a command that hangs is
        // reported as timed out and left to the container (it is the app's own check).
        const outcome = await Promise.race([ended, timedOut]);
        (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
        if (outcome === 'timeout')
          return { exitCode: null, timedOut: true, output: tail.toString() };
        const info = (await exec.inspect()) as { ExitCode: number | null };
        return { exitCode: info.ExitCode, timedOut: false, output: tail.toString() };
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async runPiped(
    target: DockerTarget,
    spec: ContainerSpec,
    options: { timeoutMs: number; stdin?: AsyncIterable<Uint8Array>; signal?: AbortSignal },
  ): Promise<PipedRun> {
    return this.call(target, `run ${spec.name}`, async (docker) => {
      await this.removeTolerant(docker, spec.name);
      const create = containerCreateOptions(spec, true);
      // Its output goes to the reader, over the attach stream, and nowhere else. Logged too,
      // the engine split a backup's whole gzip stream into log records written to the
      // node's disk: a plaintext copy of the customer's dump, never read (the one-off is
      // removed when it ends), and the one-off of a 1M-row backup ran ~0.35 s of its ~4 s longer.
      create.HostConfig = { ...create.HostConfig, LogConfig: { Type: 'none', Config: {} } };
      if (options.stdin) {
        create.AttachStdin = true;
        create.OpenStdin = true;
        // The engine closes the container's stdin when the attached client closes its side.
        create.StdinOnce = true;
      }
      const id = await this.create(docker, create, spec.internalNetwork);
      const container = docker.getContainer(id);
      const stdout = new PassThrough({ highWaterMark: 1024 * 1024 });
      const stderr = new OutputTail(this.options.maxOutputBytes ?? defaultMaxOutputBytes);
      const attached = (await container.attach({
        stream: true,
        stdin: Boolean(options.stdin),
        stdout: true,
        stderr: true,
        hijack: Boolean(options.stdin),
      })) as NodeJS.ReadWriteStream;
      // Piped, so a stdout nobody reads pauses the socket and the engine holds the dump back.
      // stderr is a stream of bytes, not of lines: the engine frames each write of the
      // process, and a process writing unbuffered (mawk's /dev/stderr) or a long output
      // split between two of the engine's chunks makes a frame of part of a line.
      const errLines = new LineSplitter((line) => stderr.push(line));
      const demux = new ByteDemux(stdout, (bytes) => errLines.write(bytes));
      attached.pipe(demux);
      const ended = new Promise<void>((resolve) => {
        demux.once('finish', () => resolve());
        attached.once('error', () => resolve());
        attached.once('close', () => resolve());
      });
      const cleanup = () => this.removeTolerant(docker, id).catch(() => undefined);
      try {
        await container.start({ abortSignal: this.deadline() } as Docker.ContainerStartOptions);
      } catch (e) {
        await cleanup();
        throw e;
      }
      let fed: Promise<void> = Promise.resolve();
      if (options.stdin) {
        const input = options.stdin;
        fed = (async () => {
          try {
            for await (const chunk of input) {
              if (!attached.write(chunk))
                await new Promise<void>((resolve) => attached.once('drain', () => resolve()));
            }
          } catch (e) {
            // A failing input (a backup that does not verify) kills the one-off: closing its
            // stdin instead would hand it a truncated dump as if it were whole, and leaving
            // it open would keep it waiting until its timeout.
            await container.kill().catch(() => undefined);
            throw e;
          }
          attached.end();
        })();
      }
      const result = (async (): Promise<OneOffResult> => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
        });
        // The reader left: the one-off is killed rather than left blocked on its stdout.
        const kill = () => void container.kill().catch(() => undefined);
        if (options.signal?.aborted) kill();
        options.signal?.addEventListener('abort', kill, { once: true });
        try {
          const fedError = fed.then(
            () => null,
            (e: unknown) => e,
          );
          const outcome = await Promise.race([
            container.wait() as Promise<{ StatusCode: number }>,
            timedOut,
          ]);
          if (outcome === 'timeout')
            await container.kill().catch((e: unknown) => {
              if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
            });
          await Promise.race([ended, delay(5000)]);
          errLines.end();
          if (!stdout.writableEnded) stdout.end();
          const feedFailure = await Promise.race([fedError, delay(100).then(() => null)]);
          (attached as unknown as { destroy?: () => void }).destroy?.();
          if (feedFailure) throw feedFailure;
          if (outcome === 'timeout')
            return { exitCode: null, timedOut: true, output: stderr.toString() };
          return { exitCode: outcome.StatusCode, timedOut: false, output: stderr.toString() };
        } finally {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', kill);
          await cleanup();
        }
      })();
      // Whoever awaits it sees the failure; nobody awaiting must not crash the process.
      result.catch(() => undefined);
      return { stdout, result };
    });
  }

  async inspect(target: DockerTarget, nameOrId: string): Promise<ContainerInfo | null> {
    return this.call(target, `inspect ${nameOrId}`, async (docker) => {
      const info = await this.inspectOrNull(docker, nameOrId);
      return info ? toInfo(info) : null;
    });
  }

  async list(target: DockerTarget, labels: Record<string, string>): Promise<ContainerInfo[]> {
    return this.call(target, 'list containers', async (docker) => {
      const items = await docker.listContainers({
        all: true,
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
        abortSignal: this.deadline(),
      } as Docker.ContainerListOptions);
      return items.map(fromListItem).sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async stop(target: DockerTarget, nameOrId: string, graceSeconds: number): Promise<void> {
    await this.call(target, `stop ${nameOrId}`, async (docker) => {
      try {
        const t = Math.max(0, Math.round(graceSeconds));
        // The engine answers only once the container is down: up to the grace, then a kill.
        await docker
          .getContainer(nameOrId)
          .stop({ t, abortSignal: this.deadline(t * 1000) } as Docker.ContainerStopOptions);
      } catch (e) {
        // 304: already stopped; 404: already gone. Both are the state the caller wants.
        if (statusOf(e) !== 304 && statusOf(e) !== 404) throw e;
      }
    });
  }

  async rename(target: DockerTarget, nameOrId: string, newName: string): Promise<void> {
    await this.call(target, `rename ${nameOrId} to ${newName}`, (docker) =>
      docker
        .getContainer(nameOrId)
        .rename({ name: newName, abortSignal: this.deadline() } as { name: string }),
    );
  }

  async remove(target: DockerTarget, nameOrId: string): Promise<void> {
    await this.call(target, `remove ${nameOrId}`, (docker) =>
      this.removeTolerant(docker, nameOrId),
    );
  }

  async removeNetwork(target: DockerTarget, name: string): Promise<void> {
    await this.call(target, `remove network ${name}`, async (docker) => {
      try {
        await docker.getNetwork(name).remove({ abortSignal: this.deadline() });
      } catch (e) {
        if (statusOf(e) !== 404) throw e; // already gone
      }
    });
  }

  async removeVolume(target: DockerTarget, name: string): Promise<void> {
    await this.call(target, `remove volume ${name}`, async (docker) => {
      try {
        await docker.getVolume(name).remove({ abortSignal: this.deadline() });
      } catch (e) {
        if (statusOf(e) !== 404) throw e; // already gone
      }
    });
  }

  /**
   * A container's stored lines. A search with a literal over a past range (no `follow`, no
   * `tail`) of a container logging with the uncompressed `local` driver runs the log scanner
   * beside the files, on the container's own engine (`docker-log-scan.ts`), which answers only
   * the lines holding the literal; everything else, and a scan that cannot run or finish,
   * reads through the Engine API (a scan that failed midway resumes there after its last line).
   */
  async *logs(
    target: DockerTarget,
    nameOrId: string,
    options: ContainerLogOptions,
  ): AsyncGenerator<ContainerLogLine> {
    if (options.signal.aborted) return;
    const literal = scannableLiteral(options);
    const image = this.options.logScanImage ?? defaultLogScanImage;
    if (!literal || !image) {
      yield* this.engineLogs(target, nameOrId, options);
      return;
    }
    // A small log is read through the engine before a container could even start; a read
    // still going after the budget is cut and the scanner goes on after its last line.
    const budgetMs = this.options.logScanAfterMs ?? 500;
    let since = options.since;
    if (budgetMs > 0) {
      const first = new AbortController();
      const abort = () => first.abort();
      options.signal.addEventListener('abort', abort, { once: true });
      const timer = setTimeout(abort, budgetMs);
      try {
        for await (const line of this.engineLogs(target, nameOrId, {
          ...options,
          signal: first.signal,
        })) {
          since = afterTime(line.time);
          yield line;
        }
      } finally {
        clearTimeout(timer);
        options.signal.removeEventListener('abort', abort);
      }
      if (!first.signal.aborted || options.signal.aborted) return;
    }
    const rest = { ...options, ...(since ? { since } : {}) };
    const scan = yield* this.scannedLogs(target, nameOrId, rest, literal, image);
    if (scan.complete || options.signal.aborted) return;
    yield* this.engineLogs(target, nameOrId, {
      ...rest,
      ...(scan.last ? { since: afterTime(scan.last) } : {}),
    });
  }

  /**
   * The scanner's answer, and whether it is the whole answer. Not whole (the engine read
   * follows): the container does not log with the uncompressed `local` driver, the scanner
   * cannot run (its image is not on the node, the engine refuses the bind) or did not finish
   * (timeout, exit code); `last` is the time of the last line answered before that.
   */
  private async *scannedLogs(
    target: DockerTarget,
    nameOrId: string,
    options: ContainerLogOptions,
    literal: Buffer,
    image: string,
  ): AsyncGenerator<ContainerLogLine, { complete: boolean; last?: string }> {
    const { signal } = options;
    const fallBack = (why: string, last?: string) => {
      const logger = this.options.logger;
      const message = `log search of ${nameOrId} reads through the Engine API instead of its scanner: ${why}`;
      if (logger)
        logger.warn({ dockerHost: target.dockerHost, container: nameOrId, image }, message);
      else process.stderr.write(`${message}\n`);
      return { complete: false, ...(last ? { last } : {}) };
    };
    const plan = await this.call(target, `logs of ${nameOrId}`, async (docker) => {
      const info = await this.inspectOrNull(docker, nameOrId);
      if (!info) throw new ContainerNotFound(nameOrId);
      const log = info.HostConfig?.LogConfig as
        { Type?: string; Config?: Record<string, string> } | undefined;
      // Another driver, or compressed rotations: the engine knows how to read those.
      if (log?.Type !== 'local' || log.Config?.compress !== 'false' || info.Config?.Tty)
        return null;
      const root = await this.dataRoot(docker);
      return { id: info.Id, dir: `${root}/containers/${info.Id}/local-logs` };
    });
    if (!plan) return { complete: false };
    const stop = new AbortController();
    const abort = () => stop.abort();
    signal.addEventListener('abort', abort, { once: true });
    let last: string | undefined;
    let finished = false;
    try {
      let run: PipedRun;
      try {
        run = await this.runPiped(
          target,
          {
            name: `sdo-logscan-${plan.id.slice(0, 12)}-${randomUUID().slice(0, 8)}`,
            image,
            env: logScanEnv({
              literal,
              sinceNanos: options.since ? isoToNanos(options.since) : 0n,
              ...(options.until ? { untilNanos: isoToNanos(options.until) } : {}),
              maxLineBytes: maxLogLineBytes + 1,
            }),
            labels: { 'selfdevop.log-scan': plan.id },
            cmd: ['node', '-e', logScanScript],
            binds: [`${plan.dir}:/logs:ro`],
            noNetwork: true,
            memoryMb: 128,
            cpus: 1,
            restartPolicy: 'no',
            // Its own output is only the matches, already bounded by the reader.
            logRotation: { maxSizeMb: 1, maxFiles: 1 },
          },
          { timeoutMs: this.options.logScanTimeoutMs ?? 600_000, signal: stop.signal },
        );
      } catch (e) {
        if (signal.aborted) return { complete: true };
        return fallBack(`it could not run (${messageOf(e)})`);
      }
      // The output's last bytes: the scanner's `logScanDone` frame when it scanned everything.
      let tail = Buffer.alloc(0);
      const output = async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          tail = Buffer.concat([tail, chunk]).subarray(-logScanDone.length);
          yield chunk;
        }
      };
      try {
        for await (const line of dockerLogLines(
          output(run.stdout as AsyncIterable<Buffer>),
          false,
          options.filter,
        )) {
          last = line.time;
          yield line;
        }
      } catch (e) {
        if (signal.aborted) return { complete: true };
        stop.abort();
        await run.result.catch(() => undefined);
        return fallBack(`its output broke off (${messageOf(e)})`, last);
      }
      finished = true;
      // Whole: answered without waiting for the one-off's exit and removal (runPiped's).
      if (tail.equals(logScanDone)) return { complete: true, ...(last ? { last } : {}) };
      const result = await run.result.catch((e: unknown) => e as Error);
      if (signal.aborted) return { complete: true };
      if (result instanceof Error) return fallBack(messageOf(result), last);
      if (result.timedOut) return fallBack('it timed out', last);
      // Without its last frame the answer may lack lines, whatever the exit code says.
      return fallBack(
        `it exited with ${result.exitCode} before its last frame${result.output ? `: ${result.output.slice(-300)}` : ''}`,
        last,
      );
    } finally {
      signal.removeEventListener('abort', abort);
      // Left early (a full page): the scanner is killed, and removed by runPiped.
      if (!finished) stop.abort();
    }
  }

  /** The engine's data-root (`DockerRootDir`), asked once per client. */
  private async dataRoot(docker: Docker): Promise<string> {
    const known = dataRoots.get(docker);
    if (known) return known;
    const info = (await docker.info()) as { DockerRootDir?: string };
    const root = info.DockerRootDir || '/var/lib/docker';
    dataRoots.set(docker, root);
    return root;
  }

  /** The Engine API's read of a container's log (`GET /containers/{id}/logs`). */
  private async *engineLogs(
    target: DockerTarget,
    nameOrId: string,
    options: ContainerLogOptions,
  ): AsyncGenerator<ContainerLogLine> {
    const { signal } = options;
    if (signal.aborted) return;
    const opened = await this.call(target, `logs of ${nameOrId}`, async (docker) => {
      const info = await this.inspectOrNull(docker, nameOrId);
      if (!info) throw new ContainerNotFound(nameOrId);
      const query: Record<string, string | number | boolean> = {
        stdout: true,
        stderr: true,
        timestamps: true,
        follow: options.follow,
      };
      if (options.since) query.since = engineTimestamp(options.since);
      if (options.until && !options.follow) query.until = engineTimestamp(options.until);
      if (options.tail !== undefined) query.tail = options.tail;
      // A local engine is read as HTTP/1.0 (unchunked: a fraction of the CPU per line).
      const socketPath = (docker.modem as { socketPath?: unknown }).socketPath;
      if (typeof socketPath === 'string' && socketPath !== '') {
        const search = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]));
        const path = `/containers/${encodeURIComponent(info.Id)}/logs?${search}`;
        const stream = await getOverHttp10(socketPath, path, signal).catch((e: unknown) => {
          if (statusOf(e) === 404) throw new ContainerNotFound(nameOrId);
          throw e;
        });
        return { stream, tty: info.Config?.Tty === true };
      }
      // dockerode's container.logs() reads the whole answer into one Buffer unless it
      // follows; dialled directly with isStream, a million stored lines stream instead.
      const stream = await new Promise<AsyncIterable<Buffer>>((resolve, reject) =>
        docker.modem.dial(
          {
            path: `/containers/${encodeURIComponent(info.Id)}/logs?`,
            method: 'GET',
            options: query,
            isStream: true,
            abortSignal: signal,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
          },
          (err: unknown, data: unknown) =>
            err ? reject(err) : resolve(data as AsyncIterable<Buffer>),
        ),
      ).catch((e: unknown) => {
        if (statusOf(e) === 404) throw new ContainerNotFound(nameOrId);
        throw e;
      });
      return { stream, tty: info.Config?.Tty === true };
    }).catch((e: unknown) => {
      if (signal.aborted) return null;
      throw e;
    });
    if (!opened) return;
    const readable = opened.stream as AsyncIterable<Buffer> & { destroy?: () => void };
    const abort = () => readable.destroy?.();
    signal.addEventListener('abort', abort, { once: true });
    try {
      yield* dockerLogLines(readable, opened.tty, options.filter);
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      signal.removeEventListener('abort', abort);
      readable.destroy?.();
      // The HTTP/1.0 read's generator closes its socket when returned.
      if (!readable.destroy) await (readable as AsyncGenerator<Buffer>).return?.(undefined);
    }
  }

  async followLogs(
    target: DockerTarget,
    nameOrId: string,
    onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (signal.aborted) return;
    await this.call(target, `follow logs of ${nameOrId}`, async (docker) => {
      let stream: NodeJS.ReadableStream;
      try {
        stream = await docker
          .getContainer(nameOrId)
          .logs({ follow: true, stdout: true, stderr: true, abortSignal: signal });
      } catch (e) {
        if (signal.aborted) return;
        if (statusOf(e) === 404) throw new ContainerNotFound(nameOrId);
        throw e;
      }
      const out = new LineSplitter((line) => onLine(line, 'stdout'));
      const err = new LineSplitter((line) => onLine(line, 'stderr'));
      await new Promise<void>((resolve) => {
        const done = () => {
          signal.removeEventListener('abort', abort);
          out.end();
          err.end();
          resolve();
        };
        const abort = () => {
          (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
          done();
        };
        signal.addEventListener('abort', abort, { once: true });
        docker.modem.demuxStream(stream, sink(out), sink(err));
        stream.once('end', done);
        stream.once('close', done);
        stream.once('error', done);
      });
    });
  }

  // ------------------------------------------------------------------ internals

  /**
   * Closes every engine client: SSH connections end once their requests in flight finish.
   * For a process that is shutting down; a later call opens new clients.
   */
  close(): void {
    for (const key of [...this.clients.keys()]) this.evict(key);
  }

  private async client(target: DockerTarget): Promise<Docker> {
    const Dockerode = await loadDockerode();
    // No await from here on, so concurrent first calls still share one client per target.
    // Keyed by a hash of the credentials too: rotated ones get a new client at once.
    const credentials = target.tls
      ? `${target.tls.ca}\0${target.tls.cert}\0${target.tls.key}`
      : target.ssh
        ? `${target.ssh.privateKey}\0${target.ssh.hostKey ?? ''}`
        : '';
    const credentialsKey = credentials
      ? createHash('sha256').update(credentials).digest('hex')
      : '';
    const key = `${target.dockerHost}\0${credentialsKey}`;
    const cached = this.clients.get(key);
    if (cached) {
      this.clients.delete(key);
      this.clients.set(key, cached);
      return cached.docker;
    }
    // Rotated credentials: the client for the old ones is not asked again, so it goes now.
    for (const [k, c] of this.clients) if (c.dockerHost === target.dockerHost) this.evict(k);
    const client = this.makeClient(Dockerode, target);
    this.clients.set(key, client);
    const maxClients = Math.max(1, this.options.maxClients ?? defaultMaxClients);
    for (const k of this.clients.keys()) {
      if (this.clients.size <= maxClients) break;
      this.evict(k);
    }
    return client.docker;
  }

  private makeClient(Dockerode: typeof Docker, target: DockerTarget): CachedClient {
    const options = fromDockerTarget(target, this.options);
    if (options.protocol !== 'ssh') {
      // A tcp:// agent keeps no idle socket (no keep-alive) and a unix:// client uses the
      // global agent: dropping the client is all there is to close.
      return {
        dockerHost: target.dockerHost,
        docker: new Dockerode(options),
        retire: () => undefined,
      };
    }
    // docker-modem's own ssh support opens a new SSH connection for every request (~400 ms
    // of handshake each); this agent keeps one per node and opens a channel per request.
    const agent = new SshDockerAgent(
      {
        ...options.sshOptions,
        host: options.host,
        port: Number(options.port),
        username: options.username,
      },
      { idleTimeoutMs: this.options.sshIdleTimeoutMs },
    );
    return {
      dockerHost: target.dockerHost,
      docker: new Dockerode({
        protocol: 'http',
        host: options.host,
        port: options.port,
        agent,
      } as Docker.DockerOptions),
      retire: () => agent.retire(),
    };
  }

  /** Drops a client; calls in flight on it finish, then its connections close. */
  private evict(key: string): void {
    const client = this.clients.get(key);
    if (!client) return;
    this.clients.delete(key);
    client.retire();
  }

  /** An abort signal for one short call: the request timeout plus `extraMs`. */
  private deadline(extraMs = 0): AbortSignal {
    return AbortSignal.timeout(this.requestTimeoutMs + extraMs);
  }

  /** Runs one engine operation; a connection failure becomes Unavailable naming the host. */
  private async call<T>(
    target: DockerTarget,
    what: string,
    fn: (docker: Docker) => Promise<T>,
  ): Promise<T> {
    const docker = await this.client(target);
    try {
      return await fn(docker);
    } catch (e) {
      const refused = target.tls ? tlsFailure(e) : target.ssh ? sshFailure(e) : null;
      // A certificate or key the other side refuses stays refused: failing now beats retrying.
      if (refused)
        throw new Error(`docker ${what} on ${target.dockerHost} failed: ${refused}`, { cause: e });
      if (isConnectionError(e)) {
        const refusedHandshake = Boolean(target.tls) && isHangUp(e);
        throw new Unavailable(
          'docker',
          `${target.dockerHost}: ${messageOf(e)}${refusedHandshake ? tlsHangUpHint : ''}`,
          refusedHandshake ? { refusedHandshake: true } : undefined,
        );
      }
      if (isTimeout(e))
        throw new Unavailable(
          'docker',
          `${target.dockerHost}: no answer to ${what} within ${this.requestTimeoutMs} ms`,
        );
      if (isCoreError(e)) throw e;
      throw new Error(`docker ${what} on ${target.dockerHost} failed: ${messageOf(e)}`, {
        cause: e,
      });
    }
  }

  private async ensureImage(
    docker: Docker,
    image: string,
    options: ResolveImageOptions = {},
  ): Promise<string> {
    if (!options.refresh) {
      const local = await this.imageIdOrNull(docker, image);
      if (local) return local;
    }
    const pullTimeoutMs = this.options.pullTimeoutMs ?? 600_000;
    // The credential goes in the X-Registry-Auth header (dockerode's 4th argument), never
    // in the options, which it would put in the query string.
    const auth = options.auth
      ? {
          username: options.auth.username,
          password: options.auth.password,
          serveraddress: options.auth.server,
        }
      : undefined;
    try {
      // dockerode's types miss that pull without a callback resolves to the stream.
      const stream = (await docker.pull(
        image,
        { abortSignal: AbortSignal.timeout(pullTimeoutMs) },
        undefined as unknown as () => void,
        auth,
      )) as unknown as NodeJS.ReadableStream;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
          reject(new Error(`the pull did not finish in ${pullTimeoutMs} ms`));
        }, pullTimeoutMs);
        docker.modem.followProgress(stream, (err: Error | null) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        });
      });
    } catch (e) {
      if (isConnectionError(e)) throw e;
      if (options.refresh) throw new ImageRefreshFailed(image, messageOf(e));
      throw new ImageNotFound(image, messageOf(e));
    }
    const pulled = await this.imageIdOrNull(docker, image);
    if (!pulled)
      throw new ImageNotFound(image, 'the pull finished but the image is not on the node');
    return pulled;
  }

  /** Creates the container, pulling its image first when the engine does not have it. */
  private async create(
    docker: Docker,
    options: ContainerCreateOptions,
    internalNetwork = false,
  ): Promise<string> {
    const network = options.HostConfig?.NetworkMode;
    if (network && !['host', 'bridge', 'none', 'default'].includes(network))
      await this.ensureNetwork(docker, network, internalNetwork);
    try {
      return (await docker.createContainer(createRequest(options, this.deadline()))).id;
    } catch (e) {
      if (statusOf(e) !== 404 || !options.Image) throw e;
      await this.ensureImage(docker, options.Image);
      return (await docker.createContainer(createRequest(options, this.deadline()))).id;
    }
  }

  /**
   * Creates a user-defined bridge network when the engine has none of that name; two
   * creators racing both end with the one network (the loser's 409 is the answer wanted).
   */
  private async ensureNetwork(docker: Docker, name: string, internal = false): Promise<void> {
    try {
      await (
        docker.getNetwork(name).inspect as unknown as (o: {
          abortSignal: AbortSignal;
        }) => Promise<unknown>
      ).call(docker.getNetwork(name), { abortSignal: this.deadline() });
      return;
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
    }
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: internal,
        Labels: { 'selfdevop.network': internal ? 'drill' : 'project' },
        abortSignal: this.deadline(),
      } as Docker.NetworkCreateOptions);
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
    }
  }

  private async inspectOrNull(
    docker: Docker,
    nameOrId: string,
  ): Promise<ContainerInspectInfo | null> {
    try {
      return await docker
        .getContainer(nameOrId)
        .inspect({ abortSignal: this.deadline() } as Docker.ContainerInspectOptions);
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  private async imageIdOrNull(docker: Docker, image: string): Promise<string | null> {
    try {
      // The image id is the digest of its config: the same on every node holding that image,
      // and usable wherever a name is (create, inspect), also for images never pushed.
      return (
        await docker
          .getImage(image)
          .inspect({ abortSignal: this.deadline() } as Docker.ImageInspectOptions)
      ).Id;
    } catch (e) {
      if (statusOf(e) === 404) return null;
      throw e;
    }
  }

  private async startTolerant(docker: Docker, id: string): Promise<void> {
    try {
      await docker
        .getContainer(id)
        .start({ abortSignal: this.deadline() } as Docker.ContainerStartOptions);
    } catch (e) {
      if (statusOf(e) !== 304) throw e; // 304: already running
    }
  }

  private async removeTolerant(docker: Docker, nameOrId: string): Promise<void> {
    try {
      await docker
        .getContainer(nameOrId)
        .remove({ force: true, v: true, abortSignal: this.deadline() });
    } catch (e) {
      // 404: already gone; 409: removal already in progress.
      if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
    }
  }

  private async ensureRunning(docker: Docker, info: ContainerInspectInfo): Promise<ContainerInfo> {
    if (info.State.Status !== 'created' && info.State.Status !== 'exited') return toInfo(info);
    await this.startTolerant(docker, info.Id);
    return toInfo(
      await docker
        .getContainer(info.Id)
        .inspect({ abortSignal: this.deadline() } as Docker.ContainerInspectOptions),
    );
  }

  private async runCreated(
    docker: Docker,
    container: Docker.Container,
    timeoutMs: number,
    onLine?: (line: string) => void | Promise<void>,
  ): Promise<OneOffResult> {
    const tail = new OutputTail(this.options.maxOutputBytes ?? defaultMaxOutputBytes);
    const emit = (line: string): void | Promise<void> => {
      tail.push(line);
      return onLine?.(line);
    };
    const lines = new DemuxedLines(emit, this.options.maxLineLength);
    // Attach before start so not one line of a fast one-off is missed. Piped, so a slow
    // onLine pauses the socket and the engine holds the container's output back.
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const drained = new Promise<void>((resolve) => {
      lines.once('finish', () => resolve());
      stream.once('error', () => resolve());
    });
    stream.pipe(lines);

    try {
      await container.start({ abortSignal: this.deadline() } as Docker.ContainerStartOptions);
    } catch (e) {
      // A command that cannot be executed is the one-off failing, as `docker run` reports it
      // (127 not found, 126 not executable), not the engine failing.
      const exitCode = unstartableExitCode(e);
      if (exitCode === null) throw e;
      await Promise.resolve()
        .then(() => emit(messageOf(e)))
        .catch(() => undefined);
      return { exitCode, timedOut: false, output: tail.toString() };
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    try {
      const outcome = await Promise.race([
        container.wait() as Promise<{ StatusCode: number }>,
        timedOut,
      ]);
      if (outcome === 'timeout') {
        await container.kill({ abortSignal: this.deadline() }).catch((e: unknown) => {
          if (statusOf(e) !== 404 && statusOf(e) !== 409) throw e;
        });
      }
      // Why idle and not a fixed wait: the engine buffers what a container wrote while the
      // log sink held it back, and all of it is still on its way when the container is gone.
      const idleMs = this.options.drainOutputMs ?? 2000;
      const giveUp = Date.now() + Math.max(idleMs, 60_000);
      let done = false;
      void drained.then(() => (done = true));
      while (!done && Date.now() < giveUp && Date.now() - lines.lastWriteAt < idleMs)
        await Promise.race([drained, delay(Math.min(idleMs, 100))]);
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      if (!lines.writableFinished) {
        // Still draining after the grace: take the last partial lines and stop.
        stream.unpipe(lines);
        await new Promise<void>((resolve) => lines.end(resolve));
      }
      if (outcome === 'timeout') return { exitCode: null, timedOut: true, output: tail.toString() };
      return { exitCode: outcome.StatusCode, timedOut: false, output: tail.toString() };
    } finally {
      clearTimeout(timer);
    }
  }
}

// ------------------------------------------------------------------ helpers

/** Each engine client's data-root, once asked (it changes only with the engine's restart). */
const dataRoots = new WeakMap<Docker, string>();

/**
 * The literal a scanner may look for, as bytes: a past read (no follow, no tail) with a
 * filter that names one. Not one holding `…` or U+FFFD: a line's text gains those where its
 * bytes do not (a cut, an invalid byte), so only `test` can judge it (as `dockerLogLines`).
 */
function scannableLiteral(options: ContainerLogOptions): Buffer | null {
  const literal = options.filter?.literal;
  if (options.follow || options.tail !== undefined || !literal) return null;
  if (/[\u2026\uFFFD]/.test(literal)) return null;
  return Buffer.from(literal, 'utf8');
}

/**
 * The argument for dockerode's createContainer with only the name in the query string.
 * Why: docker-modem puts every option of a POST to a path ending in `?` into the URL as well
 * as the body, so the decrypted Env (secrets) would land in engine debug logs and proxy access
 * logs; `_query` and `_body` are how docker-modem takes the two apart. A fresh object per call,
 * because dockerode deletes abortSignal from what it is given.
 */
export function createRequest(
  options: ContainerCreateOptions,
  abortSignal: AbortSignal,
): ContainerCreateOptions {
  const { name, ...body } = options;
  return {
    _query: name === undefined ? {} : { name },
    _body: body,
    abortSignal,
  } as unknown as ContainerCreateOptions;
}

interface CachedClient {
  dockerHost: string;
  docker: Docker;
  /** Closes what the client holds once its calls in flight are done. */
  retire(): void;
}

function connectTimeoutAgent(tls: boolean, ms: number): http.Agent {
  const agent = tls ? new https.Agent() : new http.Agent();
  const create = agent.createConnection.bind(agent);
  // Why: without it a black-holed node hangs each call for the kernel's SYN retries (~2 min).
  // Only the connect is bounded; a long stop or wait on an open connection is not.
  agent.createConnection = ((options, callback) => {
    const socket = create(options, callback);
    if (socket) {
      const timer = setTimeout(() => {
        const error = Object.assign(
          new Error(`connect ETIMEDOUT ${options.host}:${options.port} (no answer in ${ms} ms)`),
          {
            code: 'ETIMEDOUT',
          },
        );
        socket.destroy(error);
      }, ms);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    }
    return socket;
  }) as typeof agent.createConnection;
  return agent;
}

const connectionCodes = new Set([
  'ECONNREFUSED',
  'ENOENT',
  'EACCES',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

function isConnectionError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const { code, level } = e as { code?: unknown; level?: unknown };
  // ssh2 marks its connection and authentication failures with level client-*.
  return (
    (typeof code === 'string' && connectionCodes.has(code)) ||
    (typeof level === 'string' && level.startsWith('client-'))
  );
}

// Node's codes for a server certificate that does not verify against the node's CA.
const certificateCodes = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * What went wrong in a TLS handshake, for the release's reason; null for other errors.
 * The engine's certificate failing our CA, or the engine's alert refusing our client
 * certificate (dockerd sends one: bad certificate, unknown CA, certificate required).
 */
function tlsFailure(e: unknown): string | null {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return null;
  if (certificateCodes.has(code)) {
    return `TLS handshake failed: the engine's certificate does not verify against the node's CA (${messageOf(e)}, ${code})`;
  }
  if (/^ERR_SSL_.*ALERT/.test(code)) {
    return `TLS handshake failed: the engine refused the node's client certificate (${code}); it must be signed by the CA the engine trusts (--tlscacert)`;
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))
    return `TLS handshake failed: ${messageOf(e)} (${code})`;
  return null;
}

/** What ssh2 refused, for the release's reason; null for other errors (network ones stay transient). */
function sshFailure(e: unknown): string | null {
  const level = (e as { level?: unknown } | null)?.level;
  const message = messageOf(e);
  if (level === 'handshake' && /Host denied/.test(message)) {
    return `SSH host key verification failed: the server's host key is not the one pinned for this node (${message})`;
  }
  if (level === 'client-authentication') {
    return `SSH authentication failed: the server does not accept the node's private key for that user (${message})`;
  }
  return null;
}

const isHangUp = (e: unknown) => (e as { code?: unknown } | null)?.code === 'ECONNRESET';

// Some TLS servers (Node's among them) refuse a client certificate under TLS 1.3 by closing
// the connection after the handshake, with no alert: say so, since it looks like a crash.
const tlsHangUpHint =
  ' (over TLS: an engine that refuses the client certificate closes the connection like this; check that it is signed by the CA the engine trusts)';

function unstartableExitCode(e: unknown): number | null {
  const status = statusOf(e);
  if (status !== 400 && status !== 500) return null;
  const message = messageOf(e);
  if (!/\bexec: /.test(message) && !/executable file not found/.test(message)) return null;
  return /permission denied/.test(message) ? 126 : 127;
}

function isTimeout(e: unknown): boolean {
  const { name, code } = (e ?? {}) as { name?: unknown; code?: unknown };
  return name === 'AbortError' || name === 'TimeoutError' || code === 'ABORT_ERR';
}

function statusOf(e: unknown): number | undefined {
  const status = (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

function messageOf(e: unknown): string {
  const json = (e as { json?: { message?: unknown } } | null)?.json;
  if (json && typeof json.message === 'string') return json.message;
  return e instanceof Error ? e.message.trim() : String(e);
}

function sink(splitter: LineSplitter): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      splitter.write(chunk);
      callback();
    },
  });
}

/**
 * Splits the engine's multiplexed attach stream (8-byte frame headers): stdout bytes go to
 * `out` with its backpressure (the callback waits for drain), stderr bytes to `onErr` as
 * they come (a frame's end is no line's end).
 */
class ByteDemux extends Writable {
  private header = Buffer.alloc(0);
  private remaining = 0;
  private current = 1;
  private readonly out: PassThrough;
  private readonly onErr: (bytes: Uint8Array) => void;
  constructor(out: PassThrough, onErr: (bytes: Uint8Array) => void) {
    super();
    this.out = out;
    this.onErr = onErr;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void): void {
    const stdoutParts: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining === 0) {
        const need = 8 - this.header.length;
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.header.length < 8) break;
        this.current = this.header[0]!;
        this.remaining = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - at);
      const part = chunk.subarray(at, at + n);
      if (this.current === 2) this.onErr(part);
      else stdoutParts.push(part);
      this.remaining -= n;
      at += n;
    }
    if (stdoutParts.length === 0) return callback();
    // The parts are views of the chunk (the HTTP parser's own copy), passed on as they are:
    // Buffer.concat copied every chunk again, one of the three allocations a backup's bytes
    // cost the control plane (with the parser's and the cipher's), each held until V8
    // collects external memory, which it does late.
    let open = true;
    for (const part of stdoutParts) open = this.out.write(part);
    if (open) return callback();
    this.out.once('drain', () => callback());
  }

  override _final(callback: (e?: Error) => void): void {
    this.out.end();
    callback();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function toState(status: string | undefined): ContainerInfo['state'] {
  return containerStates.has(status as ContainerInfo['state'])
    ? (status as ContainerInfo['state'])
    : 'dead';
}

function hostPort(ip: string | undefined, port: string | number): string {
  const host = !ip ? '0.0.0.0' : ip.includes(':') ? `[${ip}]` : ip;
  return `${host}:${port}`;
}

/** The first published tcp port, IPv4 binding first: selfdevop publishes one port per container. */
function publishedFromInspect(info: ContainerInspectInfo): string | null {
  if (info.State.Status !== 'running') return null;
  const ports = info.NetworkSettings?.Ports ?? {};
  const keys = Object.keys(ports)
    .filter((k) => k.endsWith('/tcp'))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
  for (const key of keys) {
    const bindings = (ports[key] ?? []).filter((b) => b.HostPort);
    const binding = bindings.find((b) => !b.HostIp.includes(':')) ?? bindings[0];
    if (binding) return hostPort(binding.HostIp, binding.HostPort);
  }
  return null;
}

/** Every tcp binding of a running container as the engine reported it; judged in core. */
function portsFromInspect(info: ContainerInspectInfo): PublishedPort[] {
  if (info.State.Status !== 'running') return [];
  const ports = info.NetworkSettings?.Ports ?? {};
  return Object.entries(ports).flatMap(([key, bindings]) => {
    const m = /^([0-9]+)\/tcp$/.exec(key);
    if (!m || !Array.isArray(bindings)) return [];
    return bindings.map((b) => ({
      containerPort: Number(m[1]),
      hostIp: String(b?.HostIp ?? ''),
      hostPort: String(b?.HostPort ?? ''),
    }));
  });
}

function portsFromList(item: DockerListItem): PublishedPort[] {
  if (item.State !== 'running') return [];
  return item.Ports.filter((p) => p.Type === 'tcp' && p.PublicPort).map((p) => ({
    containerPort: p.PrivatePort,
    hostIp: String(p.IP ?? ''),
    hostPort: String(p.PublicPort),
  }));
}

function publishedFromList(item: DockerListItem): string | null {
  if (item.State !== 'running') return null;
  const ports = item.Ports.filter((p) => p.Type === 'tcp' && p.PublicPort).sort(
    (a, b) => a.PrivatePort - b.PrivatePort,
  );
  const first = ports[0];
  if (!first) return null;
  const binding =
    ports.find((p) => p.PrivatePort === first.PrivatePort && !p.IP?.includes(':')) ?? first;
  return hostPort(binding.IP, binding.PublicPort);
}

/** The parts of the Engine's `/containers/{id}/stats` answer the usage reads. */
interface EngineStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; stats?: Record<string, number> };
}

/**
 * CPU time in seconds, and memory as `docker stats` shows it: usage less the inactive page
 * cache (`inactive_file` on cgroup v2, `total_inactive_file` on v1), which the kernel
 * reclaims first and which would make every file-reading app look full.
 */
export function usageFromStats(stats: EngineStats): ContainerUsage | null {
  const cpu = stats.cpu_stats?.cpu_usage?.total_usage;
  const memory = stats.memory_stats?.usage;
  if (typeof cpu !== 'number' || typeof memory !== 'number') return null;
  const s = stats.memory_stats?.stats ?? {};
  const cache = s.inactive_file ?? s.total_inactive_file ?? 0;
  return { cpuSeconds: cpu / 1e9, memoryBytes: Math.max(0, memory - cache) };
}

function toInfo(info: ContainerInspectInfo): ContainerInfo {
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    state: toState(info.State.Status),
    labels: { ...(info.Config.Labels ?? {}) },
    published: publishedFromInspect(info),
    restarts: info.RestartCount ?? 0,
    ports: portsFromInspect(info),
  };
}

function fromListItem(item: DockerListItem): ContainerInfo {
  return {
    id: item.Id,
    name: (item.Names[0] ?? '').replace(/^\//, ''),
    state: toState(item.State),
    labels: { ...(item.Labels ?? {}) },
    published: publishedFromList(item),
    ports: portsFromList(item),
  };
}

/** One streamed Engine API request through dockerode's modem (status 200 or an error). */
function dialStream(
  docker: Docker,
  options: Record<string, unknown>,
): Promise<NodeJS.ReadableStream> {
  const modem = (docker as unknown as { modem: ModemDial }).modem;
  return new Promise((resolve, reject) =>
    modem.dial(
      {
        ...options,
        isStream: true,
        statusCodes: { 200: true, 404: 'no such image', 500: 'server error' },
      },
      (err, data) => (err ? reject(err) : resolve(data as NodeJS.ReadableStream)),
    ),
  );
}

/** What of docker-modem a session build uses (dockerode's `modem`). */
interface ModemDial {
  dial(options: Record<string, unknown>, callback: (err: unknown, data: unknown) => void): void;
}

/**
 * A BuildClient whose BuildKit builds (`version: '2'`) run with this process's own session
 * (buildkit-session.ts: build-time secrets, no registry credentials) instead of dockerode's,
 * which serves registry credentials only. The session opens first (`POST /session`,
 * hijacked to h2c), then `POST /build?session=<id>`; it closes when the build's output ends
 * or fails. The legacy builder has no session: dockerode's own call.
 *
 * With `files`, the context is not uploaded: the build asks for `remote=client-session`, and
 * BuildKit's Dockerfile frontend reads the `context` and `dockerfile` locals from the session
 * (file sync), as docker buildx does; the session's shared key is `files.key`, under which
 * the engine keeps its copy of the context between builds, so the next build of the same
 * source is sent only what changed. An engine that answers no `/session` (before API 1.39,
 * so no BuildKit either) builds the tar with the legacy builder, unless secrets need the session.
 */
function sessionBuildClient(
  docker: Docker,
  secrets: Record<string, string>,
  files?: BuildSpec['files'],
): BuildClient & { transfer(): BuildResult['transfer']; settled(): Promise<void> } {
  const modem = (docker as unknown as { modem: ModemDial }).modem;
  const dial = (options: Record<string, unknown>) =>
    new Promise<unknown>((resolve, reject) =>
      modem.dial(options, (err, data) => (err ? reject(err) : resolve(data))),
    );
  let session: ReturnType<typeof serveBuildSession> | null = null;
  let checkout: Promise<void> = Promise.resolve();
  return {
    settled: () => checkout,
    transfer() {
      if (!files || !session) return undefined;
      const synced = session.synced;
      const paths = synced.flatMap((r) => r.requested);
      return {
        entries: synced.reduce((n, r) => n + r.entries, 0),
        requested: paths.length,
        paths: paths.slice(0, 100),
        bytes: synced.reduce((n, r) => n + r.bytes, 0),
      };
    },
    async buildImage(context, options) {
      if (options.version !== '2') return docker.buildImage(context, options);
      const id = randomUUID();
      let socket: Duplex;
      try {
        socket = (await dial({
          method: 'POST',
          path: '/session',
          hijack: true,
          headers: {
            Upgrade: 'h2c',
            'X-Docker-Expose-Session-Uuid': id,
            'X-Docker-Expose-Session-Name': 'selfdevop',
            // BuildKit finds its copy of a local by name, hint and this key: one per source.
            'X-Docker-Expose-Session-Sharedkey': files ? sharedKey(files.key) : '',
            'X-Docker-Expose-Session-Grpc-Method': files
              ? [...sessionMethods, fileSyncMethod]
              : sessionMethods,
          },
          statusCodes: { 101: true, 200: true, 500: 'server error' },
        })) as Duplex;
      } catch (e) {
        const status = (e as { statusCode?: unknown }).statusCode;
        if (status === 404 || status === 400) {
          if (Object.keys(secrets).length > 0)
            throw new Error(
              `the engine has no BuildKit session (POST /session answered ${status}), and build secrets need one`,
              { cause: e },
            );
          return docker.buildImage(context, { ...options, version: '1' });
        }
        throw e;
      }
      // Made once the engine took the session (no checkout for an engine that cannot use it),
      // while the build request goes out and the frontend starts: BuildKit asks for the
      // files only after that, and a request that comes first waits for the checkout.
      const dirs: SessionDirs = {};
      if (files) {
        const dir = files.open();
        checkout = dir.then(
          () => undefined,
          () => undefined,
        );
        // The Dockerfile is read from the same directory: `dockerfile` names its path in it.
        dirs.context = dir;
        dirs.dockerfile = dir;
      }
      const open = serveBuildSession(socket, secrets, dirs);
      session = open;
      const { abortSignal, ...query } = options;
      try {
        const response = (await dial({
          path: '/build?',
          method: 'POST',
          // The context travels over the session: the request's body is empty (without a
          // `file`, docker-modem would send the query again as a JSON body).
          file: files ? Buffer.alloc(0) : context,
          options: files
            ? { ...query, session: id, remote: 'client-session' }
            : { ...query, session: id },
          abortSignal,
          isStream: true,
          statusCodes: { 200: true, 500: 'server error' },
        })) as NodeJS.ReadableStream;
        const done = () => open.close();
        response.once('end', done);
        response.once('close', done);
        response.once('error', done);
        return response;
      } catch (e) {
        open.close();
        throw e;
      }
    },
  };
}

/** A session key the engine takes in a header: the source's key, hashed to hex. */
const sharedKey = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 32);
