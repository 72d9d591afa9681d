/**
 * The build checkout kept per service and sub-directory (GitCliSource `checkoutDir`), with a
 * real git daemon on loopback and the real Docker Engine's BuildKit reading the checkout over
 * its file sync: a rebuild after a one-file change writes and sends exactly that file; a
 * deleted, a renamed file and a changed sub-directory show in the image as in the commit;
 * two builds of one service at once each get a checkout of their own; a checkout cut off
 * mid-write, a file touched behind its back or a lock left by a dead process are recovered;
 * forgetting a service removes its checkouts; the cap evicts the least recently used.
 * The cloud worker uses the same source with its /tmp as the directory (adapters/modes/cloud.ts).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import type { SourceCheckout } from '../../core/ports.ts';
import {
  dockerTarget,
  ensureTestImages,
  removeImagesByLabel,
  testImages,
  testLabelKey,
} from '../support/docker.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import { available } from '../support/services.ts';

const run = promisify(execFile);
const ready = await available('docker');
if (!ready && process.env.CI === 'true')
  throw new Error('builds-checkout needs Docker under CI=true');
if (!ready) console.warn('SKIPPED builds-checkout: Docker Engine not available here');

const runId = `${process.pid}-${Date.now()}`;
const labels = { [testLabelKey]: `checkout-${runId}` };
// Copies the whole context: what the image holds is what the checkout served.
const dockerfile = `FROM ${testImages.app}\nCOPY . /ctx\n`;

describe.skipIf(!ready)('builds: the checkout kept per service, updated in place', () => {
  let daemon: TestGitServer;
  let root: string;
  let n = 0;
  const runtime = new DockerRuntime();

  beforeAll(async () => {
    await ensureTestImages();
    daemon = await startGitDaemon();
    root = await mkdtemp(path.join(os.tmpdir(), 'sdo-kept-'));
  }, 180_000);
  afterAll(async () => {
    await removeImagesByLabel(labels).catch(() => undefined);
    await daemon?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const newSource = (checkoutMaxBytes?: number) => {
    const checkouts = path.join(root, `checkouts-${++n}`);
    const source = new GitCliSource({
      mirrorDir: path.join(root, `mirrors-${n}`),
      checkoutDir: checkouts,
      ...(checkoutMaxBytes ? { checkoutMaxBytes } : {}),
    });
    return { source, checkouts };
  };

  /** A build of `sha` as the build step makes it: fetched, weighed, kept checkout, BuildKit. */
  const build = async (
    source: GitCliSource,
    url: string,
    sha: string,
    o: { owner?: string; subdir?: string; hold?: () => Promise<void> } = {},
  ) => {
    const tree = await source.fetch({ url, credential: null }, sha, o.subdir ?? '');
    let made: SourceCheckout | null = null;
    try {
      await tree.size();
      const tag = `selfdevop-test/kept-${runId}:${sha.slice(0, 12)}-${++n}`;
      const result = await runtime.build(
        dockerTarget,
        {
          tag,
          context: tree.archive(),
          files: {
            key: `kept-test-${runId}:${o.owner ?? 'svc'}:${o.subdir ?? ''}`,
            open: async () => {
              made = await tree.checkout!({
                keep: { owner: o.owner ?? 'svc', name: o.subdir ?? '' },
              });
              return made.dir;
            },
          },
          dockerfile: 'Dockerfile',
          buildArgs: {},
          labels,
          memoryMb: null,
          cpus: null,
          timeoutMs: 120_000,
        },
        () => undefined,
      );
      await o.hold?.();
      expect(result.error).toBeNull();
      return { tag, checkout: made! as SourceCheckout, transfer: result.transfer! };
    } finally {
      await tree.close();
    }
  };

  /** Every file under /ctx in the image, with its content. */
  const imageFiles = async (tag: string) => {
    const { stdout } = await run('docker', [
      'run',
      '--rm',
      '--entrypoint',
      '/bin/busybox',
      tag,
      'sh',
      '-c',
      'cd /ctx && find . -type f | sort | while read f; do echo "$f=$(cat "$f")"; done',
    ]);
    return stdout.trim().split('\n');
  };

  const repoOf = async (files: Record<string, string>) => {
    const name = `kept-${++n}`;
    const repo = await makeRepo(daemon.root, name);
    const sha = await repo.commit(files);
    return { repo, sha, url: daemon.url(name) };
  };

  it('a rebuild after a one-file change writes and requests exactly that file; a deleted and a renamed file leave the image', async () => {
    const { source } = newSource();
    const { repo, sha, url } = await repoOf({
      Dockerfile: dockerfile,
      'src/a.js': `a1 ${runId}`,
      'src/b.js': 'b',
      'src/old-name.js': 'renamed',
      'lib/gone.js': 'gone',
    });
    const cold = await build(source, url, sha);
    expect(cold.checkout).toMatchObject({ kept: true, written: 5, entries: 5 });
    // Every file, the Dockerfile once more for the frontend's own `dockerfile` local.
    expect([...new Set(cold.transfer.paths)].sort()).toEqual([
      'Dockerfile',
      'lib/gone.js',
      'src/a.js',
      'src/b.js',
      'src/old-name.js',
    ]);

    const one = await repo.commit({ 'src/a.js': `a2 ${runId}` });
    const warm = await build(source, url, one);
    expect(warm.checkout).toMatchObject({ kept: true, written: 1, removed: 0, entries: 5 });
    expect(warm.transfer.paths).toEqual(['src/a.js']);
    expect(await imageFiles(warm.tag)).toContain(`./src/a.js=a2 ${runId}`);

    const moved = await repo.commit({
      'lib/gone.js': null,
      'src/old-name.js': null,
      'src/new-name.js': 'renamed',
    });
    const after = await build(source, url, moved);
    expect(after.checkout).toMatchObject({ kept: true, written: 1, removed: 2, entries: 4 });
    expect(after.transfer.paths).toEqual(['src/new-name.js']);
    expect(await imageFiles(after.tag)).toEqual([
      ...`./Dockerfile=${dockerfile.trim()}`.split('\n'),
      `./src/a.js=a2 ${runId}`,
      './src/b.js=b',
      './src/new-name.js=renamed',
    ]);
    // The emptied directory is gone from the checkout as well.
    expect(await readdir(after.checkout.dir)).toEqual(['Dockerfile', 'src']);
  }, 240_000);

  it('keeps one checkout per sub-directory: a build of another one does not disturb the first', async () => {
    const { source } = newSource();
    const { repo, sha, url } = await repoOf({
      'one/Dockerfile': dockerfile,
      'one/x.txt': `one ${runId}`,
      'two/Dockerfile': dockerfile,
      'two/y.txt': `two ${runId}`,
    });
    const first = await build(source, url, sha, { subdir: 'one' });
    const other = await build(source, url, sha, { subdir: 'two' });
    expect(other.checkout.dir).not.toBe(first.checkout.dir);
    expect(await imageFiles(other.tag)).toContain(`./y.txt=two ${runId}`);
    expect(await imageFiles(other.tag)).not.toContain(`./x.txt=one ${runId}`);
    const next = await repo.commit({ 'one/x.txt': `one again ${runId}` });
    const back = await build(source, url, next, { subdir: 'one' });
    expect(back.checkout).toMatchObject({ dir: first.checkout.dir, kept: true, written: 1 });
    expect(back.transfer.paths).toEqual(['x.txt']);
  }, 240_000);

  it('two builds of one service at once: the second gets a temporary checkout of its own, removed after', async () => {
    const { source, checkouts } = newSource();
    const { repo, sha, url } = await repoOf({ Dockerfile: dockerfile, 'a.txt': `1 ${runId}` });
    await build(source, url, sha);
    const second = await repo.commit({ 'a.txt': `2 ${runId}` });
    let release!: () => void;
    const holding = new Promise<void>((r) => (release = r));
    // The first build holds its checkout (its tree stays open) until the second is done.
    const first = build(source, url, second, { hold: () => holding });
    for (let i = 0; i < 600 && !(await lockHeld(checkouts)); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(await lockHeld(checkouts)).toBe(true);
    const third = await repo.commit({ 'a.txt': `3 ${runId}` });
    const concurrent = await build(source, url, third);
    release();
    const held = await first;
    expect(held.checkout.kept).toBe(true);
    expect(concurrent.checkout.kept).toBe(false);
    expect(concurrent.checkout.dir).not.toBe(held.checkout.dir);
    await expect(stat(concurrent.checkout.dir)).rejects.toThrow();
    expect(await imageFiles(held.tag)).toContain(`./a.txt=2 ${runId}`);
    expect(await imageFiles(concurrent.tag)).toContain(`./a.txt=3 ${runId}`);
  }, 240_000);

  it('recovers a checkout cut off mid-write, a file changed behind its back and a lock of a dead process', async () => {
    const { source } = newSource();
    const { repo, sha, url } = await repoOf({
      Dockerfile: dockerfile,
      'a.txt': `a ${runId}`,
      'b.txt': `b ${runId}`,
    });
    const cold = await build(source, url, sha);
    const base = path.dirname(cold.checkout.dir);
    // A file changed since (same size, another time): written again, not trusted.
    await writeFile(path.join(cold.checkout.dir, 'b.txt'), `B ${runId}`);
    const v2 = await repo.commit({ 'a.txt': `a2 ${runId}` });
    const touched = await build(source, url, v2);
    expect(touched.checkout).toMatchObject({ kept: true, written: 2 });
    expect(await imageFiles(touched.tag)).toContain(`./b.txt=b ${runId}`);

    // A lock of another live process: that build's; this one gets a checkout of its own.
    await writeFile(path.join(base, 'lock'), String(process.ppid));
    const v2b = await repo.commit({ 'b.txt': `b2 ${runId}` });
    const aside = await build(source, url, v2b);
    expect(aside.checkout.kept).toBe(false);
    expect(await imageFiles(aside.tag)).toContain(`./b.txt=b2 ${runId}`);
    // Unless older than any build runs (a pid reused after a restart in a new container).
    const longAgo = new Date(Date.now() - 7 * 3600_000);
    await utimes(path.join(base, 'lock'), longAgo, longAgo);
    const taken = await build(source, url, v2b);
    expect(taken.checkout).toMatchObject({ kept: true, written: 1 });

    // Killed mid-checkout: its manifest is gone (removed before any write), a stray
    // half-written file is there, and its lock names a process that no longer runs.
    await rm(path.join(base, 'manifest.json'));
    await writeFile(path.join(touched.checkout.dir, 'half-written.tmp'), 'partial');
    await writeFile(path.join(base, 'lock'), '999999999');
    const v3 = await repo.commit({ 'a.txt': `a3 ${runId}` });
    const recovered = await build(source, url, v3);
    expect(recovered.checkout).toMatchObject({ kept: true, written: 3, entries: 3 });
    const files = await imageFiles(recovered.tag);
    expect(files).toContain(`./a.txt=a3 ${runId}`);
    expect(files.some((f) => f.includes('half-written'))).toBe(false);
    await expect(stat(path.join(base, 'lock'))).rejects.toThrow();
  }, 240_000);

  it('forgetting a service removes its checkouts; the cap evicts the least recently used', async () => {
    const { source, checkouts } = newSource(2500);
    const { sha, url } = await repoOf({ Dockerfile: dockerfile, 'data.txt': 'x'.repeat(1000) });
    const a = await build(source, url, sha, { owner: 'svc-a' });
    const b = await build(source, url, sha, { owner: 'svc-b' });
    await stat(a.checkout.dir);
    // A third of ~1.05 KB does not fit beside two: svc-a, the least recently used, goes.
    const c = await build(source, url, sha, { owner: 'svc-c' });
    await expect(stat(a.checkout.dir)).rejects.toThrow();
    await stat(b.checkout.dir);
    await stat(c.checkout.dir);
    expect((await readdir(checkouts)).length).toBe(2);

    await source.forgetCheckouts('svc-b');
    await expect(stat(b.checkout.dir)).rejects.toThrow();
    await stat(c.checkout.dir);
    expect(await readFile(path.join(c.checkout.dir, 'data.txt'), 'utf8')).toBe('x'.repeat(1000));
  }, 240_000);
});

/** Whether some kept checkout under `dir` is locked right now. */
async function lockHeld(dir: string): Promise<boolean> {
  for (const owner of await readdir(dir).catch(() => [] as string[]))
    for (const name of await readdir(path.join(dir, owner)).catch(() => [] as string[]))
      if (
        await stat(path.join(dir, owner, name, 'lock')).then(
          () => true,
          () => false,
        )
      )
        return true;
  return false;
}
