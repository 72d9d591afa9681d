/**
 * GitCliSource against real git servers on loopback: git daemon for public repositories,
 * git http-backend (behind a token) for a private one.
 */
import { execFile } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import type { SourceArchive } from '../../core/ports.ts';
import { freePort } from '../support/ports.ts';
import {
  makeRepo,
  startGitDaemon,
  startGitHttp,
  type TestGitServer,
} from '../support/git-server.ts';
import { contractFiles, runSourceRepositoryContract } from '../contracts/source-repository.case.ts';

const run = promisify(execFile);
const token = 'contract-token-123';
let daemon: TestGitServer;
let httpGit: TestGitServer;
let tmp: string;
let n = 0;

beforeAll(async () => {
  [daemon, httpGit] = await Promise.all([startGitDaemon(), startGitHttp(token)]);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'sdo-archive-'));
});
afterAll(async () => {
  await Promise.all([daemon?.stop(), httpGit?.stop()]);
  await rm(tmp, { recursive: true, force: true });
});

/** The archive written to a file and read back with tar(1). */
async function files(archive: SourceArchive): Promise<Record<string, string>> {
  const file = path.join(tmp, `a-${++n}.tar`);
  const chunks: Uint8Array[] = [];
  for await (const c of archive.stream) chunks.push(c);
  await writeFile(file, Buffer.concat(chunks));
  const { stdout } = await run('tar', ['-tf', file]);
  const out: Record<string, string> = {};
  for (const name of stdout.split('\n').filter((l) => l && !l.endsWith('/'))) {
    out[name] = (await run('tar', ['-xOf', file, name])).stdout;
  }
  return out;
}

const harness = (source: GitCliSource) => async () => ({
  source,
  files,
  async publicRepo() {
    const repo = await makeRepo(daemon.root, `public-${++n}`);
    const main = await repo.commit(contractFiles);
    await repo.tag('v1', main);
    const feature = await repo.commit({ 'new.txt': 'x' }, 'feature');
    return { url: daemon.url(`public-${n}`), main, feature };
  },
  async privateRepo() {
    const repo = await makeRepo(httpGit.root, `private-${++n}`);
    const main = await repo.commit(contractFiles);
    return { url: httpGit.url(`private-${n}`), token, main };
  },
  async unreachableUrl() {
    return `git://127.0.0.1:${await freePort()}/nothing.git`;
  },
});

runSourceRepositoryContract({ make: harness(new GitCliSource()) });

// The same contract with fetched commits kept in mirrors between fetches.
let mirrorRoot = '';
runSourceRepositoryContract({
  make: async () => {
    mirrorRoot ||= await mkdtemp(path.join(os.tmpdir(), 'sdo-mirrors-'));
    return harness(new GitCliSource({ mirrorDir: mirrorRoot }))();
  },
});
afterAll(() => (mirrorRoot ? rm(mirrorRoot, { recursive: true, force: true }) : undefined));

/**
 * Removes a test's mirror directory. A mirror is weighed in the background once its
 * reader is done (`git count-objects`, through the traced git of the first test, whose
 * trace file is in that directory), so a removal can meet a file written meanwhile
 * (ENOTEMPTY): retried, as `rm` offers.
 */
const removeMirrors = (dir: string) =>
  rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });

describe('GitCliSource with a mirror directory', () => {
  /** Objects in a bare repository, loose and packed. */
  const objects = async (repo: string) => {
    const { stdout } = await run('git', ['-C', repo, 'count-objects', '-v']);
    const n = (k: string) => Number(new RegExp(`^${k}: (\\d+)$`, 'm').exec(stdout)?.[1] ?? 0);
    return n('count') + n('in-pack');
  };
  const vendoredFiles = () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`node_modules/dep${i}/index.js`] = `exports.n = ${i};\n`;
    return files;
  };
  const read = async (source: GitCliSource, url: string, sha: string) => {
    const tree = await source.fetch({ url, credential: null }, sha, '');
    try {
      return await files({ stream: tree.archive(), close: () => tree.close() });
    } finally {
      await tree.close();
    }
  };

  it('fetches only what changed into the mirror, and still serves every commit it holds whole', async () => {
    const mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-mirror-'));
    // git, tracing what each fetch received: `--pack_header=<version>,<objects>`.
    const trace = path.join(mirrorDir, 'trace.txt');
    const gitBin = path.join(mirrorDir, 'git-traced');
    await writeFile(gitBin, `#!/bin/sh\nGIT_TRACE2_PERF=${trace} exec git "$@"\n`, { mode: 0o755 });
    const received = async () => {
      const text = await readFile(trace, 'utf8').catch(() => '');
      await rm(trace, { force: true });
      return [...text.matchAll(/pack_header=\d+,(\d+)/g)].map((m) => Number(m[1]));
    };
    const source = new GitCliSource({ mirrorDir, gitBin });
    const repo = await makeRepo(daemon.root, 'mirrored');
    const url = daemon.url('mirrored');
    const c1 = await repo.commit({ ...vendoredFiles(), 'src/app.js': 'v1' });
    const c2 = await repo.commit({ 'src/app.js': 'v2' });
    expect((await read(source, url, c1))['src/app.js']).toBe('v1');
    expect((await received()).some((n) => n > 60)).toBe(true);
    const [mirror] = (await readdir(mirrorDir)).filter((d) => d.endsWith('.git'));
    expect(mirror).toMatch(/^[0-9a-f]{32}\.git$/);
    const before = await objects(path.join(mirrorDir, mirror!));
    // 30 blobs, their 31 trees, src's tree, the root and the commit.
    expect(before).toBeGreaterThan(60);
    const second = await read(source, url, c2);
    expect(second['src/app.js']).toBe('v2');
    expect(Object.keys(second)).toHaveLength(31);
    // The second commit brought its commit, root tree, src tree and one blob: nothing vendored again.
    expect((await objects(path.join(mirrorDir, mirror!))) - before).toBeLessThanOrEqual(4);
    // And only those crossed the wire: the mirror offered the commit it had as a "have".
    const sent = await received();
    expect(sent.length).toBeGreaterThan(0);
    expect(Math.max(...sent)).toBeLessThanOrEqual(4);
    expect((await read(source, url, c1))['src/app.js']).toBe('v1');
    expect((await readdir(mirrorDir)).filter((d) => d.endsWith('.git'))).toEqual([mirror]);
    await removeMirrors(mirrorDir);
  });

  it('asks the server every time: a wrong token is refused although the commit is in a mirror, and each credential has its own', async () => {
    const mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-mirror-'));
    const source = new GitCliSource({ mirrorDir });
    const repo = await makeRepo(httpGit.root, 'mirrored-private');
    const main = await repo.commit(contractFiles);
    const url = httpGit.url('mirrored-private');
    const tree = await source.fetch({ url, credential: { token } }, main, '');
    await tree.close();
    await expect(
      source.fetch({ url, credential: { token: 'wrong-token' } }, main, ''),
    ).rejects.toMatchObject({ code: 'git_access_denied' });
    await expect(source.fetch({ url, credential: null }, main, '')).rejects.toMatchObject({
      code: 'git_access_denied',
    });
    expect((await readdir(mirrorDir)).filter((d) => d.endsWith('.git'))).toHaveLength(3);
    await removeMirrors(mirrorDir);
  });

  it('takes turns for fetches into one mirror, and a lock left by a killed fetch costs one fetch from empty, not every later one', async () => {
    const mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-mirror-'));
    const source = new GitCliSource({ mirrorDir });
    const repo = await makeRepo(daemon.root, 'mirrored-turns');
    const url = daemon.url('mirrored-turns');
    const shas: string[] = [];
    for (let i = 0; i < 4; i++) shas.push(await repo.commit({ 'v.txt': `v${i}` }));
    const all = await Promise.all(shas.map((sha) => read(source, url, sha)));
    expect(all.map((f) => f['v.txt'])).toEqual(['v0', 'v1', 'v2', 'v3']);

    const [mirror] = await readdir(mirrorDir);
    // What a fetch killed mid-write leaves (git removes it on a clean exit only).
    await writeFile(path.join(mirrorDir, mirror!, 'shallow.lock'), '');
    const next = await repo.commit({ 'v.txt': 'v4' });
    expect((await read(source, url, next))['v.txt']).toBe('v4');
    // The stale mirror was dropped; the next fetch makes it again and fills it.
    const after = await repo.commit({ 'v.txt': 'v5' });
    expect((await read(source, url, after))['v.txt']).toBe('v5');
    expect(await readdir(mirrorDir)).toEqual([mirror]);
    expect(await readdirSafe(path.join(mirrorDir, mirror!))).not.toContain('shallow.lock');
    expect(await objects(path.join(mirrorDir, mirror!))).toBeGreaterThan(0);
    await removeMirrors(mirrorDir);
  });

  it('starts a mirror over its cap afresh', async () => {
    const mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-mirror-'));
    const source = new GitCliSource({ mirrorDir, mirrorMaxBytes: 1 });
    const repo = await makeRepo(daemon.root, 'mirrored-cap');
    const url = daemon.url('mirrored-cap');
    const c1 = await repo.commit({ ...vendoredFiles(), 'a.txt': 'one' });
    const c2 = await repo.commit({ 'a.txt': 'two' });
    expect((await read(source, url, c1))['a.txt']).toBe('one');
    const [mirror] = await readdir(mirrorDir);
    expect((await read(source, url, c2))['a.txt']).toBe('two');
    // Made again before the second fetch: it holds the second commit whole and not the first.
    const repoDir = path.join(mirrorDir, mirror!);
    await expect(run('git', ['-C', repoDir, 'cat-file', '-e', c2])).resolves.toBeDefined();
    await expect(run('git', ['-C', repoDir, 'cat-file', '-e', c1])).rejects.toThrow();
    await removeMirrors(mirrorDir);
  });
});

describe('GitCliSource checkout (a build context served as files)', () => {
  /** Every entry of a directory: type, mode, size, mtime in ns, and content or link target. */
  const snapshot = async (dir: string) => {
    const out: Record<string, string> = {};
    const walk = async (rel: string): Promise<void> => {
      for (const name of (await readdir(path.join(dir, rel))).sort()) {
        const p = rel ? `${rel}/${name}` : name;
        const st = await lstat(path.join(dir, p), { bigint: true });
        const what = st.isSymbolicLink()
          ? `link ${await readlink(path.join(dir, p))}`
          : st.isDirectory()
            ? 'dir'
            : `file ${(Number(st.mode) & 0o777).toString(8)} ${await readFile(path.join(dir, p), 'utf8')}`;
        out[p] = `${what} @${st.mtimeNs}`;
        if (st.isDirectory()) await walk(p);
      }
    };
    await walk('');
    return out;
  };

  it('writes the files archive() streams, with the same modes, and keeps the stat of unchanged files across commits', async () => {
    const mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-mirror-'));
    const source = new GitCliSource({ mirrorDir });
    const repo = await makeRepo(daemon.root, `checkout-${++n}`);
    const url = daemon.url(`checkout-${n}`);
    const c1 = await repo.commit({
      'app/Dockerfile': 'FROM x\n',
      'app/src/a.js': 'a1',
      'app/src/b.js': 'b',
      'app/ignored/big.bin': 'zzz',
      'app/run.sh': '#!/bin/sh\n',
      'outside.txt': 'not under app',
    });
    const work = path.join(os.tmpdir(), `sdo-work-exec-${n}`);
    await rm(work, { recursive: true, force: true });
    await run('git', ['clone', '-q', repo.bare, work]);
    const gitIn = (...args: string[]) =>
      run('git', ['-C', work, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args]);
    await run('chmod', ['755', path.join(work, 'app/run.sh')]);
    await run('ln', ['-s', 'src/a.js', path.join(work, 'app/link.js')]);
    await gitIn('add', '-A');
    await gitIn('commit', '-qm', 'exec bit and link');
    await gitIn('push', '-q', 'origin', 'main');
    const c2 = (await gitIn('rev-parse', 'HEAD')).stdout.trim();
    await writeFile(path.join(work, 'app/src/a.js'), 'a2');
    await gitIn('commit', '-qam', 'a changed');
    await gitIn('push', '-q', 'origin', 'main');
    const c3 = (await gitIn('rev-parse', 'HEAD')).stdout.trim();
    await rm(work, { recursive: true, force: true });
    expect(c1).not.toBe(c2);

    const exclude = (p: string) => p.startsWith('ignored');
    const checkout = async (sha: string, weighFirst = false) => {
      const tree = await source.fetch({ url, credential: null }, sha, 'app');
      try {
        // As the build step does: weighed first, the checkout then reuses that listing.
        if (weighFirst) expect((await tree.size(exclude)).files).toBe(5);
        const { dir } = await tree.checkout!({
          exclude,
          extra: { 'gen.Dockerfile': 'FROM gen\n' },
        });
        const snap = await snapshot(dir);
        const archived = await files({
          stream: tree.archive({ exclude, extra: { 'gen.Dockerfile': 'FROM gen\n' } }),
          close: async () => undefined,
        });
        return { snap, archived, dir };
      } finally {
        await tree.close();
      }
    };
    const first = await checkout(c2);
    // The same files as the archive, content and all.
    const filesOf = (snap: Record<string, string>) =>
      Object.keys(snap)
        .filter((p) => snap[p]!.startsWith('file'))
        .sort();
    expect(filesOf(first.snap)).toEqual(
      Object.keys(first.archived)
        .filter((p) => p !== 'link.js')
        .sort(),
    );
    expect(first.snap['run.sh']).toMatch(/^file 775 #!\/bin\/sh/);
    expect(first.snap['src/a.js']).toMatch(/^file 664 a1 @/);
    expect(first.snap['link.js']).toMatch(/^link src\/a\.js @/);
    expect(first.snap['gen.Dockerfile']).toMatch(/^file 664 FROM gen/);
    expect(first.snap['ignored']).toBeUndefined();
    expect(first.snap['outside.txt']).toBeUndefined();
    // Gone with the tree.
    await expect(lstat(first.dir)).rejects.toThrow();

    // Another checkout of the same commit: every stat the same, mtimes included.
    expect((await checkout(c2, true)).snap).toEqual(first.snap);
    // The next commit changed a.js alone: only its stat differs.
    const next = await checkout(c3);
    const changed = Object.keys(next.snap).filter((p) => next.snap[p] !== first.snap[p]);
    expect(changed).toEqual(['src/a.js']);
    // A content-derived time, in the past.
    const ns = BigInt(/@(\d+)$/.exec(next.snap['src/a.js']!)![1]!);
    expect(ns).toBeLessThan(BigInt(Date.now()) * 1_000_000n);
    await removeMirrors(mirrorDir);
  });

  it('fails a checkout over the size cap, naming the cap', async () => {
    const repo = await makeRepo(daemon.root, `checkout-cap-${++n}`);
    const sha = await repo.commit({ Dockerfile: 'FROM x\n', 'data.bin': 'x'.repeat(5000) });
    const tree = await new GitCliSource().fetch(
      { url: daemon.url(`checkout-cap-${n}`), credential: null },
      sha,
      '',
    );
    try {
      await expect(tree.checkout!({ maxBytes: 1000 })).rejects.toThrow(/over the cap/);
    } finally {
      await tree.close();
    }
  });
});

describe('GitCliSource', () => {
  it('keeps the token out of every command line and leaves no temporary directory behind', async () => {
    const repo = await makeRepo(httpGit.root, 'leaks');
    const main = await repo.commit(contractFiles);
    const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'sdo-gitcli-'));
    const source = new GitCliSource({ tmpDir });
    const seen: string[] = [];
    // Every process git starts while the fetch runs, as other users of the host would see them.
    let watching = true;
    const watcher = (async () => {
      for (let i = 0; watching && i < 2000; i++) {
        const { stdout } = await run('ps', ['-eo', 'args']).catch(() => ({ stdout: '' }));
        seen.push(...stdout.split('\n').filter((l) => l.includes('git')));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const remote = { url: httpGit.url('leaks'), credential: { token } };
    const archive = await source.archive(remote, await source.resolveRef(remote, 'main'), {
      subdir: '',
      dockerfile: 'app/Dockerfile',
    });
    expect(Object.keys(await files(archive))).toContain('app/Dockerfile');
    await archive.close();
    watching = false;
    await watcher;
    expect(main).toMatch(/^[0-9a-f]{40}$/);
    expect(seen.join('\n')).not.toContain(token);
    expect(seen.join('\n')).not.toContain(
      Buffer.from(`x-access-token:${token}`).toString('base64'),
    );
    expect(await readdirSafe(tmpDir)).toEqual([]);
    await rm(tmpDir, { recursive: true, force: true });
  });

  it('refuses transports that read local files or run commands, whatever the URL says', async () => {
    const source = new GitCliSource();
    const local = await makeRepo(daemon.root, 'local-only');
    await local.commit(contractFiles);
    await expect(
      source.resolveRef({ url: `file://${local.bare}`, credential: null }, 'main'),
    ).rejects.toMatchObject({ code: 'git_unreachable' });
    await expect(
      source.resolveRef({ url: 'ext::sh -c "touch /tmp/sdo-pwned"', credential: null }, 'main'),
    ).rejects.toMatchObject({ code: 'git_unreachable' });
    await expect(readFile('/tmp/sdo-pwned')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('says git is missing when the binary is not there', async () => {
    const source = new GitCliSource({ gitBin: '/nonexistent/git' });
    await expect(
      source.resolveRef({ url: daemon.url('x'), credential: null }, 'main'),
    ).rejects.toMatchObject({ code: 'builds_unavailable', kind: 'unavailable' });
  });
});

async function readdirSafe(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  return readdir(dir);
}
