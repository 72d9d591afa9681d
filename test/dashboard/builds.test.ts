/**
 * The dashboard's side of builds from git, over HTTP (PostgreSQL and a git daemon on
 * loopback; no engine: releases stay queued): a service created from a repository, its git
 * source form with a write-only token, a deploy key, the Deploy form with a ref, and the
 * commit on the release page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollGitSources } from '../../core/builds/poll.ts';
import { startSelfhostApi } from '../support/api.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';

describe('dashboard: services built from git', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let daemon: TestGitServer;
  let cookie: string;
  let sha: string;

  const post = (path: string, fields: Record<string, string>) =>
    fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: api.url,
        cookie,
      },
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    });
  const page = async (path: string, flash = '') =>
    (
      await fetch(`${api.url}${path}`, {
        headers: { cookie: flash ? `${cookie}; ${flash}` : cookie },
      })
    ).text();
  /** The flash cookie a refused form post leaves, for the page it returns to. */
  const flashOf = (res: Response) =>
    res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .find((c) => c.startsWith('sdo_flash=')) ?? '';

  beforeAll(async () => {
    [api, daemon] = await Promise.all([startSelfhostApi(), startGitDaemon()]);
    const repo = await makeRepo(daemon.root, 'site');
    sha = await repo.commit({ Dockerfile: 'FROM selfdevop-test/busybox:base\n' });
    const signup = await fetch(`${api.url}/dashboard/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ email: 'git@example.com', password: 'correct horse battery' }),
      redirect: 'manual',
    });
    cookie = signup.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .filter((c) => !c.startsWith('sdo_flash='))
      .join('; ');
  }, 60_000);
  afterAll(async () => {
    await api?.close();
    await daemon?.stop();
  });

  it('creates a service from a repository, sets its source with a write-only token, makes a deploy key, and deploys a ref whose commit the release shows', async () => {
    expect((await post('/dashboard/projects', { name: 'site' })).status).toBe(303);
    const projects = await page('/dashboard');
    const projectId = /\/dashboard\/projects\/(prj_[0-9a-z]+)/.exec(projects)![1]!;
    expect(await page(`/dashboard/projects/${projectId}`)).toContain('<label for="svc-git"');
    const created = await post(`/dashboard/projects/${projectId}/services`, {
      name: 'site',
      image: '',
      gitUrl: daemon.url('site'),
      containerPort: '8080',
      healthcheckPath: '/health',
    });
    expect(created.status).toBe(303);
    const servicePath = created.headers.get('location')!;
    expect(servicePath).toMatch(/^\/dashboard\/services\/svc_/);
    const serviceId = servicePath.split('/').at(-1)!;

    let html = await page(servicePath);
    expect(html).toContain('data-git-source');
    expect(html).toContain(`<code>${daemon.url('site')}</code>`);
    expect(html).toContain('<input id="deploy-ref" name="gitRef" value="main" />');

    const token = 'dashboard-token-write-only';
    const saved = await post(`/dashboard/services/${serviceId}/git`, {
      url: 'https://git.example.com/site.git',
      ref: 'main',
      subdir: '',
      dockerfile: 'Dockerfile',
      token,
      buildArgs: 'A=1\nB=two words',
    });
    expect(saved.status).toBe(303);
    html = await page(servicePath);
    expect(html).toContain('an access token (write-only)');
    expect(html).toContain('A=1\nB=two words</textarea>');
    expect(html).not.toContain(token);

    // A build secret: saved from the page, shown by id only; then removed.
    const buildSecret = 'dashboard-build-secret-write-only';
    const secretSaved = await post(`/dashboard/services/${serviceId}/build-secrets`, {
      secretId: 'npm_token',
      value: buildSecret,
    });
    expect(secretSaved.status).toBe(303);
    expect(secretSaved.headers.get('location')).toBe(`${servicePath}#build-secrets`);
    html = await page(servicePath, flashOf(secretSaved));
    expect(html).toMatch(/<dd data-build-secrets>\s*npm_token\s*<\/dd>/);
    expect(html).toContain('Build secret npm_token saved');
    expect(html).not.toContain(buildSecret);
    const badSecret = await post(`/dashboard/services/${serviceId}/build-secrets`, {
      secretId: 'not ok',
      value: 'x',
    });
    expect(await page(servicePath, flashOf(badSecret))).toMatch(/build secret ids are letters/);
    await post(`/dashboard/services/${serviceId}/build-secrets`, {
      secretId: 'npm_token',
      value: '',
      remove: '1',
    });
    expect(await page(servicePath)).toMatch(/<dd data-build-secrets>\s*none\s*<\/dd>/);

    // The push webhook: made from the page, its secret shown once, the URL on the page after.
    expect(html).toContain('No push webhook yet.');
    const hookMade = await post(`/dashboard/services/${serviceId}/push-hook`, {});
    expect(hookMade.status).toBe(201);
    const madeHtml = await hookMade.text();
    const hookSecret = /Secret: <code>(sdph_[^<]+)<\/code>/.exec(madeHtml)?.[1];
    expect(hookSecret).toBeDefined();
    html = await page(servicePath);
    expect(html).toMatch(/Webhook URL: <code>[^<]*\/api\/hooks\/push\/ph_/);
    expect(html).toContain('Rotate the secret');
    expect(html).not.toContain(hookSecret!);

    // A deploy key is for SSH repositories: the page says so; then it makes one.
    const refused = await post(`/dashboard/services/${serviceId}/deploy-key`, {});
    expect(refused.status).toBe(303);
    expect(await page(servicePath, flashOf(refused))).toMatch(/a deploy key is used over SSH/);
    await post(`/dashboard/services/${serviceId}/git`, {
      url: 'git@git.example.com:site.git',
      ref: 'main',
      subdir: '',
      dockerfile: 'Dockerfile',
      buildArgs: '',
    });
    await post(`/dashboard/services/${serviceId}/deploy-key`, {});
    html = await page(servicePath);
    expect(html).toMatch(/<code data-public-key>ssh-ed25519 AAAA\S+ selfdevop-site<\/code>/);
    expect(html).not.toContain('PRIVATE KEY');

    // Back to the daemon's repository: a deploy key only goes with SSH, so drop it too.
    const kept = await post(`/dashboard/services/${serviceId}/git`, {
      url: daemon.url('site'),
      ref: 'main',
      subdir: '',
      dockerfile: 'Dockerfile',
      buildArgs: '',
    });
    expect(await page(servicePath, flashOf(kept))).toMatch(/the service holds a deploy key/);
    const dropped = await post(`/dashboard/services/${serviceId}/git`, {
      url: daemon.url('site'),
      ref: 'main',
      subdir: '',
      dockerfile: 'Dockerfile',
      buildArgs: '',
      dropCredential: '1',
    });
    expect(flashOf(dropped)).toMatch(/notice/);
    html = await page(servicePath);
    expect(html).toContain('none (a public repository)');
    expect(html).not.toContain('data-public-key');
    await fetch(`${api.url}/dashboard/nodes`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: api.url, cookie },
      body: new URLSearchParams({
        name: 'local',
        dockerHost: 'unix:///var/run/docker.sock',
        address: '127.0.0.1',
      }),
      redirect: 'manual',
    });
    const deployed = await post(`/dashboard/services/${serviceId}/deploy`, {
      environment: 'production',
      gitRef: 'main',
      image: '',
    });
    expect(deployed.status).toBe(303);
    expect(decodeURIComponent(flashOf(deployed))).toBe('');
    const releasePath = deployed.headers.get('location')!;
    expect(releasePath).toMatch(/^\/dashboard\/releases\/rel_/);
    const release = await page(releasePath);
    expect(release).toMatch(
      new RegExp(`data-git-sha>\\s*${sha}\\s*<span class="hint">\\(main\\)</span>`),
    );
  });

  it('pins SSH host keys and sets the poll interval from the git source form, and shows what the last poll saw', async () => {
    const projects = await page('/dashboard');
    const projectId = /\/dashboard\/projects\/(prj_[0-9a-z]+)/.exec(projects)![1]!;
    const created = await post(`/dashboard/projects/${projectId}/services`, {
      name: 'polled',
      image: '',
      gitUrl: daemon.url('site'),
      containerPort: '8080',
      healthcheckPath: '/health',
    });
    const servicePath = created.headers.get('location')!;
    const serviceId = servicePath.split('/').at(-1)!;
    const form = (extra: Record<string, string>) =>
      post(`/dashboard/services/${serviceId}/git`, {
        ref: 'main',
        subdir: '',
        dockerfile: 'Dockerfile',
        buildArgs: '',
        ...extra,
      });
    // An ed25519 key ssh-keygen made, and the fingerprint `ssh-keygen -lf` printed for it.
    const hostKeyLine =
      'git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPeh9cZ4g/6yNZX/HvDBe2LW8BI/Zi2R+gCwr+C2wewc';
    const pinned = await form({
      url: 'git@git.example.com:polled.git',
      knownHosts: hostKeyLine,
      pollIntervalSeconds: '120',
    });
    expect(pinned.status).toBe(303);
    let html = await page(servicePath);
    expect(html).toMatch(
      /<dd data-host-keys>\s*<div><code>git\.example\.com ssh-ed25519 SHA256:uux2rzujDeovjh6R8QNzx0k16wYDVFNTwRCUd9t7\/dQ<\/code><\/div>/,
    );
    expect(html).toMatch(
      /<dd data-git-poll>\s*every 120 s\s*<div class="hint">not polled yet<\/div>/,
    );
    expect(html).toContain('value="120"');
    expect(html).toContain('name="forgetHostKeys"');
    const tooOften = await form({
      url: 'git@git.example.com:polled.git',
      pollIntervalSeconds: '30',
    });
    expect(decodeURIComponent(flashOf(tooOften))).toMatch(
      /git\.pollIntervalSeconds: must be at least 60/,
    );
    const badKey = await form({ url: 'git@git.example.com:polled.git', knownHosts: 'no key' });
    expect(decodeURIComponent(flashOf(badKey))).toMatch(/git\.knownHosts: line 1: /);
    const forgot = await form({
      url: 'git@git.example.com:polled.git',
      pollIntervalSeconds: '120',
      forgetHostKeys: '1',
    });
    expect(forgot.status).toBe(303);
    expect(await page(servicePath)).toMatch(
      /<dd data-host-keys>\s*not pinned yet: the first contact pins the key the server presents/,
    );

    // Back to the daemon's repository, polled: the worker's job deploys its head.
    await form({ url: daemon.url('site'), pollIntervalSeconds: '60' });
    const outcomes = await pollGitSources(api.system.release);
    const outcome = outcomes.find((o) => o.serviceId === serviceId);
    expect(outcome).toMatchObject({ status: 'deploying', sha });
    html = await page(servicePath);
    expect(html).toMatch(
      new RegExp(
        `<dd data-git-poll>\\s*every 60 s\\s*<div class="hint">\\s*last polled [0-9T:.-]+Z, head <code>${sha}</code>\\s*, release\\s*<a href="/dashboard/releases/rel_`,
      ),
    );
    // A source change waits for the release the poll started (no worker runs it here).
    const off = await form({ url: daemon.url('site'), pollIntervalSeconds: '' });
    expect(decodeURIComponent(flashOf(off))).toMatch(/in flight/);
  });
});
