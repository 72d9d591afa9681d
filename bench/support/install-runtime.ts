/**
 * The Node runtime an install gives a control-plane process: the V8 flags and environment of
 * selfhost/Dockerfile's `ENV NODE_OPTIONS=… MALLOC_ARENA_MAX=…` line, overridden by what
 * selfhost/docker-compose.yml sets for the process's service (`api` or `worker`). Read from
 * those files so a benchmark runs the control plane as an install runs it, and a change to
 * the image or the stack reaches the benchmarks without a second copy to keep in step.
 *
 * Why it matters: V8 sizes the young generation from the heap limit (a 16 MB semi-space on a
 * 24 GB host) where the image sets 4 MB (the worker's memory) and the stack gives the API
 * 8 MB (its tail latency), and they behave differently under load. With the default, bench:api's
 * server scavenged 48 MB every ~80 ms, copying the ~7 MB that 50 requests in flight held, in
 * pauses of 11–20 ms that every request in flight waited out (its p99); ARCHITECTURE.md,
 * "The tail: the young generation".
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const dockerfileUrl = new URL('../../selfhost/Dockerfile', import.meta.url);
const composeUrl = new URL('../../selfhost/docker-compose.yml', import.meta.url);

export type InstallRuntime = { nodeFlags: string[]; env: Record<string, string> };
export type InstallRole = 'api' | 'worker';

/**
 * The runtime of `role`'s service. The image's line names the variables that make the
 * runtime; the service's `environment` may override each. V8 flags Node refuses in
 * NODE_OPTIONS sit on the service's `command`, between `node` and the script: they come
 * after NODE_OPTIONS's, as on Node's command line. Throws naming the file when the image
 * sets no NODE_OPTIONS or the stack has no such service.
 */
export function installRuntime(
  role: InstallRole,
  files: { dockerfile: string; compose: string } = {
    dockerfile: readFileSync(dockerfileUrl, 'utf8'),
    compose: readFileSync(composeUrl, 'utf8'),
  },
): InstallRuntime {
  const line = files.dockerfile.split('\n').find((l) => /^ENV\s+NODE_OPTIONS=/.test(l));
  if (!line) throw new Error(`no 'ENV NODE_OPTIONS=' line in ${dockerfileUrl.pathname}`);
  const image: Record<string, string> = {};
  for (const m of line.slice('ENV'.length).matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g))
    image[m[1]!] = m[2] ?? m[3]!;
  const service = (
    parse(files.compose, { merge: true }) as {
      services?: Record<string, { environment?: Record<string, unknown>; command?: unknown }>;
    }
  ).services?.[role];
  if (!service) throw new Error(`no '${role}' service in ${composeUrl.pathname}`);
  const overrides = service.environment ?? {};
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(image))
    env[name] = typeof overrides[name] === 'string' ? (overrides[name] as string) : value;
  const { NODE_OPTIONS: options = '', ...rest } = env;
  const command = Array.isArray(service.command) ? service.command.map(String) : [];
  const commandFlags: string[] = [];
  for (const arg of command[0] === 'node' ? command.slice(1) : []) {
    if (!arg.startsWith('--')) break;
    commandFlags.push(arg);
  }
  return { nodeFlags: [...options.split(/\s+/).filter(Boolean), ...commandFlags], env: rest };
}

/** The variable that says a process already runs with a role's install runtime. */
const marker = 'SELFDEVOP_INSTALL_RUNTIME';

/**
 * Runs `args` (a script and its arguments) in a Node child with `role`'s install runtime,
 * `flags` before the install's; this process's SIGINT and SIGTERM are passed on. Resolves
 * with the child's exit code (1 for a child killed by a signal).
 */
export function runWithInstallRuntime(
  role: InstallRole,
  args: string[],
  options: { flags?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<number> {
  const runtime = installRuntime(role);
  const child = spawn(process.execPath, [...(options.flags ?? []), ...runtime.nodeFlags, ...args], {
    stdio: 'inherit',
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { ...process.env, ...runtime.env, ...options.env },
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))),
  );
}

/**
 * For a benchmark whose own process is the control plane (its memory is a goal): runs this
 * script again, once, with `role`'s install runtime, unless it already runs with it.
 * Resolves true in the parent once the child has exited (whose exit code the parent takes),
 * false in the child, which goes on with the benchmark.
 */
export async function relaunchWithInstallRuntime(role: InstallRole): Promise<boolean> {
  if (process.env[marker] === role) return false;
  process.exitCode = await runWithInstallRuntime(role, process.argv.slice(1), {
    flags: process.execArgv,
    env: { [marker]: role },
  });
  return true;
}

/** The install runtime this process runs with, if a relaunch gave it one. */
export const currentInstallRuntime = (): (InstallRuntime & { role: InstallRole }) | null => {
  const role = process.env[marker];
  return role === 'api' || role === 'worker' ? { role, ...installRuntime(role) } : null;
};
