/**
 * The Node runtime an install gives the control plane: the V8 flags and environment of
 * selfhost/Dockerfile's `ENV NODE_OPTIONS=… MALLOC_ARENA_MAX=…` line, read from that line so
 * a benchmark runs the control plane as an install runs it, and a change to the image
 * reaches the benchmarks without a second copy to keep in step.
 *
 * Why it matters: V8 sizes the young generation from the heap limit (a 16 MB semi-space on a
 * 24 GB host) where the image sets 4 MB, and the two behave differently under load. With the
 * larger one, bench:api's server scavenged 48 MB every ~80 ms, copying the ~7 MB that 50
 * requests in flight held, in pauses of 11–20 ms that every request in flight waited out
 * (its p99); with the image's 4 MB, pauses of about 1 ms (`--trace-gc-nvp`, ARCHITECTURE.md).
 */
import { readFileSync } from 'node:fs';

const dockerfile = new URL('../../selfhost/Dockerfile', import.meta.url);

export type InstallRuntime = { nodeFlags: string[]; env: Record<string, string> };

/** Parses the Dockerfile's `ENV NODE_OPTIONS=…` line; throws naming the file if it has none. */
export function installRuntime(text = readFileSync(dockerfile, 'utf8')): InstallRuntime {
  const line = text.split('\n').find((l) => /^ENV\s+NODE_OPTIONS=/.test(l));
  if (!line) throw new Error(`no 'ENV NODE_OPTIONS=' line in ${dockerfile.pathname}`);
  const env: Record<string, string> = {};
  for (const m of line.slice('ENV'.length).matchAll(/(\w+)=(?:"([^"]*)"|(\S+))/g))
    env[m[1]!] = m[2] ?? m[3]!;
  const { NODE_OPTIONS: options = '', ...rest } = env;
  return { nodeFlags: options.split(/\s+/).filter(Boolean), env: rest };
}
