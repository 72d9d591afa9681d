/**
 * Builds from git, step 3, for real: a Node.js repository without a Dockerfile built by the
 * zero-config builder on the offline base image (selfdevop-test/node-build:24) with npm ci
 * and its build script, `.dockerignore` honoured in the context the worker streams, and a
 * context over the size cap failing with the cap named. Real git daemon on loopback, the
 * real Docker Engine, the self-hosted control plane's workers, a real Caddy.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  ensureTestImages,
  removeContainersByLabel,
  removeImagesByLabel,
} from '../support/docker.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
if (!ready && process.env.CI === 'true')
  throw new Error('builds-more needs Docker and Caddy under CI=true');
if (!ready) console.warn('SKIPPED builds-more: Docker Engine or Caddy not available here');

// BuildKit's cache outlives a run: each run's sources differ, so their steps really run.
const runId = `${process.pid}-${Date.now()}`;
const maxSourceMb = 1;

/** A Node.js app with no Dockerfile: a lockfile with no dependencies, a build and a start script. */
const nodeApp = (version: string): Record<string, string | null> => ({
  'package.json': JSON.stringify({
    name: 'zero-config',
    version: '1.0.0',
    private: true,
    scripts: { build: 'node build.js', start: 'node server.js' },
  }),
  'package-lock.json': JSON.stringify({
    name: 'zero-config',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: 'zero-config', version: '1.0.0' } },
  }),
  // The build script's output is what the app serves: proof that `npm run build` ran.
  'build.js': `require('fs').writeFileSync('version.txt', ${JSON.stringify(`${version}-built-${runId}`)});\n`,
  'server.js': [
    "const fs = require('fs');",
    "require('http').createServer((req, res) => {",
    "  if (req.url === '/health') return res.end('ok');",
    "  if (req.url === '/ignored') return res.end(JSON.stringify(['private/key.txt', 'debug.log', '.dockerignore'].filter((f) => fs.existsSync(f))));",
    "  res.end(fs.readFileSync('version.txt', 'utf8'));",
    '}).listen(8080);',
    '',
  ].join('\n'),
  '.dockerignore': 'private\n*.log\n',
  'private/key.txt': 'never in the image\n',
  'debug.log': 'neither\n',
});

describe.skipIf(!ready)('builds: zero-config Node.js, .dockerignore, the size cap', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let auth: string;
  let orgId: string;
  let projectId: string;
  let daemon: TestGitServer;

  async function createService(name: string, url: string, git: Record<string, unknown> = {}) {
    const res = await req('POST', '/api/services', {
      token: auth,
      body: {
        projectId,
        name,
        git: { url, ...git },
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 15_000, timeoutMs: 1_000 },
        drainSeconds: 1,
      },
    });
    expect(res.status, res.text).toBe(201);
    return {
      id: res.body.id as string,
      host: res.body.hosts[0].host as string,
      body: res.body,
      text: res.text,
    };
  }

  async function deployed(serviceId: string, deadlineMs = 120_000) {
    const res = await req('POST', '/api/releases', { token: auth, body: { serviceId } });
    expect(res.status, res.text).toBe(202);
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await req('GET', `/api/releases/${res.body.id}`, { token: auth });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end) throw new Error(`release still ${r.body.status}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  const logOf = async (releaseId: string) =>
    (
      (await req('GET', `/api/releases/${releaseId}/logs?limit=5000`, { token: auth })).body
        .items as { line: string }[]
    ).map((l) => l.line);

  const viaCaddy = (host: string, path: string) =>
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
    [daemon, caddy] = await Promise.all([startGitDaemon(), startCaddy()]);
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: {
        maxStepAttempts: 1,
        build: {
          timeoutMs: 120_000,
          memoryMb: 512,
          cpus: 1,
          nodeImage: 'selfdevop-test/node-build:24',
          maxSourceBytes: maxSourceMb * 1024 * 1024,
        },
      },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'zero-config@example.com', password: 'correct horse battery' },
    });
    auth = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token: auth, body: { name: 'zc' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      token: auth,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
  }, 180_000);

  afterAll(async () => {
    await api?.close();
    await Promise.all([caddy?.stop(), daemon?.stop()]);
    if (orgId) {
      await removeContainersByLabel({ 'selfdevop.org': orgId });
      await removeImagesByLabel({ 'selfdevop.org': orgId });
    }
  });

  it('builds a Node.js app without a Dockerfile (npm ci, npm run build, npm start) and leaves out what .dockerignore names', async () => {
    const repo = await makeRepo(daemon.root, 'node-app');
    await repo.commit(nodeApp('one'));
    const web = await createService('node-web', daemon.url('node-app'));
    const r = await deployed(web.id);
    const log = await logOf(r.id);
    expect(r.status, `${r.error}\n${log.join('\n')}`).toBe('completed');
    expect(log).toContain(
      'no Dockerfile: zero-config Node.js build on selfdevop-test/node-build:24 (npm ci from package-lock.json, npm run build, npm start)',
    );
    expect(log).toContain('  RUN npm ci --no-audit --no-fund');
    expect(log).toContainEqual(
      expect.stringMatching(/^build context: 5 files, \d+ KiB \(after \.dockerignore\)$/),
    );
    expect(await viaCaddy(web.host, '/version')).toEqual({
      status: 200,
      body: `one-built-${runId}`,
    });
    // Only .dockerignore itself reached the image; what it names never left the worker.
    expect(await viaCaddy(web.host, '/ignored')).toEqual({
      status: 200,
      body: JSON.stringify(['.dockerignore']),
    });

    // Application code changed, the lockfile not: the installed layer is reused.
    await repo.commit({ 'build.js': nodeApp('two')['build.js']! });
    const r2 = await deployed(web.id);
    expect(r2.status, r2.error).toBe('completed');
    expect(await logOf(r2.id)).toContainEqual(expect.stringMatching(/^CACHED .*npm ci/));
    expect(await viaCaddy(web.host, '/version')).toEqual({
      status: 200,
      body: `two-built-${runId}`,
    });
  }, 300_000);

  it('fails a build naming what is missing (no lockfile, no start script, neither Dockerfile nor package.json) or the size cap, and the serving release stays', async () => {
    const repo = await makeRepo(daemon.root, 'broken');
    const app = nodeApp('ok');
    await repo.commit(app);
    const svc = await createService('broken', daemon.url('broken'));
    const good = await deployed(svc.id);
    expect(good.status, good.error).toBe('completed');

    await repo.commit({ 'package-lock.json': null });
    const noLock = await deployed(svc.id);
    expect(noLock.status).toBe('failed');
    expect(noLock.error).toContain('no Dockerfile, and no lockfile beside package.json');

    await repo.commit({
      'package-lock.json': app['package-lock.json']!,
      'package.json': JSON.stringify({ scripts: { build: 'node build.js' } }),
    });
    const noStart = await deployed(svc.id);
    expect(noStart.error).toContain('package.json has no "start" script');

    await repo.commit({ 'package.json': null });
    const nothing = await deployed(svc.id);
    expect(nothing.error).toMatch(
      /^Dockerfile Dockerfile is not in commit [0-9a-f]{40}, and there is no package\.json for a zero-config Node\.js build$/,
    );

    // Over the cap (1 MB here): failed before anything is sent, the cap named.
    await repo.commit({
      'package.json': app['package.json']!,
      'blob.bin': 'x'.repeat(1536 * 1024),
    });
    const big = await deployed(svc.id);
    expect(big.status).toBe('failed');
    expect(big.error).toBe(
      'the build context is 1.5 MB, over the cap of 1.0 MB (BUILD_MAX_SOURCE_MB): leave large files out with .dockerignore, or raise the cap',
    );
    // …and a .dockerignore that leaves the blob out makes it fit.
    await repo.commit({ '.dockerignore': 'private\n*.log\n*.bin\n' });
    const fits = await deployed(svc.id);
    expect(fits.status, fits.error).toBe('completed');
    expect(await viaCaddy(svc.host, '/version')).toEqual({
      status: 200,
      body: `ok-built-${runId}`,
    });
  }, 400_000);

  it('offers build secrets to RUN --mount=type=secret only: write-only in the API, absent from the log, the layers and the history', async () => {
    const secret = `npm_${runId}_${Math.random().toString(36).slice(2)}`;
    const repo = await makeRepo(daemon.root, 'secret-app');
    await repo.commit({
      Dockerfile: [
        'FROM selfdevop-test/busybox:base',
        `ENV RUN_ID=${runId}`,
        'RUN --mount=type=secret,id=npm_token,required=true echo "token has $(wc -c < /run/secrets/npm_token) bytes" && cat /run/secrets/npm_token',
        'RUN mkdir -p /www && echo ok > /www/health && echo secret-app > /www/version',
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        '',
      ].join('\n'),
    });
    const svc = await createService('secret-app', daemon.url('secret-app'), {
      buildSecrets: { npm_token: secret },
    });
    expect(svc.body.buildSecrets).toEqual(['npm_token']);
    expect(svc.text).not.toContain(secret);
    const got = await req('GET', `/api/services/${svc.id}`, { token: auth });
    expect(got.body.buildSecrets).toEqual(['npm_token']);
    expect(got.text).not.toContain(secret);

    const r = await deployed(svc.id);
    const log = await logOf(r.id);
    expect(r.status, `${r.error}\n${log.join('\n')}`).toBe('completed');
    expect(log).toContainEqual(expect.stringMatching(/, build secrets: npm_token$/));
    expect(log).toContain(`token has ${secret.length} bytes`);
    // The step printed it (cat): the log masks it, as it masks runtime secrets.
    expect(log.filter((l) => l.includes(secret))).toEqual([]);
    expect(log).toContain('***');
    const { execFile } = await import('node:child_process');
    const saved = await new Promise<Buffer>((resolve, reject) =>
      execFile(
        'docker',
        ['save', r.image],
        { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
        (e, out) => (e ? reject(e) : resolve(out)),
      ),
    );
    expect(saved.includes(Buffer.from(secret))).toBe(false);
    expect(saved.includes(Buffer.from(runId))).toBe(true); // the same search finds what is there
    const history = await new Promise<string>((resolve, reject) =>
      execFile('docker', ['history', '--no-trunc', r.image], (e, out) =>
        e ? reject(e) : resolve(out),
      ),
    );
    expect(history).not.toContain(secret);
    const audit = await req('GET', '/api/audit?limit=100', { token: auth });
    expect(audit.text).not.toContain(secret);

    // Removed, the required mount fails the build naming the id; the release before keeps serving.
    const patched = await req('PATCH', `/api/services/${svc.id}`, {
      token: auth,
      body: { git: { url: daemon.url('secret-app'), buildSecrets: { npm_token: null } } },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body.buildSecrets).toEqual([]);
    // A changed instruction before the mount, so the step runs again (a cached step needs no secret).
    await repo.commit({
      Dockerfile: [
        'FROM selfdevop-test/busybox:base',
        `ENV RUN_ID=${runId} AGAIN=1`,
        'RUN --mount=type=secret,id=npm_token,required=true cat /run/secrets/npm_token',
        'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
        '',
      ].join('\n'),
    });
    const without = await deployed(svc.id);
    expect(without.status).toBe('failed');
    expect(without.error).toMatch(/npm_token/);
    expect(await viaCaddy(svc.host, '/version')).toEqual({ status: 200, body: 'secret-app' });

    const bad = await req('PATCH', `/api/services/${svc.id}`, {
      token: auth,
      body: { git: { url: daemon.url('secret-app'), buildSecrets: { 'no spaces': 'x' } } },
    });
    expect(bad.status, bad.text).toBe(400);
    expect(bad.body.error.message).toMatch(/build secret ids are letters, digits/);
  }, 300_000);
});
