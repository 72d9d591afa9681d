/**
 * The Members page and the invite link in a real browser (Chromium through playwright-core)
 * against the self-hosted API on PostgreSQL, invites mailed through a real SMTP server on
 * loopback: invite, sign up from the emailed link, change a role, revoke, hand over
 * ownership, and accept an invite while signed in.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');
const password = 'correct horse battery';

describe.skipIf(!ready)('members and invites in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let context: BrowserContext;
  let page: Page;

  const alert = () => page.locator('main .alert').first();
  const row = (email: string) => page.getByRole('row').filter({ hasText: email });
  const linkFor = (email: string) =>
    /(http\S+token=sdi_[\w-]+)/.exec(smtp.received.filter((m) => m.to === email).at(-1)!.text)![1]!;

  async function logIn(email: string) {
    await context.clearCookies();
    await page.goto(`${api.url}/dashboard/login`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(/\/dashboard$/);
  }

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    smtp = await startSmtpServer();
    api = await startSelfhostApi({
      signupMode: 'first-user',
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      // The links point at this very server, so the browser can follow them.
      publicUrl: 'http://127.0.0.1',
    });
    browser = await launchChromium();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('dialog', (d) => void d.accept());
    const owner = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'boss@example.com', password },
    });
    expect(owner.status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await smtp?.close();
  });

  /** The emailed link, on the test server's port (PUBLIC_URL names the host only). */
  const openLink = (email: string) => {
    const link = new URL(linkFor(email));
    return page.goto(`${api.url}${link.pathname}${link.search}`);
  };

  it('invites by email, and the invitee signs up from the link into the same org', async () => {
    await logIn('boss@example.com');
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Members' })
      .click();
    await expect.poll(() => row('boss@example.com').textContent()).toMatch(/\(you\)\s*owner/);
    await page.getByLabel('Email').fill('ann@example.com');
    await page.getByLabel('Role', { exact: true }).selectOption('deployer');
    await page.getByRole('button', { name: 'Send invite' }).click();
    await expect
      .poll(() => alert().textContent())
      .toBe('Invite sent to ann@example.com as deployer.');
    await expect.poll(() => row('ann@example.com').textContent()).toMatch(/deployer/);
    await page.screenshot({ path: join(shots, 'members.png'), fullPage: true });

    await context.clearCookies();
    await openLink('ann@example.com');
    await expect
      .poll(() => page.locator('h1').textContent())
      .toBe('Join an organization on selfdevop');
    await page.screenshot({ path: join(shots, 'invite-accept.png'), fullPage: true });
    // The wrong address is refused on the page, saying why.
    await page.getByLabel('Email').fill('mallory@example.com');
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Sign up and join' }).click();
    await expect.poll(() => alert().textContent()).toMatch(/invite was sent to another email/);
    await page.getByLabel('Email').fill('ann@example.com');
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Sign up and join' }).click();
    await page.waitForURL(/\/dashboard$/);
    await expect.poll(() => alert().textContent()).toMatch(/^Welcome to /);
    await page.goto(`${api.url}/dashboard/members`);
    await expect.poll(() => row('ann@example.com').textContent()).toMatch(/\(you\)\s*deployer/);
    // A deployer sees the team but no controls to change it.
    expect(await page.getByRole('button', { name: 'Send invite' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Remove / }).count()).toBe(0);

    // The link is single use.
    await context.clearCookies();
    await openLink('ann@example.com');
    await page.getByLabel('Email').fill('ann@example.com');
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Sign up and join' }).click();
    await expect.poll(() => alert().textContent()).toBe('invite has already been used');
  });

  it('changes a role, revokes an invite and hands over ownership', async () => {
    await logIn('boss@example.com');
    await page.goto(`${api.url}/dashboard/members`);
    await page.getByLabel('Role of ann@example.com', { exact: true }).selectOption('admin');
    await page.getByRole('button', { name: 'Change role of ann@example.com' }).click();
    await expect.poll(() => alert().textContent()).toBe('ann@example.com is now admin.');

    await page.getByLabel('Email').fill('carl@example.com');
    await page.getByRole('button', { name: 'Send invite' }).click();
    await expect.poll(() => row('carl@example.com').count()).toBe(1);
    await page.getByRole('button', { name: 'Revoke the invite to carl@example.com' }).click();
    await expect
      .poll(() => alert().textContent())
      .toBe('Invite revoked: its link no longer works.');
    expect(await row('carl@example.com').count()).toBe(0);

    // The last owner cannot leave: the page says why.
    await page.getByRole('button', { name: 'Leave this organization' }).click();
    await expect.poll(() => alert().textContent()).toMatch(/last owner; transfer ownership/);

    await page.getByRole('button', { name: 'Transfer ownership to ann@example.com' }).click();
    await expect
      .poll(() => alert().textContent())
      .toBe('Ownership transferred; you are an admin now.');
    await expect.poll(() => row('ann@example.com').textContent()).toMatch(/owner/);
    await expect.poll(() => row('boss@example.com').textContent()).toMatch(/\(you\)\s*admin/);
  });

  it('lets a signed-in person accept an invite to another org from the link', async () => {
    const ann = await api.request('POST', '/api/auth/local/login', {
      body: { email: 'ann@example.com', password },
    });
    const org = await api.request('POST', '/api/orgs', {
      token: ann.body.token,
      body: { name: 'Side project' },
    });
    const invite = await api.request('POST', '/api/invites', {
      token: ann.body.token,
      headers: { 'x-org-id': org.body.id },
      body: { email: 'boss@example.com', role: 'viewer' },
    });
    expect(invite.status, invite.text).toBe(201);
    await logIn('boss@example.com');
    await openLink('boss@example.com');
    await page.getByRole('button', { name: 'Accept the invite' }).click();
    await page.waitForURL(/\/dashboard$/);
    await expect.poll(() => alert().textContent()).toBe('You joined Side project as viewer.');
    await expect
      .poll(() => page.getByLabel('Organization').locator('option:checked').textContent())
      .toBe('Side project');
  });

  it('answers a broken link with a page that says so, and refuses cross-site posts', async () => {
    const broken = await fetch(`${api.url}/dashboard/invites/accept?token=sdi_cut`);
    expect(broken.status).toBe(400);
    expect(await broken.text()).toContain('This invite link is incomplete');
    const cross = await fetch(`${api.url}/dashboard/invites/signup`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://evil.example',
      },
      body: 'email=x%40example.com&password=correct+horse+battery&token=sdi_x',
      redirect: 'manual',
    });
    expect(cross.status).toBe(403);
    const page = await fetch(`${api.url}/dashboard/invites/accept?token=sdi_${'A'.repeat(43)}`);
    expect(page.headers.get('content-security-policy')).toContain("form-action 'self'");
    expect(page.headers.get('cache-control')).toBe('no-store');
  });
});
