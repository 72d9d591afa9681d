/**
 * The dashboard's webhooks, environments and secrets views in a real browser (Chromium
 * through playwright-core) against the self-hosted API on PostgreSQL, with a loopback
 * webhook receiver. No release runs here, so no Docker Engine or Caddy is needed.
 */
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../core/webhooks/signature.ts';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('webhooks, environments and secrets in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let context: BrowserContext;
  let page: Page;
  let receiver: http.Server;
  let receiverUrl: string;
  const received: { body: string; signature: string }[] = [];
  let answer = 204;

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  const shot = (name: string) =>
    page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const text = async (l: Locator) => ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();

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
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ body, signature: String(req.headers['x-selfdevop-signature']) });
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    // Loopback is never an install's webhook target: this system accepts the test's
    // receiver through the composition root's test-only override.
    api = await startSelfhostApi({ webhooksToLoopback: true });
    browser = await launchChromium();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    // Removing asks for confirmation (data-confirm); a person says yes.
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('hooks@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
  });

  it('adds a webhook with chosen events, shows its secret once, and sends a signed test event', async () => {
    await nav('Webhooks').click();
    expect(await page.textContent('main')).toContain('No webhooks yet.');
    await expectLabelled();
    const res = await page.request.get(`${api.url}/dashboard/webhooks`);
    expect(res.headers()['content-security-policy']).toContain("script-src 'self'");

    await page.getByLabel(/^URL/).fill(receiverUrl);
    for (const e of ['release.started', 'release.migration_succeeded', 'domain.dns_verified'])
      await page.getByLabel(e).uncheck();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    expect(secret).toMatch(/^whsec_/);
    await shot('11-webhook-secret-once');
    const row = page.locator('main table tbody tr');
    expect(await row.count()).toBe(1);
    expect(await text(row)).toContain(
      'release.failed release.completed release.rolled_back domain.cert_active',
    );
    expect(await text(row)).not.toContain('release.started');
    await page.goto(`${api.url}/dashboard/webhooks`);
    expect(await page.content()).not.toContain(secret);

    answer = 204;
    await page.getByRole('button', { name: `Send a test event to ${receiverUrl}` }).click();
    await page.getByRole('status').filter({ hasText: 'Test event delivered' }).waitFor();
    expect(await text(page.getByRole('status'))).toBe(
      'Test event delivered: the receiver answered 204.',
    );
    expect(received).toHaveLength(1);
    expect(JSON.parse(received[0]!.body)).toMatchObject({ type: 'webhook.test' });
    expect(
      verifySignature(
        secret,
        received[0]!.signature,
        received[0]!.body,
        Math.floor(Date.now() / 1000),
      ),
    ).toBe(true);

    // The receiver fails: the page says so, as an error, and lists both tests.
    answer = 500;
    await page.getByRole('button', { name: 'Send test event' }).click();
    expect(await text(page.getByRole('alert'))).toBe(
      'Test event not delivered: the receiver answered 500.',
    );
    await shot('12-webhook-deliveries');
    const rows = page.locator('#deliveries + table tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await text(rows.nth(0))).toMatch(/^[\d-]+ [\d:]+Z webhook\.test evt_\w+ 1 failed 500$/);
    expect(await text(rows.nth(1))).toMatch(
      /^[\d-]+ [\d:]+Z webhook\.test evt_\w+ 1 succeeded 204$/,
    );
  }, 60_000);

  it('says why a webhook is refused, keeping what was typed', async () => {
    await page.goto(`${api.url}/dashboard/webhooks`);
    await page.getByLabel(/^URL/).fill('http://169.254.169.254/latest/meta-data');
    await page.getByRole('button', { name: 'Add webhook' }).click();
    expect(await text(page.getByRole('alert'))).toBe(
      'url: must not point at a loopback or link-local address',
    );
    expect(await page.getByLabel(/^URL/).inputValue()).toBe(
      'http://169.254.169.254/latest/meta-data',
    );

    await page.getByLabel(/^URL/).fill('https://hooks.example.test/in');
    for (const box of await page.getByRole('checkbox').all()) await box.uncheck();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    expect(await text(page.getByRole('alert'))).toBe('pick at least one event');
    expect(await page.locator('main table tbody tr').count()).toBe(1);

    const missing = await page.goto(`${api.url}/dashboard/webhooks/whk_nope`);
    expect(missing?.status()).toBe(404);
    expect(await text(page.getByRole('alert'))).toBe('webhook whk_nope not found');
  }, 60_000);

  it('removes a webhook after a confirmation', async () => {
    await page.goto(`${api.url}/dashboard/webhooks`);
    await page.getByRole('button', { name: `Remove ${receiverUrl}` }).click();
    await page.getByRole('status').filter({ hasText: 'Webhook removed.' }).waitFor();
    expect(await page.textContent('main')).toContain('No webhooks yet.');
  }, 30_000);

  it('refuses a webhook form posted from another site', async () => {
    const res = await fetch(`${api.url}/dashboard/webhooks`, {
      method: 'POST',
      headers: {
        origin: 'http://evil.example',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: `url=${encodeURIComponent('https://evil.example/collect')}&events=release.failed`,
      redirect: 'manual',
    });
    expect(res.status).toBe(403);
  });

  it("lists a project's environments with their services, adds one, and links to each", async () => {
    await nav('Projects').click();
    await page.locator('#project-name').fill('shop');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'shop' }).waitFor();
    const projectUrl = page.url();
    const projectId = projectUrl.split('/').pop()!;
    const token = (await context.cookies(api.url)).find((c) => c.name === 'sdo_session')!.value;
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);

    await page.goto(projectUrl);
    await page.getByLabel(/^New environment/).fill('staging');
    await page.getByRole('button', { name: 'Add environment' }).click();
    await page.getByRole('status').filter({ hasText: 'Environment staging added' }).waitFor();
    const staging = page.locator('#env-staging');
    expect(await text(staging)).toMatch(/^staging web /);
    await staging.getByRole('link', { name: 'web' }).click();
    await page.getByRole('heading', { name: 'Secrets (staging)' }).waitFor();
    await expectLabelled();

    // An environment's id (from the audit log, say) leads to its row.
    const envs = await api.request('GET', `/api/environments?projectId=${projectId}`, { token });
    const stagingId = (envs.body.items as { id: string; name: string }[]).find(
      (e) => e.name === 'staging',
    )!.id;
    await page.goto(`${api.url}/dashboard/environments/${stagingId}`);
    expect(page.url()).toBe(`${projectUrl}#env-staging`);

    await page.goto(projectUrl);
    await page.getByLabel(/^New environment/).fill('staging');
    await page.getByRole('button', { name: 'Add environment' }).click();
    expect(await text(page.getByRole('alert'))).toBe('environment staging already exists');
    const unknown = await page.goto(`${api.url}/dashboard/environments/env_nope`);
    expect(unknown?.status()).toBe(404);
  }, 60_000);

  it('keeps secrets of one environment write-only, and deletes them', async () => {
    await page.getByRole('link', { name: 'Projects' }).first().click();
    await page.getByRole('link', { name: 'shop' }).click();
    await page.locator('#env-staging').getByRole('link', { name: 'web' }).click();
    await page.getByLabel('Name', { exact: true }).fill('STRIPE_KEY');
    await page.getByLabel(/^Value/).fill('sk_live_never_shown');
    await page.getByRole('button', { name: 'Set secret' }).click();
    await page.getByRole('status').filter({ hasText: 'Secret STRIPE_KEY saved' }).waitFor();
    expect(page.url()).toMatch(/environment=staging#secrets$/);
    expect(await page.content()).not.toContain('sk_live_never_shown');
    expect(await page.locator('#secrets + table').textContent()).toContain('STRIPE_KEY');
    // Another environment has its own secrets.
    await page.goto(page.url().replace('environment=staging', 'environment=production'));
    expect(await page.textContent('main')).toContain('No secrets yet.');

    await page.goto(page.url().replace('environment=production', 'environment=staging'));
    await page.getByLabel('Name', { exact: true }).fill('1BAD');
    await page.getByLabel(/^Value/).fill('x');
    // The pattern attribute stops this in a browser; the API names the field for any client.
    await page.locator('#secret-name').evaluate((el) => el.removeAttribute('pattern'));
    await page.getByRole('button', { name: 'Set secret' }).click();
    expect(await text(page.getByRole('alert'))).toMatch(/^name: /);

    await page.getByRole('button', { name: 'Delete secret STRIPE_KEY' }).click();
    await page.getByRole('status').filter({ hasText: 'Secret STRIPE_KEY deleted.' }).waitFor();
    expect(await page.textContent('main')).toContain('No secrets yet.');
  }, 60_000);
});
