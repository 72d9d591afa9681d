/**
 * Bundles each Lambda entry point with esbuild into its own asset folder (one ESM file,
 * minified, tree-shaken, for Node on Lambda), so `cdk synth` needs no Docker. The migrate
 * function also gets the SQL migrations beside its bundle.
 */
import { cp, mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const repoRoot = fileURLToPath(new URL('../', import.meta.url));
export const lambdaNames = ['api', 'worker', 'schedule', 'migrate', 'cognito-tokens'] as const;
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

/** Bundles one entry file into outDir/index.mjs; returns the file's size in bytes. */
export async function bundleEntry(entry: string, outDir: string): Promise<number> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const outfile = path.join(outDir, 'index.mjs');
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    treeShaking: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    banner: { js: requireShim },
    // Optional native add-ons of the pg, ssh2 and docker drivers: absent on Lambda, never loaded.
    external: ['pg-native', 'cpu-features', '*.node'],
    legalComments: 'none',
    logLevel: 'error',
  });
  return (await stat(outfile)).size;
}

/** Bundles every function into outDir/<name>/; returns the folder of each. */
export async function bundleLambdas(outDir = defaultOutDir): Promise<Record<LambdaName, string>> {
  const dirs = {} as Record<LambdaName, string>;
  for (const name of lambdaNames) {
    const dir = path.join(outDir, name);
    await bundleEntry(path.join(repoRoot, 'functions', 'lambda', `${name}.ts`), dir);
    dirs[name] = dir;
  }
  await cp(path.join(repoRoot, 'migrations'), path.join(dirs.migrate, 'migrations'), { recursive: true });
  return dirs;
}
