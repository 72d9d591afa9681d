/**
 * Bundles each Lambda entry point with esbuild into its own asset folder (ESM, minified,
 * tree-shaken, for Node on Lambda), so `cdk synth` needs no Docker. Code splitting puts what
 * the code loads with `await import()` (dockerode, for one) into chunks beside index.mjs that
 * Node reads only when first used, so a cold start reads index.mjs and its static imports
 * alone. The migrate function also gets the SQL migrations beside its bundle.
 */
import { cp, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

export const repoRoot = fileURLToPath(new URL('../', import.meta.url));
export const lambdaNames = [
  'api',
  'worker',
  'schedule',
  'migrate',
  'cognito-tokens',
  'node-checks',
] as const;
export type LambdaName = (typeof lambdaNames)[number];

// Under dist/, which git and eslint already ignore.
export const defaultOutDir = path.join(repoRoot, 'dist', 'lambda');

// CommonJS dependencies call require() for Node built-ins and read __dirname; an ESM
// bundle has neither, and Node refuses a module that uses __dirname beside top-level await.
const requireShim = [
  "import { createRequire as __sdoCreateRequire } from 'node:module';",
  "import { fileURLToPath as __sdoFileURLToPath } from 'node:url';",
  "import { dirname as __sdoDirname } from 'node:path';",
  'const require = __sdoCreateRequire(import.meta.url);',
  'const __filename = __sdoFileURLToPath(import.meta.url);',
  'const __dirname = __sdoDirname(__filename);',
].join(' ');

/**
 * pino's transports run in a worker started through thread-stream; the functions log JSON
 * lines to stdout and never start one, so the bundle carries a stub that says so instead.
 */
const withoutPinoTransports: Plugin = {
  name: 'without-pino-transports',
  setup(b) {
    b.onResolve({ filter: /^thread-stream$/ }, () => ({
      path: 'thread-stream',
      namespace: 'without-pino-transports',
    }));
    b.onLoad({ filter: /.*/, namespace: 'without-pino-transports' }, () => ({
      contents:
        "module.exports = class ThreadStream { constructor() { throw new Error('pino transports are not bundled into the Lambda functions: they log JSON lines to stdout'); } };",
      loader: 'js',
    }));
  },
};

export interface BundleSizes {
  /** What a cold start reads: index.mjs plus every chunk it imports statically, transitively. */
  initBytes: number;
  /** Everything in the folder's code: index.mjs and all chunks, the lazily loaded ones too. */
  totalBytes: number;
  /** The output files, relative to the bundle's folder. */
  files: string[];
  /** The output files a cold start reads (metafile output keys): index.mjs and its static imports. */
  initOutputs: string[];
  /** esbuild's metafile, for `analyzeMetafile`. */
  metafile: Metafile;
}

/** Splits a metafile's outputs into what loading `entry` reads at once and what it may load later. */
export function sizesOf(metafile: Metafile, entry: string, outDir: string): BundleSizes {
  const outputs = metafile.outputs;
  const totalBytes = Object.values(outputs).reduce((sum, o) => sum + o.bytes, 0);
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    // A dynamic import is read when the code first runs it, not when the module loads.
    for (const i of outputs[file]?.imports ?? [])
      if (i.kind === 'import-statement' && !i.external) queue.push(i.path);
  }
  const initBytes = [...seen].reduce((sum, f) => sum + (outputs[f]?.bytes ?? 0), 0);
  const files = Object.keys(outputs).map((f) => path.relative(outDir, path.resolve(f)));
  return { initBytes, totalBytes, files, initOutputs: [...seen], metafile };
}

/** Bundles one entry file into outDir/index.mjs plus chunks under outDir/chunks/; returns their sizes. */
export async function bundleEntry(entry: string, outDir: string): Promise<BundleSizes> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const result = await build({
    entryPoints: { index: entry },
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    splitting: true,
    metafile: true,
    bundle: true,
    minify: true,
    treeShaking: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    // On every output file: a chunk holding CommonJS code needs require and __dirname as much as the entry.
    banner: { js: requireShim },
    // Optional native add-ons of the pg, ssh2 and docker drivers: absent on Lambda, never loaded.
    external: ['pg-native', 'cpu-features', '*.node'],
    plugins: [withoutPinoTransports],
    legalComments: 'none',
    logLevel: 'error',
  });
  const entryOut = path.relative(process.cwd(), path.join(outDir, 'index.mjs'));
  return sizesOf(result.metafile, entryOut, outDir);
}

/** Bundles every function into outDir/<name>/; returns the folder of each and its sizes. */
export async function bundleLambdasWithSizes(
  outDir = defaultOutDir,
): Promise<{ dirs: Record<LambdaName, string>; sizes: Record<LambdaName, BundleSizes> }> {
  const dirs = {} as Record<LambdaName, string>;
  const sizes = {} as Record<LambdaName, BundleSizes>;
  for (const name of lambdaNames) {
    const dir = path.join(outDir, name);
    sizes[name] = await bundleEntry(path.join(repoRoot, 'functions', 'lambda', `${name}.ts`), dir);
    dirs[name] = dir;
  }
  await cp(path.join(repoRoot, 'migrations'), path.join(dirs.migrate, 'migrations'), {
    recursive: true,
  });
  return { dirs, sizes };
}

/** Bundles every function into outDir/<name>/; returns the folder of each (the CDK asset: index.mjs and its chunks). */
export async function bundleLambdas(outDir = defaultOutDir): Promise<Record<LambdaName, string>> {
  return (await bundleLambdasWithSizes(outDir)).dirs;
}
