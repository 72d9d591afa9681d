/**
 * The control plane's backups in the dashboard, in a real browser against the self-hosted
 * API whose worker dumps the test's real PostgreSQL database: back up now, see the backup
 * and its drill, change the retention and see a refusal named.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { createTestDatabase } from '../support/db.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('control-plane backups in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    db = await createTestDatabase('cpbdash');
    api = await startSelfhostApi({
      workers: true,
      databaseUrl: db.url,
      controlBackupDatabaseUrl: db.url,
    });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('ops-dash@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await db?.drop();
  });

  it('backs up now, shows the backup with its passed drill, and saves retention or names the refusal', async () => {
    await page.goto(`${api.url}/dashboard/control-backups`);
    await page.getByRole('heading', { name: 'Control-plane backups', level: 1 }).waitFor();
    await page.getByText('No control-plane backups yet.').waitFor();
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.getByText('Backing up the control plane').waitFor();
    // Bounded: reload until the drill's result shows (about a minute at most).
    for (let i = 0; i < 60; i++) {
      await page.goto(`${api.url}/dashboard/control-backups`);
      if (await page.getByRole('button', { name: 'Drill again' }).count()) break;
      await page.waitForTimeout(1000);
    }
    const row = page.locator('tbody tr').first();
    expect(await row.innerText()).toMatch(/manual/);
    await row.getByRole('button', { name: 'Drill again' }).waitFor();
    await page.screenshot({ path: join(shots, 'control-backups.png'), fullPage: true });

    await page.getByLabel('days').fill('7');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved: the schedule and retention apply from now on.').waitFor();
    expect(await page.getByLabel('days').inputValue()).toBe('7');

    await page.getByLabel(/^Schedule/).fill('* * * * *');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText(/fires more than once an hour/).waitFor();
  }, 180_000);
});
