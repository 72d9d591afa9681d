/**
 * The dashboard's side of builds from git, over HTTP (PostgreSQL and a git daemon on
 * loopback; no engine: releases stay queued): a service created from a repository, its git
 * source form with a write-only token, a deploy key, the Deploy form with a ref, and the
 * commit on the release page.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
