/**
 * The dashboard's notification channels in a real browser (Chromium through playwright-core)
 * against the self-hosted API on PostgreSQL, with a loopback sink standing in for Slack and a
 * real SMTP server on loopback. No release runs here, so no Docker Engine is needed. The
 * Edge page is visited too: this system's edge admin API is a closed port, so it must say so.
 */
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('notification channels in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let sink: http.Server;
  let sinkUrl: string;
  const posted: unknown[] = [];
  let answer = 200;

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  const shot = (name: string) =>
    page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  const text = async (l: Locator) => ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    smtp = await startSmtpServer();
    sink = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        posted.push(JSON.parse(body));
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/services/T0/B0/dashsecret`;
    // Loopback is never an install's Slack URL: the composition root's test-only override.
    api = await startSelfhostApi({
      webhooksToLoopback: true,
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
    });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('notify@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await smtp?.close();
    await new Promise<void>((r) => (sink ? sink.close(() => r()) : r()));
  });

  it('says why a Slack URL is refused, keeping what was typed', async () => {
    await nav('Notifications').click();
    expect(await page.textContent('main')).toContain('No channels yet.');
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    await page.getByLabel('Kind').selectOption('slack');
    await page.getByLabel('Name').fill('alerts');
    await page.getByLabel(/^Slack URL or e-mail address/).fill('https://example.com/hook');
    await page.getByRole('button', { name: 'Add channel' }).click();
    expect(await text(page.getByRole('alert'))).toContain(
      'url: must be a Slack incoming-webhook URL',
    );
    expect(await page.getByLabel(/^Slack URL or e-mail address/).inputValue()).toBe(
      'https://example.com/hook',
    );
  }, 60_000);

  it('adds Slack and e-mail channels, sends tests, and lists what was sent', async () => {
    await page.goto(`${api.url}/dashboard/notification-channels`);
    await page.getByLabel('Kind').selectOption('slack');
    await page.getByLabel('Name').fill('alerts');
    await page.getByLabel(/^Slack URL or e-mail address/).fill(sinkUrl);
    await page.getByLabel('release.started').uncheck();
    await page.getByRole('button', { name: 'Add channel' }).click();
    await page.getByRole('status').filter({ hasText: 'Channel added' }).waitFor();
    expect(await page.content()).not.toContain('dashsecret');

    await page.getByLabel('Kind').selectOption('email');
    await page.getByLabel('Name').fill('on-call');
    await page.getByLabel(/^Slack URL or e-mail address/).fill('ops@example.com');
    await page.getByLabel(/^Grouping window/).fill('300');
    await page.getByRole('button', { name: 'Add channel' }).click();
    await page.getByRole('status').filter({ hasText: 'Channel added' }).waitFor();
    const rows = page.locator('main table tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await text(rows.nth(1))).toContain('on-call E-mail ops@example.com');
    expect(await text(rows.nth(1))).toContain('300 s');
    await shot('21-notification-channels');

    await page.getByRole('button', { name: 'Send a test message to on-call' }).click();
    expect(await text(page.getByRole('status'))).toBe('Test message delivered.');
    expect(smtp.received.map((m) => [m.to, m.subject])).toEqual([
      ['ops@example.com', '[selfdevop] Test notification'],
    ]);

    await page.goto(`${api.url}/dashboard/notification-channels`);
    answer = 404; // Slack answers 404 (`no_service`) for a removed webhook.
    await page.getByRole('button', { name: 'Send a test message to alerts' }).click();
    expect(await text(page.getByRole('alert'))).toBe(
      'Test message not delivered: Slack answered HTTP 404.',
    );
    expect(posted).toHaveLength(1);
    expect(posted[0]).toMatchObject({ text: 'selfdevop: Test notification' });
    await shot('22-notification-deliveries');
    const log = page.locator('#deliveries + table tbody tr');
    expect(await log.count()).toBe(1);
    expect(await text(log.nth(0))).toMatch(
      /notification\.test 1 1 failed Slack answered HTTP 404$/,
    );
  }, 60_000);

  it('removes a channel after a confirmation; an unknown one is a 404 page', async () => {
    await page.goto(`${api.url}/dashboard/notification-channels`);
    await page.getByRole('button', { name: 'Remove alerts' }).click();
    await page.getByRole('status').filter({ hasText: 'Channel removed.' }).waitFor();
    expect(await page.locator('main table tbody tr').count()).toBe(1);
    const missing = await page.goto(`${api.url}/dashboard/notification-channels/nch_nope`);
    expect(missing?.status()).toBe(404);
    expect(await text(page.getByRole('alert'))).toBe('notification channel nch_nope not found');
  }, 30_000);

  it('shows the edge page: not reachable here, no routes, no certificates', async () => {
    await nav('Edge').click();
    await page.getByRole('heading', { name: 'Edge' }).waitFor();
    expect(await text(page.locator('#edge-reachable'))).toBe(
      "failed the edge's admin API could not be reached",
    );
    expect(await text(page.locator('#edge-routes'))).toBe('0 of 0 present');
    expect(await page.textContent('main')).toContain('No custom domain with a certificate');
    await shot('23-edge-status');
  }, 30_000);
});
