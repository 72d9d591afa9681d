/**
 * The Caddy `npm start` brings when no CADDY_ADMIN_URL is given: a `caddy` binary run as a
 * child process, or else a container on the local Docker Engine (through the runtime port),
 * sharing the host's network so its admin API stays on loopback and it reaches this
 * process's ask endpoint and upstream DNS as the tests' Caddy does. Its config file,
 * autosave and certificates live under one state directory (DATA_DIR/caddy).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerRuntime, DockerTarget } from '../../core/ports.ts';
import { CaddyEdgeRouter } from './caddy.ts';

export interface OwnCaddyOptions {
  /** The whole config Caddy starts from, given where it keeps certificates as it sees it. */
  config: (storageRoot: string) => Record<string, unknown>;
  /** host:port of the admin API (the config's admin.listen). */
  adminListen: string;
  /** The servers' listen addresses (`:80`, `127.0.0.1:8443`), checked free before Caddy starts. */
  listens: string[];
  /** Its config file, autosave (config/) and certificates (data/). */
  stateDir: string;
  /** An explicit binary (CADDY_BIN): run, or fail naming it; never swapped for another. */
  binary?: string;
  /** The directories a binary named without a slash is looked for in (the process's PATH, read by the config module). */
  searchPath: string;
  /** Where to run a container when no binary is found. */
  container?: { runtime: ContainerRuntime; target: DockerTarget; images: string[] };
  readyTimeoutMs?: number;
}

export interface OwnCaddy {
  adminUrl: string;
  /** What runs, in words: `caddy binary /usr/local/bin/caddy` or `container … (image)`. */
  runs: string;
  stop(): Promise<void>;
}

/** Neither a caddy binary nor a usable Docker Engine and image: what was tried, in words. */
export class NoCaddyAvailable extends Error {
  readonly tried: string[];
  constructor(tried: string[]) {
    super(`no Caddy to run: ${tried.join('; ')}`);
    this.name = 'NoCaddyAvailable';
    this.tried = tried;
  }
}

/** Caddy could not bind one of its addresses; `address` is as the config gave it. */
export class CaddyListenFailed extends Error {
  readonly address: string;
  constructor(address: string, why: string) {
    super(why);
    this.name = 'CaddyListenFailed';
    this.address = address;
  }
}

/** Caddy's output for a failed bind, in words, or null. */
export function listenFailureOf(output: string): CaddyListenFailed | null {
  const m =
    /listen tcp (\S+): bind: (address already in use|permission denied|cannot assign requested address)/.exec(
      output,
    );
  if (!m) return null;
  const address = m[1]!;
  const port = address.slice(address.lastIndexOf(':') + 1);
  const why =
    m[2] === 'address already in use'
      ? `port ${port} is already in use`
      : m[2] === 'permission denied'
        ? `binding port ${port} needs root (ports below 1024 are privileged)`
        : `${address.slice(0, address.lastIndexOf(':'))} is not an address of this machine`;
  return new CaddyListenFailed(address, why);
}

const readyLine = 'serving initial configuration';

/** The caddy binary to run: `explicit` if given (a path, or a name looked up on PATH), else `caddy` on PATH. */
export async function findCaddyBinary(
  explicit: string | undefined,
  envPath: string,
): Promise<string | null> {
  const name = explicit ?? 'caddy';
  const candidates = name.includes('/')
    ? [name]
    : envPath
        .split(path.delimiter)
        .filter(Boolean)
        .map((d) => path.join(d, name));
  for (const file of candidates) {
    if (
      await access(file, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return file;
  }
  return null;
}

/**
 * Starts Caddy on `config` and resolves once it serves it. Throws CaddyListenFailed when an
 * address is taken, NoCaddyAvailable when there is nothing to run.
 */
export async function startOwnCaddy(options: OwnCaddyOptions): Promise<OwnCaddy> {
  const stateDir = path.resolve(options.stateDir);
  await mkdir(path.join(stateDir, 'data'), { recursive: true, mode: 0o700 });
  await mkdir(path.join(stateDir, 'config'), { recursive: true, mode: 0o700 });
  await stopLeftovers(stateDir, options.container);
  // A Caddy left running by an earlier start would answer on the admin port in this one's
  // place, and Caddy binds its servers with SO_REUSEPORT, so a second Caddy on a taken
  // port starts fine and silently shares the traffic: a plain bind test first catches both.
  for (const listen of [options.adminListen, ...options.listens]) await assertFree(listen);
  const tried: string[] = [];
  const released = (caddy: OwnCaddy): OwnCaddy => ({
    ...caddy,
    stop: async () => {
      await caddy.stop();
      await rm(path.join(stateDir, 'owner.pid'), { force: true });
    },
  });
  const binary = await findCaddyBinary(options.binary, options.searchPath);
  if (binary) return released(await startBinary(binary, stateDir, options));
  tried.push(
    options.binary
      ? `CADDY_BIN ${options.binary} is not an executable file`
      : 'no caddy binary on PATH',
  );
  if (options.binary) throw new NoCaddyAvailable(tried);
  if (options.container) {
    const started = await startContainer(stateDir, options, options.container, tried);
    if (started) return released(started);
  }
  throw new NoCaddyAvailable(tried);
}

const containerNameOf = (stateDir: string) =>
  `selfdevop-caddy-${createHash('sha256').update(stateDir).digest('hex').slice(0, 12)}`;
const pidFileOf = (stateDir: string) => path.join(stateDir, 'caddy.pid');
const configFileOf = (stateDir: string) => path.join(stateDir, 'caddy.json');

/** Another live process already runs this state directory's Caddy. */
export class CaddyStateInUse extends Error {
  constructor(stateDir: string, owner: number) {
    super(`${stateDir} is in use by another selfdevop (pid ${owner})`);
    this.name = 'CaddyStateInUse';
  }
}

/** A live process running the same program as this one (a reused pid is someone else). */
async function isSelfdevop(pid: number): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
  return cmdline !== null && cmdline.includes(path.basename(process.argv[1] ?? process.execPath));
}

/**
 * A selfdevop killed without its shutdown (SIGKILL, a crash) leaves its Caddy holding the
 * ports. When the process that started this directory's Caddy is gone, that Caddy (known by
 * its config file or its container name) is stopped; while it lives, this start is refused.
 */
async function stopLeftovers(
  stateDir: string,
  container: OwnCaddyOptions['container'],
): Promise<void> {
  const ownerFile = path.join(stateDir, 'owner.pid');
  const owner = Number((await readFile(ownerFile, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && (await isSelfdevop(owner)))
    throw new CaddyStateInUse(stateDir, owner);
  await writeFile(ownerFile, `${process.pid}\n`);
  const pid = Number((await readFile(pidFileOf(stateDir), 'utf8').catch(() => '')).trim());
  if (Number.isInteger(pid) && pid > 0) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(configFileOf(stateDir))) {
      process.kill(pid, 'SIGTERM');
      for (
        let i = 0;
        i < 100 &&
        (await access(`/proc/${pid}`).then(
          () => true,
          () => false,
        ));
        i++
      )
        await sleep(50);
    }
  }
  if (container)
    await container.runtime
      .remove(container.target, containerNameOf(stateDir))
      .catch(() => undefined);
}

function assertFree(listen: string): Promise<void> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1') || undefined;
  const port = Number(listen.slice(i + 1));
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE')
        reject(new CaddyListenFailed(listen, `port ${port} is already in use`));
      else if (e.code === 'EADDRNOTAVAIL')
        reject(new CaddyListenFailed(listen, `${host} is not an address of this machine`));
      // Anything else (a privileged port the caddy binary may hold a capability for) is Caddy's to judge.
      else resolve();
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

async function startBinary(
  binary: string,
  stateDir: string,
  options: OwnCaddyOptions,
): Promise<OwnCaddy> {
  const configFile = configFileOf(stateDir);
  await writeFile(configFile, JSON.stringify(options.config(path.join(stateDir, 'data'))), {
    mode: 0o600,
  });
  // HOME and the XDG dirs keep autosave.json and locks under stateDir, away from the
  // machine's own Caddy state; nothing else of selfdevop's environment (its secrets) goes in.
  const child = spawn(binary, ['run', '--config', configFile, '--pidfile', pidFileOf(stateDir)], {
    env: {
      PATH: options.searchPath,
      HOME: stateDir,
      XDG_DATA_HOME: path.join(stateDir, 'data'),
      XDG_CONFIG_HOME: path.join(stateDir, 'config'),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => (output = (output + c).slice(-16_000)));
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (e) => {
      output += `\n${e.message}`;
      resolve();
    });
  });
  void exited.then(() => (running = false));
  const stop = async () => {
    if (!running) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(killer);
  };
  const adminUrl = `http://${options.adminListen}`;
  await waitReady(adminUrl, options.readyTimeoutMs, async () => ({ running, output }), stop);
  return { adminUrl, runs: `caddy binary ${binary}`, stop };
}

async function startContainer(
  stateDir: string,
  options: OwnCaddyOptions,
  docker: NonNullable<OwnCaddyOptions['container']>,
  tried: string[],
): Promise<OwnCaddy | null> {
  const { runtime, target } = docker;
  try {
    await runtime.ping(target);
  } catch (e) {
    tried.push(
      `no Docker Engine at ${target.dockerHost} (${e instanceof Error ? e.message : String(e)})`,
    );
    return null;
  }
  let image: string | null = null;
  for (const candidate of docker.images) {
    try {
      await runtime.resolveImage(target, candidate);
      image = candidate;
      break;
    } catch {
      tried.push(`no image ${candidate} (not built here, and it could not be pulled)`);
    }
  }
  if (!image) return null;
  await writeFile(
    path.join(stateDir, 'config', 'selfdevop-caddy.json'),
    JSON.stringify(options.config('/data/caddy')),
    { mode: 0o600 },
  );
  // selfhost/images/caddy's entrypoint resumes from an autosave when there is one; this
  // Caddy must start from the config just written (its addresses come from this start).
  await rm(path.join(stateDir, 'config', 'caddy', 'autosave.json'), { force: true });
  const name = containerNameOf(stateDir);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  await runtime.start(target, {
    name,
    image,
    // The selfdevop image reads CADDY_BASE_CONFIG; the official one runs the command.
    env: {
      CADDY_BASE_CONFIG: '/config/selfdevop-caddy.json',
      XDG_DATA_HOME: '/data',
      XDG_CONFIG_HOME: '/config',
    },
    cmd: ['caddy', 'run', '--config', '/config/selfdevop-caddy.json'],
    labels: { 'selfdevop.edge': stateDir },
    restartPolicy: 'no',
    hostNetwork: true,
    binds: [`${path.join(stateDir, 'data')}:/data`, `${path.join(stateDir, 'config')}:/config`],
    user: `${uid}:${gid}`,
  });
  let output = '';
  const logs = new AbortController();
  void runtime
    .followLogs?.(
      target,
      name,
      (line) => (output = (output + line + '\n').slice(-16_000)),
      logs.signal,
    )
    .catch(() => undefined);
  const stop = async () => {
    logs.abort();
    await runtime.stop(target, name, 5).catch(() => undefined);
    await runtime.remove(target, name).catch(() => undefined);
  };
  const adminUrl = `http://${options.adminListen}`;
  const state = async () => ({
    running: (await runtime.inspect(target, name))?.state === 'running',
    output,
  });
  await waitReady(adminUrl, options.readyTimeoutMs, state, stop);
  return { adminUrl, runs: `container ${name} (${image})`, stop };
}

async function waitReady(
  adminUrl: string,
  timeoutMs = 20_000,
  state: () => Promise<{ running: boolean; output: string }>,
  stop: () => Promise<void>,
): Promise<void> {
  const admin = new CaddyEdgeRouter({ adminUrl, timeoutMs: 2_000 });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { running, output } = await state();
    if (!running) {
      await stop();
      throw (
        listenFailureOf(output) ??
        new Error(`caddy exited before serving its config:\n${lastLines(output)}`)
      );
    }
    // Caddy answers on its admin API before its servers are up; the log line comes after.
    if (
      output.includes(readyLine) &&
      (await admin.ping().then(
        () => true,
        () => false,
      ))
    )
      return;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `caddy did not serve its config at ${adminUrl} within ${timeoutMs} ms:\n${lastLines(output)}`,
      );
    }
    await sleep(50);
  }
}

function lastLines(output: string): string {
  return output.trim().split('\n').slice(-5).join('\n');
}
