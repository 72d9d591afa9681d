/**
 * Cloud-mode sign-in in a real browser (Chromium through playwright-core): the dashboard
 * sends it to the Cognito-shaped hosted UI, which runs on another site (localhost vs
 * 127.0.0.1, as Cognito's domain is another site than the dashboard's), and back. Needs
 * PostgreSQL and Chromium only. Screenshots go to test-results/screenshots/.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloudDashboard, type CloudDashboard } from '../cloud/hosted-sign-in.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('cloud-mode dashboard sign-in in a browser', () => {
  let app: CloudDashboard;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    app = await startCloudDashboard();
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('signs in on the hosted UI, comes back signed in with the org, and logs out there too', async () => {
    const user = app.hosted.addUser('browser@example.com', 'Correct-horse-9');
    const page = await browser.context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 404/.test(m.text())) problems.push(m.text());
    });
    // Browsers ask every site for /favicon.ico; nothing else may fail.
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico'))
        problems.push(`${r.status()} ${r.url()}`);
    });
    const shot = (name: string) =>
      page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

    const navigations: string[] = [];
    page.on('request', (r) => {
      if (r.isNavigationRequest()) navigations.push(new URL(r.url()).pathname);
    });
    await page.goto(`${app.url}/dashboard`);
    expect(page.url()).toMatch(new RegExp(`^${app.hosted.url}/oauth2/authorize\\?`));
    await shot('cloud-01-hosted-sign-in');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();

    // Back on the dashboard (through the callback page), signed in: a new user makes an org.
    await page.waitForURL(`${app.url}/dashboard`);
    await page.getByRole('heading', { name: 'Create an organization' }).waitFor();
    // One trip: the session cookie (SameSite=Strict) reached /dashboard the first time, so
    // the browser did not go round the hosted UI again for another code.
    expect(navigations).toEqual([
      '/dashboard',
      '/dashboard/login',
      '/dashboard/auth/sign-in',
      '/oauth2/authorize',
      '/login',
      '/dashboard/auth/callback',
      '/dashboard',
    ]);
    expect(app.hosted.tokenRequests).toHaveLength(1);
    await page.getByLabel('Name').fill('Acme Cloud');
    await page.getByRole('button', { name: 'Create organization' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    expect(await page.getByLabel('Organization').locator('option:checked').textContent()).toBe(
      'Acme Cloud',
    );
    expect(await page.getByRole('status').textContent()).toContain('Created Acme Cloud');
    await shot('cloud-02-signed-in');
    const cookies = await browser.context.cookies(app.url);
    expect(cookies.find((c) => c.name === 'sdo_session')).toMatchObject({
      httpOnly: true,
      sameSite: 'Strict',
    });

    // Only sent under /dashboard/auth: the sign-in and logout routes.
    const authUrl = `${app.url}/dashboard/auth/logout`;
    const refreshToken = (await browser.context.cookies(authUrl)).find(
      (c) => c.name === 'sdo_refresh',
    );
    expect(cookies.map((c) => c.name)).not.toContain('sdo_refresh');
    expect(refreshToken).toMatchObject({ path: '/dashboard/auth', httpOnly: true });
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL(`${app.url}/dashboard/signed-out`);
    // The browser sent the refresh cookie with the logout, and the dashboard revoked it.
    expect(app.hosted.revokeRequests.map((r) => r.token)).toEqual([refreshToken!.value]);
    await page.getByRole('heading', { name: 'You are signed out' }).waitFor();
    await shot('cloud-03-signed-out');
    const left = (await browser.context.cookies([app.url, authUrl])).map((c) => c.name);
    expect(left).not.toContain('sdo_session');
    expect(left).not.toContain('sdo_refresh');
    // The hosted session ended as well: signing in again asks for the password.
    await page.getByRole('link', { name: 'Sign in again' }).click();
    await page.getByLabel('Password').waitFor();
    expect(page.url()).toMatch(new RegExp(`^${app.hosted.url}/oauth2/authorize\\?`));
    expect(problems).toEqual([]);

    // Cancelling there comes back to a page that says so.
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForURL(new RegExp(`^${app.url}/dashboard/auth/callback\\?`));
    expect(await page.getByRole('alert').textContent()).toContain('Cognito says access_denied');
    await shot('cloud-04-sign-in-cancelled');
  }, 60_000);
});
