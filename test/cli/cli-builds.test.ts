/**
 * The CLI's side of builds from git, as a user runs it: selfdevop.yml with `git:`, `deploy
 * --git-ref`, the GIT column of `releases`, and `services git` / `services deploy-key`,
 * against the self-hosted control plane with its workers, a real git daemon on loopback,
 * the real Docker Engine and a real Caddy.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  ensureTestImages,
  removeContainersByLabel,
  removeImagesByLabel,
} from '../support/docker.ts';
import {
  makeRepo,
  startGitDaemon,
  type TestGitServer,
  type TestRepo,
} from '../support/git-server.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');
const runId = `${process.pid}-${Date.now()}`;

const app = (version: string) => ({
  'web/Dockerfile': `FROM selfdevop-test/busybox:base\nENV TEST_RUN=${runId}\nCOPY www /www\nRUN echo "cli build of ${version}"\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n`,
  'web/www/version': `${version}\n`,
  'web/www/health': 'ok\n',
});

describe.skipIf(!ready)('the CLI building services from git', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let daemon: TestGitServer;
  let repo: TestRepo;
  let dir: string;
  let orgId: string;
  let env: Record<string, string>;
  let first: string;
  let host: string;

  function cli(
    args: string[],
    input = '',
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, ...args], {
        cwd: join(dir, 'app'),
        env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), ...env },
        stdio: 'pipe',
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(input);
    });
  }

  const viaCaddy = (path = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = http.get(
        { host: '127.0.0.1', port: caddy.httpPort, path, headers: { host }, agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
        },
      );
      r.on('error', reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    [caddy, daemon] = await Promise.all([startCaddy(), startGitDaemon()]);
    repo = await makeRepo(daemon.root, 'mono');
    first = await repo.commit(app('one'));
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2 },
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-builds@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    const k = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: s.body.token,
      body: { name: 'cli', role: 'admin' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: k.body.key };
    await api.request('POST', '/api/nodes', {
      token: s.body.token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-builds-'));
    await mkdir(join(dir, 'app'));
    await writeFile(
      join(dir, 'app', 'selfdevop.yml'),
      `project: mono
services:
  web:
    git:
      url: ${daemon.url('mono')}
      subdir: web
    port: 8080
    health: { intervalMs: 100, successes: 2, deadlineMs: 8000, timeoutMs: 1000 }
    drainSeconds: 1
`,
    );
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await Promise.all([caddy?.stop(), daemon?.stop()]);
    if (orgId) {
      await removeContainersByLabel({ 'selfdevop.org': orgId });
      await removeImagesByLabel({ 'selfdevop.org': orgId });
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('deploys a service of selfdevop.yml built from git, streaming the build, then a ref, and shows the commit of each release', async () => {
    const r = await cli(['deploy']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('created service web');
    expect(r.stdout).toContain(`deploying main (${first.slice(0, 12)}) to web (production)`);
    expect(r.stdout).toContain('cli build of one'); // the build's own output, streamed
    host = /served at (\S+)/.exec(r.stdout)![1]!;
    expect(await viaCaddy()).toEqual({ status: 200, body: 'one' });

    const second = await repo.commit(app('two'));
    const r2 = await cli(['deploy', '--service', 'web', '--git-ref', 'main', '--quiet']);
    expect(r2.code, r2.stderr + r2.stdout).toBe(0);
    expect(r2.stdout).toContain(`deploying main (${second.slice(0, 12)})`);
    expect(await viaCaddy()).toEqual({ status: 200, body: 'two' });

    const table = await cli(['releases', '--service', 'web']);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+IMAGE\s+GIT\s+CREATED/);
    expect(lines[1]).toContain(`main@${first.slice(0, 12)}`);
    expect(lines[2]).toContain(`main@${second.slice(0, 12)}`);

    const both = await cli(['deploy', '--service', 'web', '--git-ref', 'main', '--image', 'x:1']);
    expect(both.code).toBe(2);
    expect(both.stderr.trim()).toBe('selfdevop deploy: give --image or --git-ref, not both');
    const unknown = await cli(['deploy', '--service', 'web', '--git-ref', 'no-such']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/gitRef: no-such is not a branch or tag of git:\/\//);
  }, 150_000);

  it('sets a git source with a token read from stdin, never printing it, and makes a deploy key', async () => {
    const token = 'cli-token-never-printed';
    const set = await cli(
      [
        'services',
        'git',
        'web',
        '--url',
        'https://git.example.com/shop/web.git',
        '--ref',
        'release',
        '--build-arg',
        'A=1',
        '--token-stdin',
      ],
      `${token}\n`,
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.trim()).toBe(
      'service web builds from https://git.example.com/shop/web.git#release:web (Dockerfile); credential: token',
    );
    const listed = await cli(['services']);
    expect(listed.stdout).toContain('https://git.example.com/shop/web.git#release:web');
    for (const out of [
      set.stdout,
      set.stderr,
      listed.stdout,
      (await cli(['services', '--json'])).stdout,
    ])
      expect(out).not.toContain(token);

    const http = await cli(['services', 'deploy-key', 'web']);
    expect(http.code).not.toBe(0);
    expect(http.stderr).toMatch(/a deploy key is used over SSH/);
    expect(
      (
        await cli([
          'services',
          'git',
          'web',
          '--url',
          'git@git.example.com:shop/web.git',
          '--no-token',
        ])
      ).code,
    ).toBe(0);
    const key = await cli(['services', 'deploy-key', 'web']);
    expect(key.code, key.stderr).toBe(0);
    expect(key.stdout.trim()).toMatch(/^ssh-ed25519 AAAA\S+ selfdevop-web$/);
    expect(key.stderr).toContain(
      'add this read-only deploy key to git@git.example.com:shop/web.git',
    );

    // A build-time secret: read from stdin, sealed, listed by id only.
    const value = 'npm-token-never-printed';
    const secretSet = await cli(['services', 'build-secret', 'web', 'npm_token'], `${value}\n`);
    expect(secretSet.code, secretSet.stderr).toBe(0);
    expect(secretSet.stdout.trim()).toBe('service web build secrets: npm_token');
    const asJson = await cli(['services', '--json']);
    expect(asJson.stdout).toContain('"npm_token"');
    for (const out of [secretSet.stdout, secretSet.stderr, asJson.stdout])
      expect(out).not.toContain(value);
    const dropped = await cli(['services', 'build-secret', 'web', 'npm_token', '--remove']);
    expect(dropped.stdout.trim()).toBe('service web build secrets: none');
    const badId = await cli(['services', 'build-secret', 'web', 'not ok'], 'x\n');
    expect(badId.code).not.toBe(0);
    expect(badId.stderr).toMatch(/build secret ids are letters, digits/);

    // The push webhook: made on first use with its secret shown once, then the URL alone.
    const made = await cli(['services', 'push-hook', 'web']);
    expect(made.code, made.stderr).toBe(0);
    const url = /^url +(\S+)$/m.exec(made.stdout)?.[1];
    const secret = /^secret +(sdph_\S+)$/m.exec(made.stdout)?.[1];
    expect(url).toMatch(/\/api\/hooks\/push\/ph_/);
    expect(secret).toBeDefined();
    const again = await cli(['services', 'push-hook', 'web']);
    expect(again.stdout).toContain(url!);
    expect(again.stdout).not.toContain('sdph_');
    const rotated = await cli(['services', 'push-hook', 'web', '--rotate']);
    expect(rotated.stdout).toContain(url!);
    expect(/^secret +(sdph_\S+)$/m.exec(rotated.stdout)?.[1]).not.toBe(secret);
    expect((await cli(['services', 'push-hook'])).code).toBe(2);

    const bad = await cli(['services', 'git', 'web', '--url', 'file:///etc']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/git\.url: .*file:\/\/ is refused/);
    expect((await cli(['services', 'git'])).code).toBe(2);
  }, 120_000);

  it('polls the followed branch and pins SSH host keys through services git, showing both', async () => {
    // Polling and pinned host keys: set, shown (with fingerprints), bad values named, cleared.
    const hostKeyLine =
      'git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPeh9cZ4g/6yNZX/HvDBe2LW8BI/Zi2R+gCwr+C2wewc';
    const fingerprint = 'SHA256:uux2rzujDeovjh6R8QNzx0k16wYDVFNTwRCUd9t7/dQ';
    // A loopback port nobody listens on: the workers' git-poll job may run meanwhile, and
    // must reach nothing off this machine.
    const url = 'ssh://git@127.0.0.1:1/shop/web.git';
    const polled = await cli(['services', 'git', 'web', '--url', url, '--poll', '300']);
    expect(polled.code, polled.stderr).toBe(0);
    expect(polled.stdout).toContain('polling: every 300 s; not polled yet');
    expect(polled.stdout).toContain(
      'host key: not pinned yet (the next contact pins the key the server presents)',
    );
    const tooOften = await cli(['services', 'git', 'web', '--poll', '30']);
    expect(tooOften.code).not.toBe(0);
    expect(tooOften.stderr).toMatch(/git\.pollIntervalSeconds: must be at least 60/);
    const pinned = await cli(['services', 'git', 'web', '--known-hosts', '-'], `${hostKeyLine}\n`);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(pinned.stdout).toContain(`host key: git.example.com ssh-ed25519 ${fingerprint}`);
    const badKeys = await cli(['services', 'git', 'web', '--known-hosts', '-'], 'nonsense here\n');
    expect(badKeys.code).not.toBe(0);
    expect(badKeys.stderr).toMatch(/git\.knownHosts: line 1: /);
    const shown = await cli(['services', 'git', 'web']);
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trim().split('\n');
    expect(lines.slice(0, 2)).toEqual([
      `service web builds from ${url}#release:web (Dockerfile); credential: deploy_key`,
      `host key: git.example.com ssh-ed25519 ${fingerprint}`,
    ]);
    // Not polled yet, or polled by the workers' job and refused (nobody listens there).
    expect(lines[2]).toMatch(
      /^polling: every 300 s; (not polled yet|last polled \S+, failed: .*refused)/,
    );
    expect(lines).toHaveLength(3);
    expect((await cli(['services', 'git', 'web', '--poll', '60', '--no-poll'])).code).toBe(2);
    const cleared = await cli(['services', 'git', 'web', '--no-poll', '--no-known-hosts']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toContain('polling: off');
    expect(cleared.stdout).toContain('host key: not pinned yet');
  }, 120_000);
});
