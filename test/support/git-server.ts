/**
 * Real git servers on loopback for build tests: `git daemon` (git://, anonymous) and
 * `git http-backend` behind a small node:http server that asks for a token (HTTP basic
 * auth, as GitHub, GitLab and Gitea take one). Repositories are bare ones under a folder
 * this run made, written through a work tree.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { canConnect } from './services.ts';

const run = promisify(execFile);

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
};

const git = async (cwd: string, ...args: string[]) =>
  (await run('git', args, { cwd, env: gitEnv, timeout: 30_000 })).stdout.trim();

/** A bare repository `<root>/<name>.git` with a work tree to commit through. */
export interface TestRepo {
  /** The bare repository's path (what servers serve). */
  bare: string;
  /** Commits `files` (path → content; null deletes) on `branch` and pushes; returns the sha. */
  commit(files: Record<string, string | null>, branch?: string): Promise<string>;
  tag(name: string, sha: string): Promise<void>;
}

export async function makeRepo(root: string, name: string): Promise<TestRepo> {
  const bare = path.join(root, `${name}.git`);
  const work = await mkdtemp(path.join(os.tmpdir(), 'sdo-work-'));
  await git(root, 'init', '-q', '--bare', '-b', 'main', bare);
  await git(work, 'init', '-q', '-b', 'main');
  await git(work, 'remote', 'add', 'origin', bare);
  let branches = new Set<string>();
  return {
    bare,
    async commit(files, branch = 'main') {
      if (branches.size > 0 || branch !== 'main') {
        const exists = branches.has(branch);
        if (exists) await git(work, 'checkout', '-q', branch);
        else await git(work, 'checkout', '-q', '-B', branch);
      }
      for (const [file, content] of Object.entries(files)) {
        const full = path.join(work, file);
        if (content === null) await rm(full, { force: true });
        else {
          await mkdir(path.dirname(full), { recursive: true });
          await writeFile(full, content);
        }
      }
      await git(work, 'add', '-A');
      await git(work, 'commit', '-q', '--allow-empty', '-m', `commit on ${branch}`);
      await git(work, 'push', '-q', 'origin', `${branch}:${branch}`);
      branches = new Set([...branches, branch]);
      return git(work, 'rev-parse', 'HEAD');
    },
    async tag(tagName, sha) {
      await git(work, 'tag', '-a', '-m', tagName, tagName, sha);
      await git(work, 'push', '-q', 'origin', tagName);
    },
  };
}

export interface TestGitServer {
  root: string;
  /** The URL of repository `<name>.git` on this server. */
  url(name: string): string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, host = '127.0.0.1'): Promise<void> {
  const end = Date.now() + 10_000;
  while (!(await canConnect(host, port, 200))) {
    if (child.exitCode !== null || Date.now() > end)
      throw new Error(`git server did not start on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `git daemon` serving every repository under a new folder, anonymously, on a loopback port;
 * or on `host`, an address of this machine containers reach (the acceptance stack's worker
 * clones from its container through the Docker bridge's gateway).
 */
export async function startGitDaemon(host = '127.0.0.1'): Promise<TestGitServer> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sdo-gitd-'));
  const port = await freePort();
  const child = spawn(
    'git',
    [
      'daemon',
      '--export-all',
      `--base-path=${root}`,
      `--listen=${host}`,
      `--port=${port}`,
      '--reuseaddr',
      root,
    ],
    { stdio: 'ignore' },
  );
  await waitForPort(port, child, host);
  return {
    root,
    url: (name) => `git://${host}:${port}/${name}.git`,
    async stop() {
      child.kill('SIGTERM');
      await rm(root, { recursive: true, force: true });
    },
  };
}

/**
 * `git http-backend` (smart HTTP) behind node:http on a loopback port; every request must
 * carry HTTP basic auth whose password is `token` (any user name), else 401.
 */
export async function startGitHttp(token: string): Promise<TestGitServer & { requests: number }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sdo-gith-'));
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    const auth = req.headers.authorization ?? '';
    const password = auth.startsWith('Basic ')
      ? Buffer.from(auth.slice(6), 'base64').toString().split(':').slice(1).join(':')
      : null;
    if (password !== token) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' }).end('unauthorized\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const cgi = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        REQUEST_METHOD: req.method ?? 'GET',
        PATH_INFO: decodeURIComponent(url.pathname),
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_USER: 'test',
        REMOTE_ADDR: '127.0.0.1',
      },
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    req.pipe(cgi.stdin);
    // CGI output: headers, a blank line, the body.
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split('\r\n')) {
        const at = line.indexOf(':');
        const name = line.slice(0, at).trim();
        const value = line.slice(at + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => res.end());
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    root,
    get requests() {
      return state.requests;
    },
    url: (name) => `http://127.0.0.1:${port}/${name}.git`,
    async stop() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rm(root, { recursive: true, force: true });
    },
  };
}
