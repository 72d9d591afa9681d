/**
 * GitCliSource against real git servers on loopback: git daemon for public repositories,
 * git http-backend (behind a token) for a private one.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import type { SourceArchive } from '../../core/ports.ts';
import { freePort } from '../support/caddy.ts';
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

runSourceRepositoryContract({
  make: async () => ({
    source: new GitCliSource(),
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
  }),
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
