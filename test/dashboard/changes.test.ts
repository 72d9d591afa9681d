/**
 * Changing what runs in the dashboard (issue 14), in a real browser (Chromium through
 * playwright-core) against the self-hosted API on PostgreSQL: a service's settings form
 * (what applies now and what with the next release), deleting after typing the name,
 * renaming and deleting environments and projects, and a node's labels. No release runs
 * to completion here, so no Docker Engine or Caddy is needed.
 */
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();

describe.skipIf(!ready)(
  'changing services, environments, projects and nodes in the dashboard',
  () => {
    let api: Awaited<ReturnType<typeof startSelfhostApi>>;
    let browser: Awaited<ReturnType<typeof launchChromium>>;
    let context: BrowserContext;
    let page: Page;
    let token: string;
    let projectUrl: string;
    let projectId: string;

    const text = async (l: Locator) => ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();
    const notice = (t: string | RegExp) =>
      page.getByRole('status').filter({ hasText: t }).waitFor();

    /** Every visible form control has a label (or an aria-label). */
    async function expectLabelled() {
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
          .filter(
            (el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label'),
          )
          .map((el) => el.outerHTML),
      );
      expect(unlabelled).toEqual([]);
    }

    beforeAll(async () => {
      api = await startSelfhostApi();
      browser = await launchChromium();
      context = browser.context;
      page = await context.newPage();
      page.setDefaultTimeout(20_000);
      page.on('dialog', (d) => void d.accept());
      await page.goto(`${api.url}/dashboard/signup`);
      await page.getByLabel('Email').fill('changes@example.com');
      await page.getByLabel(/^Password/).fill('correct horse battery');
      await page.getByRole('button', { name: 'Sign up' }).click();
      await page.getByRole('heading', { name: 'Projects' }).waitFor();
      token = (await context.cookies(api.url)).find((c) => c.name === 'sdo_session')!.value;
      await page.locator('#project-name').fill('shop');
      await page.getByRole('button', { name: 'Create project' }).click();
      await page.getByRole('heading', { name: 'shop' }).waitFor();
      projectUrl = page.url();
      projectId = projectUrl.split('/').pop()!;
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      await api?.close();
    });

    it('changes a service in its settings form, saying what applies when', async () => {
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
      await page.goto(`${api.url}/dashboard/services/${svc.body.id}`);
      await page.getByRole('heading', { name: 'Change settings' }).waitFor();
      await expectLabelled();
      await page.getByLabel('Container port').fill('3000');
      await page.getByLabel(/^Environment variables/).fill('NODE_ENV=production\nMODE=fast');
      await page.locator('input[name=sticky]').check();
      await page.getByRole('button', { name: 'Save settings' }).click();
      await notice('With the next release: containerPort, env, sticky.');
      const got = await api.request('GET', `/api/services/${svc.body.id}`, { token });
      expect(got.body).toMatchObject({
        containerPort: 3000,
        env: { NODE_ENV: 'production', MODE: 'fast' },
        sticky: true,
        name: 'web',
      });

      await page.locator('#set-name').fill('front');
      await page.getByRole('button', { name: 'Save settings' }).click();
      await notice('Applied now: name.');
      await page.getByRole('heading', { name: 'front' }).waitFor();

      // Refused by the API: the form says why, and nothing changes.
      await page.locator('#set-image').fill('UPPER/case:tag');
      await page.locator('#set-port').fill('4000');
      await page.getByRole('button', { name: 'Save settings' }).click();
      expect(await text(page.getByRole('alert'))).toContain('image');
      const after = await api.request('GET', `/api/services/${svc.body.id}`, { token });
      expect(after.body).toMatchObject({ image: 'selfdevop-test/app:v1', containerPort: 3000 });

      // Deleting needs the name typed again.
      await page.goto(`${api.url}/dashboard/services/${svc.body.id}`);
      await page.getByLabel(/^Type front to confirm/).fill('web');
      await page.getByRole('button', { name: 'Delete service' }).click();
      expect(await text(page.getByRole('alert'))).toContain("type the service's name (front)");
      await page.getByLabel(/^Type front to confirm/).fill('front');
      await page.getByRole('button', { name: 'Delete service' }).click();
      await notice('Deleted front');
      expect(page.url()).toBe(projectUrl);
      expect((await api.request('GET', `/api/services/${svc.body.id}`, { token })).status).toBe(
        404,
      );
    }, 60_000);

    it('renames and deletes an environment; production keeps its name', async () => {
      await page.goto(projectUrl);
      await page.getByLabel(/^New environment/).fill('staging');
      await page.getByRole('button', { name: 'Add environment' }).click();
      await notice('Environment staging added');
      await expectLabelled();
      const staging = page.locator('#env-staging');
      await staging.getByLabel('New name of staging').fill('qa');
      await staging.getByRole('button', { name: 'Rename' }).click();
      await notice('Renamed to qa.');
      const qa = page.locator('#env-qa');
      await qa.getByLabel(/^Type qa to delete it/).fill('staging');
      await qa.getByRole('button', { name: 'Delete qa' }).click();
      expect(await text(page.getByRole('alert'))).toContain("type the environment's name (qa)");
      await page
        .locator('#env-qa')
        .getByLabel(/^Type qa to delete it/)
        .fill('qa');
      await page.locator('#env-qa').getByRole('button', { name: 'Delete qa' }).click();
      await notice('Deleted qa');
      expect(await page.locator('#env-qa').count()).toBe(0);
      // production offers no rename or delete.
      expect(await page.locator('#env-production').getByRole('button').count()).toBe(0);
    }, 60_000);

    it('relabels a node, and renames then deletes the project after its name', async () => {
      const node = await api.request('POST', '/api/nodes', {
        token,
        body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
      });
      expect(node.status, node.text).toBe(201);
      await page.goto(`${api.url}/dashboard/nodes/${node.body.id}`);
      await page.getByLabel(/^Labels/).fill('role=app\nregion=fra');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await notice('Node saved.');
      expect(
        (await api.request('GET', `/api/nodes/${node.body.id}`, { token })).body.labels,
      ).toEqual({ role: 'app', region: 'fra' });
      await page.locator('#node-address').fill('169.254.169.254');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      expect(await text(page.getByRole('alert'))).toContain('address');
      // What the node checks saw: nothing yet (this API runs no workers), then lost.
      const nodePage = `${api.url}/dashboard/nodes/${node.body.id}`;
      await page.goto(nodePage);
      expect(await text(page.locator('main dl'))).toMatch(/Engine\s*unknown[\s\S]*not yet checked/);
      const moved = await api.system.release.store.withOrg(node.body.orgId, (r) =>
        r.nodes.recordCheck(node.body.id, 'unknown', {
          reachability: 'lost',
          reachabilitySince: '2026-01-01T00:00:02.000Z',
          lastSeenAt: '2026-01-01T00:00:00.000Z',
          missedChecks: 2,
        }),
      );
      expect(moved).toBe(true);
      await page.goto(nodePage);
      expect(await text(page.locator('main dl'))).toMatch(
        /Engine\s*lost since .*its replicas left the edge and were replaced on other nodes/,
      );
      await page.goto(`${api.url}/dashboard/nodes`);
      expect(await text(page.locator('tbody tr', { hasText: 'local' }))).toMatch(/lost since/);
      // A lost node that holds nothing goes, after the browser's confirmation.
      await page.goto(nodePage);
      expect(await text(page.locator('#delete-node + p'))).toContain('The node is lost');
      const asked = page.waitForEvent('dialog');
      await page.getByRole('button', { name: 'Delete node' }).click();
      expect((await asked).message()).toBe(
        'Delete node local? selfdevop forgets it; its containers are not touched.',
      );
      await notice('Node deleted.');
      expect((await api.request('GET', `/api/nodes/${node.body.id}`, { token })).status).toBe(404);

      await page.goto(projectUrl);
      await page.getByLabel('Project name').fill('store');
      await page.getByRole('button', { name: 'Rename', exact: true }).click();
      await notice('Renamed to store.');
      await page.getByLabel(/^Type store to confirm/).fill('store');
      await page.getByRole('button', { name: 'Delete project' }).click();
      await notice('Project deleted');
      expect((await api.request('GET', `/api/projects/${projectId}`, { token })).status).toBe(404);
    }, 60_000);
  },
);
