/**
 * A release worker process for crash tests: the self-hosted system built by fromSelfhost,
 * from the JSON settings in SDO_WORKER_SETTINGS, consuming the release queues and serving
 * no HTTP. Prints `ready` on stdout once it consumes; logs go to stderr; SIGTERM stops it
 * gracefully.
 *
 * With CRASH_AT / CRASH_WHEN / CRASH_MARKER it kills itself with SIGKILL at that operation
 * of the release engine's ports, as a machine that loses power would: no finally block,
 * no graceful shutdown, its queue job left active until it expires. The marker file is
 * created exclusively right before the kill, so a worker dies at most once per marker.
 * Production code is untouched: only the port objects the workers are handed are wrapped.
 *
 * @example CRASH_AT=edge.put CRASH_WHEN=after CRASH_MARKER=/tmp/m SDO_WORKER_SETTINGS='{…}' node test/support/crash-worker.ts
 */
import { writeFileSync } from 'node:fs';
import { fromSelfhostSettings } from './selfhost-config.ts';
import type { ReleaseDeps } from '../../core/releases/deps.ts';
import type { ContainerRuntime, EdgeRouter, EventQueue, HealthProbe } from '../../core/ports.ts';
import { workerEnv, type CrashRecord, type WorkerSettings } from './worker-process.ts';

const settingsJson = process.env[workerEnv.settings];
if (!settingsJson) {
  process.stderr.write(`${workerEnv.settings} must hold the worker's settings as JSON\n`);
  process.exit(2);
}
const settings = JSON.parse(settingsJson) as WorkerSettings;
const crashAt = process.env[workerEnv.crashAt] ?? '';
const crashWhen = process.env[workerEnv.crashWhen] ?? 'before';
const marker = process.env[workerEnv.crashMarker] ?? '';
if (crashAt && !marker) {
  process.stderr.write(
    `${workerEnv.crashAt} needs ${workerEnv.crashMarker}, or the worker would die on every delivery\n`,
  );
  process.exit(2);
}

/** Never settles: what a wrapped call returns once the kill is under way. */
const never = <T>() => new Promise<T>(() => undefined);

/** Writes the marker and SIGKILLs this process; false when it crashed before (marker exists). */
function crash(detail: string): boolean {
  const record: CrashRecord = { at: crashAt, when: crashWhen, pid: process.pid, detail };
  try {
    writeFileSync(marker, JSON.stringify(record), { flag: 'wx' });
  } catch {
    return false;
  }
  process.kill(process.pid, 'SIGKILL');
  return true;
}

/**
 * Replaces `method` of `target` with one that crashes before or after the original when
 * `matches(args)`; the original runs untouched otherwise.
 */
function crashAround<T extends object>(
  target: T,
  method: keyof T & string,
  matches: (args: unknown[]) => string | null = (args) => String(args[1] ?? args[0]),
): void {
  const original = (target[method] as (...a: unknown[]) => Promise<unknown>).bind(target);
  const wrapped = async (...args: unknown[]): Promise<unknown> => {
    const detail = matches(args);
    if (detail !== null && crashWhen === 'before' && crash(detail)) return never();
    const result = await original(...args);
    if (detail !== null && crashWhen === 'after' && crash(detail)) return never();
    return result;
  };
  Object.assign(target, { [method]: wrapped });
}

function armCrash(release: ReleaseDeps): void {
  const [what, ...qualifiers] = crashAt.split(':');
  const runtime: ContainerRuntime = release.runtime;
  const specName = (args: unknown[]) => (args[1] as { name: string }).name;
  switch (what) {
    case 'runtime.resolveImage':
      return crashAround(runtime, 'resolveImage');
    case 'runtime.start':
      return crashAround(runtime, 'start', specName);
    case 'runtime.stop':
      return crashAround(runtime, 'stop');
    case 'runtime.runOnce': {
      if (crashWhen !== 'during') return crashAround(runtime, 'runOnce', specName);
      // Dies while the one-off runs: on its first output line, its container still there.
      const original = runtime.runOnce.bind(runtime);
      runtime.runOnce = (target, spec, timeoutMs, onLine) =>
        original(target, spec, timeoutMs, (line) => {
          if (crash(`${spec.name}: ${line}`)) return;
          onLine?.(line);
        });
      return;
    }
    case 'probe.check':
      return crashAround<HealthProbe>(release.probe, 'check', (args) => String(args[0]));
    case 'edge.put':
      return crashAround<EdgeRouter>(release.edge, 'put', (args) => JSON.stringify(args[0]));
    case 'queue.send': {
      const [queue, status] = qualifiers;
      return crashAround<EventQueue>(release.queue, 'send', (args) => {
        const payload = args[1] as { status?: string } | undefined;
        if (queue !== undefined && args[0] !== queue) return null;
        if (status !== undefined && payload?.status !== status) return null;
        return `${String(args[0])} ${JSON.stringify(payload)}`;
      });
    }
    default:
      throw new Error(
        `${workerEnv.crashAt}=${crashAt} names no operation this worker can crash at`,
      );
  }
}

async function main(): Promise<void> {
  const system = await fromSelfhostSettings({
    ...settings,
    logDestination: { write: (line) => void process.stderr.write(line) },
  });
  if (crashAt) armCrash(system.release);
  await system.startWorkers();
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    system.close().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(
          `worker did not close cleanly: ${e instanceof Error ? e.stack : String(e)}\n`,
        );
        process.exit(1);
      },
    );
  });
  process.stdout.write('ready\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`worker failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
