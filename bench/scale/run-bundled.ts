/**
 * `npm run bench:scale`: bundles bench/scale.ts with esbuild, as selfhost/build-images.sh
 * bundles the control plane an install runs, and runs the bundle with the install's flags.
 *
 * Why: the bench's control plane is this process (bench/scale/env.ts), and its memory is a
 * goal (`controlPlaneMemoryMb`). Run from the TypeScript sources, Node strips the types of
 * every module it loads with its WebAssembly stripper and keeps their source text: tens of
 * megabytes an install never pays, since it runs plain JavaScript from one bundle. The
 * bundle sits beside the modules it was made from (bench/scale/), so what they resolve
 * against `import.meta.url` (the migrations, the load child, multi-node.sh, the repository
 * root) resolves as it does from the sources. `node bench/scale.ts` still runs the sources.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runWithInstallRuntime } from '../support/install-runtime.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bundle = fileURLToPath(new URL('./.bundle.mjs', import.meta.url));
// CommonJS dependencies (dockerode, ssh2, pg) expect require, __dirname and __filename.
const banner =
  "import { createRequire as __sdoRequire } from 'node:module'; import { fileURLToPath as __sdoPath } from 'node:url'; const require = __sdoRequire(import.meta.url); const __filename = __sdoPath(import.meta.url); const __dirname = __sdoPath(new URL('.', import.meta.url));";
const built = spawnSync(
  `${root}node_modules/.bin/esbuild`,
  [
    'bench/scale.ts',
    '--bundle',
    '--platform=node',
    '--target=node24',
    '--format=esm',
    '--legal-comments=none',
    `--outfile=${bundle}`,
    '--external:pg-native',
    '--external:cpu-features',
    '--external:*.node',
    `--banner:js=${banner}`,
    '--log-level=error',
  ],
  { cwd: root, stdio: 'inherit' },
);
if (built.error || built.status !== 0) {
  console.error(
    `bench:scale: esbuild could not bundle bench/scale.ts (${built.error?.message ?? `exit ${built.status}`}); run npm ci`,
  );
  process.exit(1);
}
// The install's V8 flags and malloc arenas (selfhost/Dockerfile), and --expose-gc for a full
// collection before the memory figure is read.
process.exitCode = await runWithInstallRuntime('worker', [bundle, ...process.argv.slice(2)], {
  flags: ['--expose-gc'],
  cwd: root,
  env: { SELFDEVOP_BENCH_RUNTIME: 'bundle' },
});
