/**
 * A custom domain in the dashboard, for real: the records shown with working copy buttons,
 * then the page following the domain by itself to `active` once DNS holds the TXT record
 * (DNS server, ACME CA and Caddy with on-demand TLS as in the domains suite).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDomainStack } from '../cli/domain-stack.ts';
import { ensureTestImages, removeContainersByLabel, testImages } from '../support/docker.ts';
import { pebbleAvailable } from '../support/pebble.ts';
import { available } from '../support/services.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready =
  (await available('docker')) &&
  (await available('caddy')) &&
  (await pebbleAvailable()) &&
  chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('custom domains in the dashboard', () => {
  let stack: Awaited<ReturnType<typeof startDomainStack>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let orgId: string;
  let serviceId: string;

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    await ensureTestImages();
    stack = await startDomainStack();
    const req = stack.api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'domains@example.com', password: 'correct horse battery' },
    });
    const token = s.body.token as string;
    orgId = s.body.org.id;
    await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const p = await req('POST', '/api/projects', { token, body: { name: 'shop' } });
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId: p.body.id,
        name: 'web',
        image: testImages.app,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        drainSeconds: 5,
      },
    });
    serviceId = svc.body.id;
    const rel = await req('POST', '/api/releases', {
      token,
      body: { serviceId, image: testImages.app },
    });
    for (let i = 0; i < 400; i++) {
      const r = await req('GET', `/api/releases/${rel.body.id}`, { token });
      if (['completed', 'failed'].includes(r.body.status)) break;
      await new Promise((x) => setTimeout(x, 100));
    }
    browser = await launchChromium();
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], {
      origin: stack.api.url,
    });
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('shows the records to copy, then follows the domain to active without a reload', async () => {
    await page.goto(`${stack.api.url}/dashboard/login`);
    await page.getByLabel('Email').fill('domains@example.com');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();

    await page.goto(`${stack.api.url}/dashboard/services/${serviceId}`);
    await page.getByLabel('Hostname').fill('app.example.test');
    await page.getByRole('button', { name: 'Add domain' }).click();
    await page.getByRole('heading', { name: 'app.example.test' }).waitFor();

    const txtValue = (await page
      .locator('tr[data-record="TXT"] td:nth-child(3) code')
      .textContent())!;
    expect(txtValue).toMatch(/^sdo-/);
    await page.getByRole('button', { name: 'Copy TXT value' }).click();
    await page
      .getByRole('button', { name: 'Copy TXT value' })
      .filter({ hasText: 'Copied' })
      .waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(txtValue);

    // The worker's first look finds no TXT record and says so on the page, in words.
    await page
      .locator('#domain-status .alert', {
        hasText: 'TXT record _selfdevop-challenge.app.example.test',
      })
      .waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(shots, '11-domain-pending.png'), fullPage: true });

    await stack.dns.setTxt('_selfdevop-challenge.app.example.test', txtValue);
    await page.getByRole('button', { name: 'Check now' }).click();
    await page.getByRole('status').filter({ hasText: 'Checking DNS now' }).waitFor();
    // From here the page updates itself: the marker would not survive a reload.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    await page.locator('#domain-status [data-settled="active"]').waitFor({ timeout: 60_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    expect(await page.textContent('#domain-status')).toContain(
      'app.example.test is live at https://app.example.test',
    );
    expect(await page.locator('#domain-status .alert').count()).toBe(0);
    await page.screenshot({ path: join(shots, '12-domain-active.png'), fullPage: true });
    expect(await stack.viaHttps('app.example.test')).toEqual({ status: 200, body: 'v1' });
  }, 120_000);
});
