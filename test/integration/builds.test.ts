/**
 * Builds from git for real: services with a git source on real git servers on loopback
 * (git daemon; git http-backend asking for a token; the test sshd with a platform-made
 * deploy key), built by the real Docker Engine from the repository's Dockerfile FROM an
 * offline base image, deployed by the self-hosted control plane's workers and reached
 * through a real Caddy. Then the mistakes a person makes, each named.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import {
  ensureTestImages,
  removeContainersByLabel,
  removeImagesByLabel,
} from '../support/docker.ts';
import {
  makeRepo,
  startGitDaemon,
  startGitHttp,
  type TestGitServer,
  type TestRepo,
} from '../support/git-server.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

const run = promisify(execFile);
const ready = (await available('docker')) && (await available('caddy'));

// BuildKit's cache outlives a run: each run's Dockerfiles differ, so their steps really run.
const runId = `${process.pid}-${Date.now()}`;

/** A web app busybox httpd serves: `/version` answers `version`, `/health` 200. */
const appFiles = (version: string, dockerfileExtra = ''): Record<string, string> => ({
  'app/Dockerfile': [
    'FROM selfdevop-test/busybox:base',
    `ENV TEST_RUN=${runId}`,
    'ARG GREETING=unset',
    'COPY www /www',
    'RUN echo "greeting is $GREETING" && echo "second line of the step"',
    dockerfileExtra,
    'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
    '',
  ].join('\n'),
  'app/www/version': `${version}\n`,
  'app/www/health': 'ok\n',
  'README.md': 'the build context is app/, not this\n',
});

const buildTimeoutMs = 10_000;
const token = 'tok-0123456789abcdef';

describe.skipIf(!ready)('building a service from git and deploying it', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let auth: string;
  let orgId: string;
  let projectId: string;
  let daemon: TestGitServer;
  let httpGit: TestGitServer & { requests: number };
  let sshd: TestSshd;
  let repo: TestRepo;
  let first: string;

  async function createService(name: string, git: Record<string, unknown>) {
    const res = await req('POST', '/api/services', {
      token: auth,
      body: {
        projectId,
        name,
        git,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        drainSeconds: 1,
      },
    });
    expect(res.status, res.text).toBe(201);
    return { id: res.body.id as string, host: res.body.hosts[0].host as string, body: res.body };
  }

  const deploy = (serviceId: string, extra: Record<string, unknown> = {}) =>
    req('POST', '/api/releases', { token: auth, body: { serviceId, ...extra } });

  async function settle(releaseId: string, deadlineMs = 60_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await req('GET', `/api/releases/${releaseId}`, { token: auth });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end)
        throw new Error(`release ${releaseId} still ${r.body.status} after ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function deployed(serviceId: string, extra: Record<string, unknown> = {}) {
    const res = await deploy(serviceId, extra);
    expect(res.status, res.text).toBe(202);
    return settle(res.body.id);
  }

  const logOf = async (releaseId: string) =>
    (
      (await req('GET', `/api/releases/${releaseId}/logs?limit=5000`, { token: auth })).body
        .items as { line: string; stream: string }[]
    ).map((l) => l.line);

  const viaCaddy = (host: string, path = '/version') =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      import('node:http').then(({ default: http }) => {
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
      }, reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    [daemon, httpGit, sshd, caddy] = await Promise.all([
      startGitDaemon(),
      startGitHttp(token),
      startSshd(),
      startCaddy(),
    ]);
    repo = await makeRepo(daemon.root, 'shop');
    first = await repo.commit(appFiles('one'));
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: {
        maxStepAttempts: 2,
        build: { timeoutMs: buildTimeoutMs, memoryMb: 512, cpus: 1 },
      },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'builder@example.com', password: 'correct horse battery' },
    });
    auth = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token: auth, body: { name: 'shop' } })).body
      .id;
    const node = await req('POST', '/api/nodes', {
      token: auth,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await Promise.all([caddy?.stop(), daemon?.stop(), httpGit?.stop(), sshd?.stop()]);
    if (orgId) {
      await removeContainersByLabel({ 'selfdevop.org': orgId });
      await removeImagesByLabel({ 'selfdevop.org': orgId });
    }
  });

  it('builds the followed branch from a sub-directory, streams the build log, and serves it; a push deploys the new commit; an earlier sha redeploys without a rebuild', async () => {
    const web = await createService('web', {
      url: daemon.url('shop'),
      ref: 'main',
      subdir: 'app',
      buildArgs: { GREETING: 'hello-from-build-arg' },
    });
    expect(web.body.git).toEqual({
      url: daemon.url('shop'),
      ref: 'main',
      subdir: 'app',
      dockerfile: 'Dockerfile',
      buildArgs: { GREETING: 'hello-from-build-arg' },
      knownHosts: null,
      pollIntervalSeconds: null,
    });

    const queued = await deploy(web.id);
    expect(queued.status, queued.text).toBe(202);
    // Resolved before it was queued: the release names the commit at once.
    expect(queued.body).toMatchObject({ gitRef: 'main', gitSha: first });
    const r1 = await settle(queued.body.id);
    expect(r1.status, r1.error).toBe('completed');
    expect(r1.imageDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r1.image).toMatch(new RegExp(`^web-[0-9a-z]{1,6}:${first}$`));
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'one' });
    const log1 = await logOf(r1.id);
    expect(log1).toContain('greeting is hello-from-build-arg');
    expect(log1).toContain('second line of the step');
    // The instruction as it starts, then its output, in order.
    expect(log1).toContainEqual(expect.stringMatching(/^\[\d\/\d\] RUN echo "greeting is/));
    expect(log1).toContainEqual(
      expect.stringMatching(new RegExp(`^building ${r1.image} on node local from app/Dockerfile`)),
    );

    const second = await repo.commit(appFiles('two'));
    const r2 = await deployed(web.id, { gitRef: 'main' });
    expect(r2.status, r2.error).toBe('completed');
    expect(r2.gitSha).toBe(second);
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'two' });

    const r3 = await deployed(web.id, { gitRef: first });
    expect(r3.status, r3.error).toBe('completed');
    expect(r3.gitSha).toBe(first);
    expect(r3.imageDigest).toBe(r1.imageDigest);
    const log3 = await logOf(r3.id);
    expect(log3).toContain(`image ${r1.image} is already on node local: reused, nothing built`);
    expect(log3.some((l) => l.includes('greeting is'))).toBe(false);
    // r1 is still warm (its window is 600 s) with the same configuration: its container
    // serves again under r3, none started.
    expect(log3).toContainEqual(
      expect.stringMatching(new RegExp(`^reusing the warm containers of release ${r1.id} `)),
    );
    expect(r3.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(r3.containerId).toBe(r1.containerId);
    expect(await logOf(r1.id)).toContain(
      `containers taken over by release ${r3.id} (same image, same configuration): this release runs nothing any more`,
    );
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'one' });

    // A tag names its commit too (an annotated tag's peeled commit).
    await repo.tag('v2.0.0', second);
    const r4 = await deployed(web.id, { gitRef: 'v2.0.0' });
    expect(r4.status, r4.error).toBe('completed');
    expect(r4.gitSha).toBe(second);
    expect(r4.containerId).toBe(r2.containerId);
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'two' });

    // A changed environment: the warm copy of the first commit no longer fits, so it starts anew.
    const patched = await req('PATCH', `/api/services/${web.id}`, {
      token: auth,
      body: { env: { GREETING: 'changed' } },
    });
    expect(patched.status, patched.text).toBe(200);
    const r5 = await deployed(web.id, { gitRef: first });
    expect(r5.status, r5.error).toBe('completed');
    expect(r5.containerId).not.toBe(r3.containerId);
    expect(await logOf(r5.id)).toContain(
      `release ${r3.id} is still warm with this image, but new containers start: the configuration changed since release ${r3.id} started (environment, secrets, linked data services, port, resources or health check)`,
    );
    expect(await viaCaddy(web.host)).toEqual({ status: 200, body: 'one' });
  }, 180_000);

  it('a commit that changes only application code reuses the dependency layers: the install step is CACHED and its layer shared, whatever the commit time or release', async () => {
    // An install stand-in (no network here): it reads the vendored dependencies, which are
    // copied before the application code, as a repository's Dockerfile is meant to.
    const dockerfile = [
      'FROM selfdevop-test/busybox:base',
      `ENV TEST_RUN=${runId}-cache`,
      'COPY deps /deps',
      'RUN echo "installing $(cat /deps/* | wc -c) bytes of dependencies" && cat /deps/* > /installed',
      'COPY www /www',
      'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]',
      '',
    ].join('\n');
    const cached = await makeRepo(daemon.root, 'cached');
    await cached.commit({
      Dockerfile: dockerfile,
      'deps/a.js': 'exports.a = 1;\n'.repeat(200),
      'deps/b.js': 'exports.b = 2;\n'.repeat(200),
      'www/version': 'c1\n',
      'www/health': 'ok\n',
    });
    const svc = await createService('cached', { url: daemon.url('cached') });
    const r1 = await deployed(svc.id);
    expect(r1.status, r1.error).toBe('completed');
    const log1 = await logOf(r1.id);
    expect(log1).toContainEqual(expect.stringMatching(/^\[3\/4\] RUN echo "installing/));
    expect(log1).toContain('installing 6000 bytes of dependencies');

    // A later commit (git archive stamps every file with its commit's time, so every mtime
    // differs), another release id in the image's labels: only www/version changed.
    await new Promise((r) => setTimeout(r, 1100));
    await cached.commit({ 'www/version': 'c2\n' });
    const r2 = await deployed(svc.id);
    expect(r2.status, r2.error).toBe('completed');
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'c2' });
    const log2 = await logOf(r2.id);
    expect(log2).toContainEqual(expect.stringMatching(/^CACHED \[2\/4\] COPY deps \/deps/));
    expect(log2).toContainEqual(expect.stringMatching(/^CACHED \[3\/4\] RUN echo "installing/));
    expect(log2).not.toContain('installing 6000 bytes of dependencies');
    expect(log2).toContainEqual(expect.stringMatching(/^\[4\/4\] COPY www \/www/));
    // The same layers below the application's: the install layer itself is reused.
    const layers = async (image: string) =>
      JSON.parse(
        (await run('docker', ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', image]))
          .stdout,
      ) as string[];
    const [l1, l2] = [await layers(r1.imageDigest), await layers(r2.imageDigest)];
    expect(l2.length).toBe(l1.length);
    expect(l2.slice(0, -1)).toEqual(l1.slice(0, -1));
    expect(l2.at(-1)).not.toBe(l1.at(-1));
  }, 120_000);

  it('push-to-deploy: a signed GitHub push deploys the pushed commit; pushes in quick succession deploy the latest, not each in turn', async () => {
    const pushed = await makeRepo(daemon.root, 'pushed');
    const c1 = await pushed.commit(appFiles('p1'));
    const svc = await createService('hooked', { url: daemon.url('pushed'), subdir: 'app' });
    const made = await req('POST', `/api/services/${svc.id}/push-hook`, { token: auth });
    expect(made.status, made.text).toBe(201);
    const hook = made.body as { path: string; secret: string };
    let delivery = 0;
    // Signed as GitHub signs: HMAC-SHA256 of the raw body with the hook's secret.
    const push = (sha: string) => {
      const body = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: sha });
      const sig = createHmac('sha256', hook.secret).update(body).digest('hex');
      return req('POST', hook.path, {
        rawBody: body,
        headers: {
          'x-github-event': 'push',
          'x-github-delivery': `push-${runId}-${++delivery}`,
          'x-hub-signature-256': `sha256=${sig}`,
        },
      });
    };
    const releasesOf = async () =>
      (
        (await req('GET', `/api/releases?serviceId=${svc.id}&limit=50`, { token: auth })).body
          .items as { id: string; gitSha: string; status: string }[]
      ).sort((a, b) => (a.id < b.id ? -1 : 1));

    const r1 = await push(c1);
    expect(r1.status, r1.text).toBe(202);
    expect(r1.body).toMatchObject({ status: 'deploying', gitSha: c1 });
    expect(await settle(r1.body.releaseId)).toMatchObject({ status: 'completed', gitSha: c1 });
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'p1' });

    // Four commits land; their pushes arrive while the first of them builds, two at once.
    const c2 = await pushed.commit(appFiles('p2'));
    const c3 = await pushed.commit(appFiles('p3'));
    const c4 = await pushed.commit(appFiles('p4'));
    const c5 = await pushed.commit(appFiles('p5'));
    const r2 = await push(c2);
    expect(r2.body, r2.text).toMatchObject({ status: 'deploying', gitSha: c2 });
    const burst = await Promise.all([push(c3), push(c4)]);
    const r5 = await push(c5);
    for (const r of [...burst, r5]) {
      expect(r.status, r.text).toBe(202);
      expect(r.body.status, r.text).toBe('queued');
    }
    expect(await settle(r2.body.releaseId)).toMatchObject({ status: 'completed', gitSha: c2 });
    // The end of c2's release starts the latest wanted commit, c5; c3 and c4 never build.
    const end = Date.now() + 60_000;
    let last: { id: string; gitSha: string; status: string } | undefined;
    while (Date.now() < end) {
      last = (await releasesOf()).at(-1);
      if (last && last.gitSha === c5 && ['completed', 'failed'].includes(last.status)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(last).toMatchObject({ gitSha: c5, status: 'completed' });
    expect((await releasesOf()).map((r) => r.gitSha)).toEqual([c1, c2, c5]);
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'p5' });
    // A push replayed (the same delivery id) is not a second deploy.
    const body = JSON.stringify({ ref: 'refs/heads/main', before: c4, after: c5 });
    const replayed = await req('POST', hook.path, {
      rawBody: body,
      headers: {
        'x-github-event': 'push',
        'x-github-delivery': `push-${runId}-${delivery}`,
        'x-hub-signature-256': `sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`,
      },
    });
    expect(replayed.body.status).toBe('ignored');
    expect((await releasesOf()).length).toBe(3);
  }, 180_000);

  it('refuses what it can know at once with a 400 naming the problem, and fails a release whose build cannot work with the reason in its log while the current release keeps serving', async () => {
    const bad = async (body: Record<string, unknown>, field: RegExp) => {
      const res = await req('POST', '/api/services', {
        token: auth,
        body: { projectId, name: 'bad', containerPort: 8080, healthcheckPath: '/health', ...body },
      });
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.message).toMatch(field);
    };
    await bad({}, /^image: is required unless the service has a git source/);
    await bad({ git: { url: 'file:///etc' } }, /^git\.url: .*file:\/\/ is refused/);
    await bad({ git: { url: 'ext::sh -c touch% /tmp/pwned' } }, /^git\.url: /);
    await bad({ git: { url: '--upload-pack=touch /tmp/x' } }, /^git\.url: must not contain/);
    await bad(
      { git: { url: 'https://user:secret@example.com/r.git' } },
      /^git\.url: must not carry credentials/,
    );
    await bad(
      { git: { url: 'http://169.254.169.254/r.git' } },
      /^git\.url: must not point at a link-local/,
    );
    await bad(
      { git: { url: daemon.url('shop'), subdir: '../etc' } },
      /^git\.subdir: must not contain a \.\. segment/,
    );
    await bad(
      { git: { url: daemon.url('shop'), dockerfile: '/Dockerfile' } },
      /^git\.dockerfile: must be relative/,
    );
    await bad({ git: { url: daemon.url('shop'), ref: 'main..x' } }, /^git\.ref: must be a branch/);
    await bad(
      { git: { url: 'git@example.com:shop.git', token: 'x' } },
      /^git\.token: an ssh repository takes a deploy key/,
    );

    const web = await createService('web2', { url: daemon.url('shop'), subdir: 'app' });
    const good = await deployed(web.id);
    expect(good.status, good.error).toBe('completed');
    const serving = (await viaCaddy(web.host)).body;

    const refused = async (body: Record<string, unknown>, code: string, message: RegExp) => {
      const res = await deploy(web.id, body);
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.code).toBe(code);
      expect(res.body.error.message).toMatch(message);
    };
    await refused(
      { gitRef: 'no-such-branch' },
      'git_ref_not_found',
      /^gitRef: no-such-branch is not a branch or tag of git:\/\//,
    );
    await refused({ gitRef: 'abc1234' }, 'git_ref_not_found', /full 40-character sha/);
    await refused(
      { gitRef: 'main', image: 'selfdevop-test/app:v1' },
      'invalid_input',
      /^gitRef: give an image or a gitRef, not both/,
    );

    const closed = await freePort();
    const gone = await createService('gone', { url: `git://127.0.0.1:${closed}/shop.git` });
    const unreachable = await deploy(gone.id);
    expect(unreachable.status, unreachable.text).toBe(400);
    expect(unreachable.body.error.code).toBe('git_unreachable');
    expect(unreachable.body.error.message).toMatch(/could not be read: .*Connection refused/);

    const failing = async (
      files: Record<string, string | null>,
      branch: string,
      reason: RegExp,
    ) => {
      await repo.commit({ ...appFiles('broken'), ...files }, branch);
      const r = await deployed(web.id, { gitRef: branch });
      expect(r.status).toBe('failed');
      expect(r.error).toMatch(reason);
      expect(await logOf(r.id)).toContainEqual(
        expect.stringMatching(
          new RegExp(`release failed in step build: ${reason.source.replace(/^\^/, '')}`),
        ),
      );
      expect(await viaCaddy(web.host)).toEqual({ status: 200, body: serving });
      return r;
    };
    const broken = await failing(
      {
        'app/Dockerfile': `FROM selfdevop-test/busybox:base\nENV TEST_RUN=${runId}\nRUN echo about to fail\nRUN echo boom && false\n`,
      },
      'broken',
      /^build failed: \[3\/3\] RUN echo boom && false: .*exit code: 1/,
    );
    expect(await logOf(broken.id)).toContain('about to fail');
    await failing(
      { 'app/Dockerfile': null },
      'no-dockerfile',
      /Dockerfile app\/Dockerfile is not in commit [0-9a-f]{40}/,
    );

    // A build that outlives its timeout is cancelled: its step's process is killed with it.
    const marker = `${987_000 + Math.floor(Math.random() * 1000)}`;
    const slow = await failing(
      { 'app/Dockerfile': `FROM selfdevop-test/busybox:base\nRUN sleep ${marker}\n` },
      'slow',
      /^build timed out after 10 s and was cancelled/,
    );
    expect(slow.steps.find((s: { name: string }) => s.name === 'build').status).toBe('failed');
    expect(await processesRunning(`sleep ${marker}`)).toEqual([]);
  }, 180_000);

  it('reads a private repository over HTTPS with a token, which is never shown, and says when it is missing or wrong', async () => {
    const priv = await makeRepo(httpGit.root, 'private');
    const sha = await priv.commit(appFiles('private'));
    const svc = await createService('private', { url: httpGit.url('private'), subdir: 'app' });

    const denied = await deploy(svc.id);
    expect(denied.status, denied.text).toBe(400);
    expect(denied.body.error.code).toBe('git_access_denied');
    expect(denied.body.error.message).toMatch(/set the service's git token or add its deploy key/);

    const wrong = await req('PATCH', `/api/services/${svc.id}`, {
      token: auth,
      body: { git: { url: httpGit.url('private'), token: 'not-the-token' } },
    });
    expect(wrong.status, wrong.text).toBe(200);
    expect(wrong.body.git.subdir).toBe('app');
    expect(wrong.body.gitCredentialKind).toBe('token');
    expect((await deploy(svc.id)).body.error.code).toBe('git_access_denied');

    const right = await req('PATCH', `/api/services/${svc.id}`, {
      token: auth,
      body: { git: { url: httpGit.url('private'), token } },
    });
    expect(right.status, right.text).toBe(200);
    const r = await deployed(svc.id);
    expect(r.status, r.error).toBe('completed');
    expect(r.gitSha).toBe(sha);
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'private' });

    // Write-only: not in the service, the release, its log or the audit trail.
    const shown = [
      (await req('GET', `/api/services/${svc.id}`, { token: auth })).text,
      (await req('GET', `/api/services?projectId=${projectId}`, { token: auth })).text,
      (await req('GET', `/api/releases/${r.id}`, { token: auth })).text,
      (await req('GET', `/api/releases/${r.id}/logs`, { token: auth })).text,
      (await req('GET', '/api/audit?limit=200', { token: auth })).text,
    ];
    for (const text of shown) {
      expect(text).not.toContain(token);
      expect(text).not.toContain('sealedGitCredential');
    }
  }, 120_000);

  it('reads a repository over SSH with a deploy key the platform made, whose public half alone is shown', async () => {
    const bareRoot = await makeRepo(daemon.root, 'over-ssh');
    const sha = await bareRoot.commit(appFiles('ssh'));
    const user = os.userInfo().username;
    const port = new URL(sshd.dockerHost).port;
    const url = `ssh://${user}@127.0.0.1:${port}${bareRoot.bare}`;
    const svc = await createService('viassh', { url, subdir: 'app' });

    const noKeyYet = await deploy(svc.id);
    expect(noKeyYet.status, noKeyYet.text).toBe(400);
    expect(noKeyYet.body.error.code).toBe('git_access_denied');

    const key = await req('POST', `/api/services/${svc.id}/deploy-key`, { token: auth });
    expect(key.status, key.text).toBe(201);
    expect(key.body.publicKey).toMatch(
      /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5[A-Za-z0-9+/=]+ selfdevop-viassh$/,
    );
    const got = await req('GET', `/api/services/${svc.id}`, { token: auth });
    expect(got.body.gitPublicKey).toBe(key.body.publicKey);
    expect(got.body.gitCredentialKind).toBe('deploy_key');
    expect(got.text).not.toContain('PRIVATE KEY');

    // Not yet added to the repository's deploy keys: refused, and said so.
    expect((await deploy(svc.id)).body.error.code).toBe('git_access_denied');
    await sshd.authorize(key.body.publicKey);
    const r = await deployed(svc.id);
    expect(r.status, r.error).toBe('completed');
    expect(r.gitSha).toBe(sha);
    expect(await viaCaddy(svc.host)).toEqual({ status: 200, body: 'ssh' });

    const http = await req('PATCH', `/api/services/${svc.id}`, {
      token: auth,
      body: { git: { url: httpGit.url('x') } },
    });
    expect(http.status).toBe(400);
    expect(http.body.error.message).toMatch(/^git\.url: the service holds a deploy key/);
  }, 120_000);
});

/** Pids of processes whose command line is `cmd`, read from /proc; bounded wait for them to go. */
async function processesRunning(cmd: string): Promise<number[]> {
  const end = Date.now() + 10_000;
  for (;;) {
    const found: number[] = [];
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const line = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (line.split('\0').join(' ').trim() === cmd) found.push(Number(pid));
    }
    if (found.length === 0 || Date.now() > end) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
}
