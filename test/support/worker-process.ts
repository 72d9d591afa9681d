/**
 * Release workers in processes of their own, so a test can kill one the way a machine dies
 * (SIGKILL: no finally, no graceful shutdown, its queue job left active) and start another.
 * The process is test/support/crash-worker.ts; this file spawns it and waits on it.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SelfhostTestSettings } from './selfhost-config.ts';

const script = join(dirname(fileURLToPath(import.meta.url)), 'crash-worker.ts');
const selfhostWorkerScript = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../functions/selfhost/worker.ts',
);

/** The environment variables crash-worker.ts reads. */
export const workerEnv = {
  settings: 'SDO_WORKER_SETTINGS',
  crashAt: 'CRASH_AT',
  crashWhen: 'CRASH_WHEN',
  crashMarker: 'CRASH_MARKER',
} as const;

/** What the worker process is built from: the self-hosted settings, as JSON. */
export type WorkerSettings = Omit<SelfhostTestSettings, 'logDestination'>;

/**
 * The operation a crash worker dies at. `queue.send` takes an optional `:<queue>` and
 * `:<step status>` (`queue.send:release-steps:candidate_started`) so it dies at one send.
 */
export type CrashOperation =
  | 'runtime.resolveImage'
  | 'runtime.start'
  | 'runtime.runOnce'
  | 'runtime.stop'
  | 'probe.check'
  | 'edge.put'
  | `queue.send${'' | `:${string}`}`;

export interface CrashPoint {
  at: CrashOperation;
  /** `during` is for runtime.runOnce only: on the one-off's first output line. */
  when: 'before' | 'after' | 'during';
  /** Created (exclusively) right before the kill: the worker dies at most once per marker. */
  marker: string;
}

/** What a crash worker wrote to its marker before it killed itself. */
export interface CrashRecord {
  at: string;
  when: string;
  pid: number;
  /** The operation's argument that triggered it (container name, URL, queue message). */
  detail: string;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  pid: number;
  /** Settles once the process has exited. */
  exited: Promise<Exit>;
  /** The last 20 kB the process wrote (its JSON log lines and any error). */
  output(): string;
  /** Resolves with the exit, or throws naming what the process last wrote, after timeoutMs. */
  waitForExit(timeoutMs: number): Promise<Exit>;
  /** SIGTERM (the worker finishes its steps and closes), SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<Exit>;
}

const running = new Set<WorkerProcess>();

/**
 * Spawns a worker (crashing at `crash` when given) and waits until it consumes the
 * release queues; throws with its output when it exits or stays silent for readyMs.
 */
export async function startWorkerProcess(
  settings: WorkerSettings,
  crash?: CrashPoint,
  readyMs = 30_000,
): Promise<WorkerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, [workerEnv.settings]: JSON.stringify(settings) };
  if (crash) {
    env[workerEnv.crashAt] = crash.at;
    env[workerEnv.crashWhen] = crash.when;
    env[workerEnv.crashMarker] = crash.marker;
  }
  return spawnWorker(
    script,
    env,
    (stdout) => stdout.includes('\nready\n') || stdout.startsWith('ready\n'),
    readyMs,
  );
}

/**
 * Spawns the production worker (functions/selfhost/worker.ts, the compose `worker` service)
 * configured by `env` alone, as in a container, and waits until it logs that it is up.
 */
export async function startSelfhostWorker(
  env: Record<string, string>,
  readyMs = 30_000,
): Promise<WorkerProcess> {
  // vitest sets MODE=test; the worker runs as deployed. Its usage collector is off unless
  // a test asks (parallel workers would all want STATS_LISTEN's one port).
  return spawnWorker(
    selfhostWorkerScript,
    { ...process.env, MODE: 'selfhost', STATS_INTERVAL_SECONDS: '0', ...env },
    (stdout) => stdout.includes('selfdevop worker is up'),
    readyMs,
  );
}

async function spawnWorker(
  entry: string,
  env: NodeJS.ProcessEnv,
  isReady: (stdout: string) => boolean,
  readyMs: number,
): Promise<WorkerProcess> {
  // process.execPath is the Node 24 running the tests, which runs the script's TypeScript.
  const child = spawn(process.execPath, [entry], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (c: string) => {
    output = (output + c).slice(-20_000);
  };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keep);
  child.stdout.setEncoding('utf8');
  let stdout = '';
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (c: string) => {
      stdout += c;
      keep(c);
      if (isReady(stdout)) resolve();
    });
  });
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let done: Exit | null = null;
  void exited.then((e) => (done = e));

  const waitForExit = async (timeoutMs: number): Promise<Exit> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<null>(
      (resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)),
    );
    const exit = await Promise.race([exited, late]);
    clearTimeout(timer);
    if (!exit)
      throw new Error(
        `worker ${child.pid} still running after ${timeoutMs} ms; it wrote:\n${output}`,
      );
    return exit;
  };

  const worker: WorkerProcess = {
    pid: child.pid!,
    exited,
    output: () => output,
    waitForExit,
    async stop(graceMs = 15_000) {
      if (!done) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(killer);
      }
      running.delete(worker);
      return exited;
    },
  };
  running.add(worker);
  void exited.then(() => running.delete(worker));

  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exited.then(() => 'exited' as const),
    new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), readyMs))),
  ]);
  clearTimeout(timer);
  if (outcome !== 'ready') {
    await worker.stop(1000);
    throw new Error(
      `worker process ${outcome === 'late' ? `not ready within ${readyMs} ms` : 'exited before it was ready'}:\n${output}`,
    );
  }
  return worker;
}

/** Stops every worker process this test process started and that still runs (afterAll). */
export async function stopAllWorkers(): Promise<void> {
  await Promise.all([...running].map((w) => w.stop(5000)));
}
