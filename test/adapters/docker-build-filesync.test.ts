/**
 * Build contexts served as files over the BuildKit session (file sync, `remote=client-session`),
 * on the real Docker Engine: the image holds the same files as the same context uploaded as a
 * tar (.dockerignore honoured, a symlink, an empty directory, an executable bit); a rebuild
 * after one file changed is sent that file alone (the REQ packets served are counted); a
 * context without its Dockerfile is a failed build naming it.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { BuildSpec } from '../../core/ports.ts';
import { dockerTarget, ensureTestImages, removeImagesByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';

const run = promisify(execFile);
const hasDocker = await available('docker');
if (!hasDocker && process.env.CI === 'true')
  throw new Error('docker-build-filesync needs the Docker Engine under CI=true');
if (!hasDocker) console.warn('SKIPPED docker-build-filesync: no Docker Engine here');

const runId = `${process.pid}-${Date.now()}`;
const label = { 'selfdevop.test': `build-filesync-${runId}` };

/** Lists /ctx as the image holds it: type and mode, owner, size, link target, content hash. */
const dockerfile = `FROM selfdevop-test/busybox:base
ENV RUN_ID=${runId}
COPY . /ctx
RUN cd /ctx && find . | sort | while read -r f; do \\
      if [ -L "$f" ]; then echo "$f link $(readlink "$f")"; \\
      elif [ -d "$f" ]; then echo "$f dir $(stat -c '%A %u:%g' "$f")"; \\
      else echo "$f file $(stat -c '%A %u:%g %s' "$f") $(md5sum < "$f" | cut -c1-32)"; fi; \\
    done > /listing
`;

/**
 * A tar of `dir` as the worker would send it: .dockerignore applied, owners 0:0. Spawned on
 * the first read, as the source's own `git archive` is: a tar spawned earlier can finish
 * into the pipe before the build reads it (a small context fits in the pipe and the
 * stream's buffer), and Node then resumes the exited child's unread stdout and drops it,
 * which sent an empty context ("the Dockerfile cannot be empty").
 */
async function* tarOfDir(dir: string, exclude: string[]): AsyncGenerator<Uint8Array> {
  const child = spawn(
    'tar',
    [
      '-c',
      '--numeric-owner',
      '--owner=0',
      '--group=0',
      ...exclude.map((e) => `--exclude=./${e}`),
      '-f',
      '-',
      '-C',
      dir,
      '.',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  for await (const chunk of child.stdout) yield chunk as Uint8Array;
  const code = await exited;
  if (code !== 0) throw new Error(`tar of ${dir} exited ${code}`);
}

describe.skipIf(!hasDocker)('build contexts over BuildKit file sync', () => {
  const runtime = new DockerRuntime();
  let root: string;
  beforeAll(async () => {
    await ensureTestImages();
    root = await mkdtemp(path.join(os.tmpdir(), 'sdo-filesync-'));
  });
  afterAll(async () => {
    await removeImagesByLabel(label);
    await rm(root, { recursive: true, force: true });
  });

  const spec = (tag: string, over: Partial<BuildSpec>): BuildSpec => ({
    tag,
    context: (async function* () {})(),
    dockerfile: 'Dockerfile',
    buildArgs: {},
    labels: label,
    memoryMb: null,
    cpus: null,
    timeoutMs: 120_000,
    ...over,
  });
  const build = async (s: BuildSpec) => {
    const lines: string[] = [];
    const result = await runtime.build(dockerTarget, s, (l) => void lines.push(l));
    return { result, lines };
  };
  const listing = async (tag: string) =>
    (await run('docker', ['run', '--rm', tag, 'cat', '/listing'])).stdout;

  /** A context with what a tar handles specially, and what .dockerignore leaves out. */
  async function makeContext(dir: string): Promise<void> {
    await mkdir(path.join(dir, 'src/deep'), { recursive: true });
    await mkdir(path.join(dir, 'empty'));
    await mkdir(path.join(dir, 'logs'));
    await writeFile(path.join(dir, 'Dockerfile'), dockerfile);
    await writeFile(path.join(dir, '.dockerignore'), 'secret.txt\nlogs\n');
    await writeFile(path.join(dir, 'src/app.js'), 'console.log("v1")\n');
    await writeFile(path.join(dir, 'src/deep/data.txt'), 'x'.repeat(100_000));
    await writeFile(path.join(dir, 'src/a-b.txt'), 'byte order: "a-b" sorts before "a/"\n');
    await writeFile(path.join(dir, 'run.sh'), '#!/bin/sh\necho run\n');
    await chmod(path.join(dir, 'run.sh'), 0o755);
    await symlink('src/app.js', path.join(dir, 'app-link'));
    await writeFile(path.join(dir, 'secret.txt'), 'never in the image\n');
    await writeFile(path.join(dir, 'logs/today.log'), 'nor this\n');
  }

  it('builds the same image content as the tar, honouring .dockerignore', async () => {
    const dir = path.join(root, 'same');
    await mkdir(dir);
    await makeContext(dir);
    const viaFiles = await build(
      spec(`sdo-filesync-test:files-${runId}`, {
        files: { open: async () => dir, key: `same-${runId}` },
      }),
    );
    expect(viaFiles.result.error, viaFiles.lines.join('\n')).toBeNull();
    expect(viaFiles.result.transfer?.requested).toBeGreaterThan(0);
    const viaTar = await build(
      spec(`sdo-filesync-test:tar-${runId}`, {
        context: tarOfDir(dir, ['secret.txt', 'logs']),
      }),
    );
    expect(viaTar.result.error, viaTar.lines.join('\n')).toBeNull();
    expect(viaTar.result.transfer).toBeUndefined();

    const files = await listing(`sdo-filesync-test:files-${runId}`);
    expect(files).toBe(await listing(`sdo-filesync-test:tar-${runId}`));
    expect(files).toContain('./app-link link src/app.js');
    expect(files).toMatch(/^\.\/empty dir d/m);
    expect(files).toMatch(/^\.\/run\.sh file -rwxr-xr-x 0:0 /m);
    expect(files).toMatch(/^\.\/src\/deep\/data\.txt file -rw-r--r-- 0:0 100000 /m);
    expect(files).not.toContain('secret.txt');
    expect(files).not.toContain('logs');
  }, 240_000);

  it('sends a warm rebuild only the file that changed', async () => {
    const dir = path.join(root, 'warm');
    await mkdir(dir);
    await makeContext(dir);
    const key = `warm-${runId}`;
    const cold = await build(
      spec(`sdo-filesync-test:cold-${runId}`, { files: { open: async () => dir, key } }),
    );
    expect(cold.result.error, cold.lines.join('\n')).toBeNull();
    // Everything kept is asked for once: Dockerfile (twice: its own local and the context),
    // .dockerignore, the four files under src and run.sh.
    expect(cold.result.transfer!.paths).toEqual(
      expect.arrayContaining(['Dockerfile', 'run.sh', 'src/app.js', 'src/deep/data.txt']),
    );
    expect(cold.result.transfer!.bytes).toBeGreaterThan(100_000);

    await writeFile(path.join(dir, 'src/app.js'), 'console.log("v2, longer")\n');
    const warm = await build(
      spec(`sdo-filesync-test:warm-${runId}`, { files: { open: async () => dir, key } }),
    );
    expect(warm.result.error, warm.lines.join('\n')).toBeNull();
    expect(warm.result.transfer).toMatchObject({ requested: 1, paths: ['src/app.js'] });
    expect(warm.result.transfer!.bytes).toBe(Buffer.byteLength('console.log("v2, longer")\n'));
    expect(await listing(`sdo-filesync-test:warm-${runId}`)).toContain(
      `./src/app.js file -rw-r--r-- 0:0 ${Buffer.byteLength('console.log("v2, longer")\n')}`,
    );
  }, 240_000);

  it('fails a build whose context has no Dockerfile, naming it', async () => {
    const dir = path.join(root, 'nodockerfile');
    await mkdir(dir);
    await writeFile(path.join(dir, 'app.js'), 'x\n');
    const { result } = await build(
      spec(`sdo-filesync-test:none-${runId}`, {
        files: { open: async () => dir, key: `none-${runId}` },
      }),
    );
    expect(result.imageId).toBeNull();
    expect(result.error).toMatch(/Dockerfile/);
    expect(result.error).toMatch(/no such file|not found/i);
  }, 120_000);
});
