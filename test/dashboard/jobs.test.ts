/**
 * The dashboard's cron jobs view in a real browser (Chromium through playwright-core)
 * against the self-hosted API on PostgreSQL: create a job (a bad schedule refused with the
 * API's words), see it with its next run, open it, queue a run, delete it. No run executes
 * here (no workers), so no Docker Engine is needed.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();

describe.skipIf(!ready)('cron jobs in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let context: BrowserContext;
  let page: Page;

  const nav = (name: string) =>
    page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });
  const main = async () => ((await page.textContent('main')) ?? '').replace(/\s+/g, ' ');

  beforeAll(async () => {
    api = await startSelfhostApi({});
    browser = await launchChromium();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('jobs@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    // A project and a worker service to hang the job on, through the API as the same person.
    const login = await api.request('POST', '/api/auth/local/login', {
      body: { email: 'jobs@example.com', password: 'correct horse battery' },
    });
    const token = login.body.token as string;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    expect(project.status).toBe(201);
    const service = await api.request('POST', '/api/services', {
      token,
      body: { projectId: project.body.id, name: 'mailer', kind: 'worker', image: 'busybox:1' },
    });
    expect(service.status, JSON.stringify(service.body)).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  it('creates a job, refuses a seconds field by name, queues a run and deletes it', async () => {
    await nav('Cron jobs').click();
    expect(await main()).toContain('No jobs yet.');
    await page.getByLabel('Name').fill('nightly-report');
    await page.getByLabel(/^Schedule/).fill('* * * * * *');
    await page.getByLabel(/^Command/).fill('node report.js');
    await page.getByRole('button', { name: 'Create job' }).click();
    expect(await page.getByRole('alert').textContent()).toContain(
      'a seconds field would fire more often than once a minute',
    );

    await page.getByLabel('Name').fill('nightly-report');
    await page.getByLabel(/^Schedule/).fill('30 2 * * *');
    await page.getByLabel('Time zone').fill('Europe/Berlin');
    await page.getByLabel(/^Command/).fill('node report.js');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.getByRole('heading', { name: 'Job nightly-report' }).waitFor();
    expect(await main()).toContain('30 2 * * * in Europe/Berlin');
    expect(await main()).toContain('No runs yet.');

    await page.getByRole('button', { name: 'Run now' }).click();
    expect(await page.getByRole('status').textContent()).toContain('Run queued');

    await nav('Cron jobs').click();
    expect(await main()).toContain('nightly-report');
    expect(await main()).toContain('mailer (production)');
    await page.getByRole('link', { name: 'nightly-report' }).click();
    await page.getByRole('button', { name: 'Delete job' }).click();
    expect(await page.getByRole('status').textContent()).toContain('Job deleted');
    expect(await main()).toContain('No jobs yet.');
  });
});
