/**
 * The dashboard in a real browser (Chromium through playwright-core) against the whole
 * self-hosted control plane: workers, a real Docker Engine running the offline test images
 * and a real Caddy. Screenshots of the main pages go to test-results/screenshots/.
 */
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel, testImages } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = (await available('docker')) && (await available('caddy')) && chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('the dashboard in a browser', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let context: BrowserContext;
  let page: Page;
  let orgId: string | undefined;
  const email = 'owner@example.com';
  const password = 'correct horse battery';

  const viaCaddy = (host: string, path = '/version') =>
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

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  /** An element's text as a person reads it: whitespace runs collapsed. */
  const text = async (l: Locator) => ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();
  const shot = (name: string) =>
    page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  /**
   * What Caddy serves for `host`, once it serves `body` (within 5 s). Right after a switch
   * Caddy may still be applying its new config, during which a request can match no route.
   */
  async function servedBy(host: string, body: string) {
    const end = Date.now() + 5_000;
    let last = await viaCaddy(host);
    while (last.body !== body && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 100));
      last = await viaCaddy(host);
    }
    return last;
  }

  /** Waits until the release page shows the release finished, and checks how. */
  async function finished(status: string) {
    // data-release-done is set once the live stream has ended, so the whole log is on the page.
    await page.locator('#release[data-release-done]').waitFor({ timeout: 60_000 });
    await page.locator('[data-terminal]').waitFor();
    const alert = (await page.locator('#summary .alert').allTextContents()).join(' ');
    expect(await page.locator('[data-terminal]').getAttribute('data-terminal'), alert).toBe(status);
  }

  /** Every visible form control has a label (or an aria-label). */
  async function expectLabelled() {
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.outerHTML),
    );
    expect(unlabelled).toEqual([]);
  }

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
    });
    browser = await launchChromium();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  let firstServing = 0;
  let serviceUrl = '';
  let host = '';

  it('walks a newcomer from signup to a first deploy, watching every step live', async () => {
    const started = Date.now();
    await page.goto(`${api.url}/`);
    await expect.poll(() => page.url()).toContain('/dashboard/login');
    await expectLabelled();
    await shot('01-login');
    await page.getByRole('link', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Sign up' }).click();

    // Empty states tell a newcomer what to do next.
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    expect(await text(page.getByRole('status'))).toContain('Welcome!');
    expect(await page.textContent('main')).toContain('No projects yet.');
    expect(await page.textContent('main')).toContain('register the Docker host');
    await shot('02-empty-projects');
    const cookies = await context.cookies(api.url);
    expect(cookies.find((c) => c.name === 'sdo_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Strict',
    });
    orgId = cookies.find((c) => c.name === 'sdo_org')?.value;

    await nav('Nodes').click();
    expect(await page.textContent('main')).toContain('No nodes yet.');
    await page.getByLabel('Name').fill('local');
    await page.getByRole('button', { name: 'Register node' }).click();
    await page.getByRole('cell', { name: 'unix:///var/run/docker.sock' }).waitFor();
    await expectLabelled();
    await shot('03-nodes');

    await nav('Projects').click();
    await page.getByLabel(/^Name/).fill('shop');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'shop' }).waitFor();
    expect(await page.textContent('main')).toContain('No services yet.');
    await page.getByLabel(/^Name/).first().fill('web');
    await page.getByLabel('Image').fill(testImages.app);
    await page.getByLabel('Environment variables').fill('GREETING=hello');
    await expectLabelled();
    await page.getByRole('button', { name: 'Create service' }).click();

    await page.getByRole('heading', { name: 'web', exact: true }).waitFor();
    serviceUrl = page.url();
    expect(await page.textContent('main')).toContain('Not deployed yet.');
    await expectLabelled();
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();

    // The release page fills in as the release runs: no reload (the marker survives).
    await page.waitForURL(/\/dashboard\/releases\/rel_/);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await page.locator('[data-step="build"][data-status="succeeded"]').waitFor();
    await page.locator('#log', { hasText: 'resolving image selfdevop-test/app:v1' }).waitFor();
    await finished('completed');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    for (const step of ['build', 'start_candidate', 'health_check', 'switch_traffic', 'complete']) {
      expect(await page.locator(`[data-step="${step}"]`).getAttribute('data-status')).toBe(
        'succeeded',
      );
    }
    expect(await page.locator('[data-step="migrate"]').getAttribute('data-status')).toBe('skipped');
    expect(await page.textContent('#log')).toContain('traffic switched to');
    await shot('04-release-completed');

    await page.goto(serviceUrl);
    host = (await page
      .locator('section[aria-labelledby="at-a-glance"] a[href^="http://"]')
      .first()
      .textContent())!.trim();
    expect(await servedBy(host, 'v1')).toEqual({ status: 200, body: 'v1' });
    firstServing = Date.now() - started;
    expect(await page.locator('section[aria-labelledby="at-a-glance"]').textContent()).toContain(
      'healthy',
    );
    await shot('05-service');
    console.log(
      `dashboard: signup to first app serving through Caddy in ${(firstServing / 1000).toFixed(1)} s`,
    );
  }, 120_000);

  it('adds a domain and shows the exact DNS records with copy buttons', async () => {
    await page.goto(serviceUrl);
    await page.getByLabel('Hostname').fill('shop.example.test');
    await page.getByRole('button', { name: 'Add domain' }).click();
    await page.getByRole('heading', { name: 'shop.example.test' }).waitFor();
    const txt = page.locator('tr[data-record="TXT"]');
    expect(await txt.textContent()).toContain('_selfdevop-challenge.shop.example.test');
    expect(await page.locator('tr[data-record="CNAME"]').textContent()).toContain(host);
    expect(await page.getByRole('button', { name: 'Copy TXT value' }).count()).toBe(1);
    expect(await page.textContent('main')).toMatch(/pending dns/);
    await shot('06-domain');
  }, 60_000);

  it('rolls back with one click and a confirmation', async () => {
    await page.goto(serviceUrl);
    await page.getByLabel('Image', { exact: true }).fill(testImages.appV2);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await finished('completed');
    expect(await servedBy(host, 'v2')).toEqual({ status: 200, body: 'v2' });
    await page.getByRole('link', { name: 'Roll back…' }).click();
    await page.getByRole('heading', { name: 'Roll back web?' }).waitFor();
    expect(await page.textContent('main')).toContain(testImages.app);
    await shot('07-rollback-confirm');
    await page.getByRole('button', { name: 'Yes, roll back' }).click();
    await page.getByRole('status').filter({ hasText: 'Rolled back' }).waitFor();
    expect(await page.locator('[data-terminal]').getAttribute('data-terminal')).toBe('rolled_back');
    expect(await servedBy(host, 'v1')).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('cancels a release waiting on its health check with one click', async () => {
    const login = await api.request('POST', '/api/auth/local/login', { body: { email, password } });
    const token = login.body.token as string;
    const projects = await api.request('GET', '/api/projects', { token });
    // Never healthy within two minutes: only a cancel ends it within the test.
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: projects.body.items[0].id,
        name: 'patient',
        image: testImages.app,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 200, successes: 2, deadlineMs: 120_000, timeoutMs: 1_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    await page.goto(`${api.url}/dashboard/services/${svc.body.id}`);
    await page.getByLabel('Image', { exact: true }).fill(testImages.unhealthy);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await page.locator('#log', { hasText: 'probe 1' }).waitFor({ timeout: 60_000 });
    await page.reload();
    await page.getByRole('button', { name: 'Cancel release' }).click();
    await page.getByRole('status').filter({ hasText: 'Cancelled: cancelled by user' }).waitFor();
    await finished('failed');
    expect(await page.getByRole('button', { name: 'Cancel release' }).count()).toBe(0);
  }, 90_000);

  it('shows a failing deploy with its failing step highlighted and its log', async () => {
    // A short health deadline keeps the test quick: set at creation, through the API.
    const login = await api.request('POST', '/api/auth/local/login', { body: { email, password } });
    const token = login.body.token as string;
    const projects = await api.request('GET', '/api/projects', { token });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: projects.body.items[0].id,
        name: 'fragile',
        image: testImages.app,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 4_000, timeoutMs: 1_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    await page.goto(`${api.url}/dashboard/services/${svc.body.id}`);
    await page.getByLabel('Image', { exact: true }).fill(testImages.unhealthy);
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    await finished('failed');
    const failed = page.locator('tr.failed[data-step="health_check"]');
    expect(await failed.count()).toBe(1);
    expect(await text(page.getByRole('alert'))).toMatch(
      /Step health_check failed: health check did not pass within 4000 ms/,
    );
    await page.locator('#log', { hasText: 'probe 1' }).waitFor();
    await shot('08-release-failed');
    // Rendered by the server (no stream) the log reads the same: one line per entry.
    await page.reload();
    expect(await page.textContent('#log')).toMatch(/\nprobe 1: GET \/health → 404\n/);
  }, 90_000);

  it('keeps secrets write-only, shows a new API key once, and filters the audit log', async () => {
    await page.goto(serviceUrl);
    await page.getByLabel('Name', { exact: true }).fill('STRIPE_KEY');
    await page.getByLabel(/^Value/).fill('sk_live_never_shown');
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByRole('status').filter({ hasText: 'Secret STRIPE_KEY saved' }).waitFor();
    expect(await page.content()).not.toContain('sk_live_never_shown');
    expect(await page.locator('#secrets + table').textContent()).toContain('STRIPE_KEY');

    await nav('API keys').click();
    expect(await page.textContent('main')).toContain('No API keys yet.');
    await page.getByLabel('Name').fill('ci');
    await page.getByRole('button', { name: 'Create API key' }).click();
    const key = (await page.locator('#new-key').textContent())!.trim();
    expect(key).toMatch(/^sdo_/);
    await shot('09-api-key-once');
    await page.goto(`${api.url}/dashboard/api-keys`);
    expect(await page.content()).not.toContain(key);

    await nav('Audit log').click();
    await page.getByLabel(/^Action/).fill('release.rolled_back');
    await page.getByRole('button', { name: 'Filter' }).click();
    const rows = page.locator('main table tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('release.rolled_back');
    await shot('10-audit');
  }, 60_000);

  it('switches between orgs with the org switcher', async () => {
    await page.goto(`${api.url}/dashboard`);
    await page.getByText('Create another organization').click();
    // Markup in a name is shown as text, never run or rendered.
    const name = 'Side <img src=x onerror="window.pwned=1"> project';
    await page.getByLabel('Organization name').fill(name);
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: `Created ${name}` })
      .waitFor();
    expect(await page.locator('img').count()).toBe(0);
    expect(
      await page.evaluate(() => (window as unknown as { pwned?: number }).pwned),
    ).toBeUndefined();
    expect(await page.textContent('main')).toContain('No projects yet.');
    const switcher = page.getByLabel('Organization', { exact: true });
    expect((await switcher.locator('option').allTextContents()).sort()).toEqual([
      name,
      "owner's org",
    ]);
    // The script submits the switcher on change; the button is there for no-script browsers.
    await switcher.selectOption({ label: "owner's org" });
    await page.getByRole('link', { name: 'shop' }).waitFor();
  }, 30_000);

  it('shows the API message for every error, never a blank page', async () => {
    const missing = await page.goto(`${api.url}/dashboard/releases/rel_doesnotexist`);
    expect(missing?.status()).toBe(404);
    expect(await text(page.getByRole('alert'))).toBe('release rel_doesnotexist not found');

    await page.goto(serviceUrl);
    await page.getByRole('link', { name: 'shop' }).first().click();
    await page.getByLabel(/^New environment/).fill('production');
    await page.getByRole('button', { name: 'Add environment' }).click();
    expect(await text(page.getByRole('alert'))).toBe('environment production already exists');

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(/\/dashboard\/login/);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Log in' }).click();
    expect(await text(page.getByRole('alert'))).toBe('email or password is incorrect');
    await page.goto(`${api.url}/dashboard/nodes`);
    await page.waitForURL(/\/dashboard\/login/);
  }, 60_000);

  it('refuses a form posted from another site', async () => {
    const res = await fetch(`${api.url}/dashboard/projects`, {
      method: 'POST',
      headers: {
        origin: 'http://evil.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'name=pwned',
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain('this form was posted from another site');
    const projects = await api.request('GET', '/api/projects', {
      token: (await api.request('POST', '/api/auth/local/login', { body: { email, password } }))
        .body.token,
      headers: { 'x-org-id': orgId! },
    });
    expect(projects.body.items.map((p: { name: string }) => p.name)).toEqual(['shop']);
  });
});
