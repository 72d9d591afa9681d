/**
 * The dashboard's registry credentials in a real browser (Chromium through playwright-core)
 * against the self-hosted API on PostgreSQL: add one, see it listed without its password,
 * see a refusal named, remove it.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('registries in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    api = await startSelfhostApi();
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('registries@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  it('adds a credential, lists it without the password, names a refusal, removes it', async () => {
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Registries' })
      .click();
    await page.getByRole('heading', { name: 'Registries', level: 1 }).waitFor();
    await page.getByText('No credentials yet').waitFor();

    await page.getByLabel(/^Server/).fill('https://registry.example.test/');
    await page.getByLabel('Username').fill('ci');
    await page.getByLabel('Password or access token').fill('dashboard-secret-token');
    await page.getByRole('button', { name: 'Add credential' }).click();
    await page.getByText('Credential added.').waitFor();
    const row = page.getByRole('row', { name: /registry\.example\.test/ });
    await row.waitFor();
    expect(await page.content()).not.toContain('dashboard-secret-token');
    await page.screenshot({ path: join(shots, 'registries.png'), fullPage: true });

    await page.getByLabel(/^Server/).fill('registry.example.test');
    await page.getByLabel('Username').fill('ci');
    await page.getByLabel('Password or access token').fill('again');
    await page.getByRole('button', { name: 'Add credential' }).click();
    await page.getByText('registry registry.example.test already exists').waitFor();
    // What was typed comes back, except the password.
    expect(await page.getByLabel('Username').inputValue()).toBe('ci');
    expect(await page.getByLabel('Password or access token').inputValue()).toBe('');

    await row.getByRole('button', { name: /Remove the credential/ }).click();
    await page.getByText('Credential removed.').waitFor();
    await page.getByText('No credentials yet').waitFor();
  });
});
