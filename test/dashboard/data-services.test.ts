/**
 * The dashboard's data-services view in a real browser (Chromium through playwright-core)
 * against the self-hosted API on PostgreSQL. No worker runs here, so a data service stays
 * `provisioning`: this is about the pages and forms (create, link, unlink, delete with its
 * confirmation), not the containers (test/integration/data-services.test.ts has those).
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newBackupRow } from '../../core/data-services/backup-work.ts';
import { addDataImages, dataServiceSecretContext } from '../../core/data-services/plan.ts';
import type { BackupManifest } from '../../core/models.ts';
import { startSelfhostApi } from '../support/api.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();
const shots = join(import.meta.dirname, '..', '..', 'test-results', 'screenshots');

describe.skipIf(!ready)('data services in the dashboard', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let context: BrowserContext;
  let page: Page;
  let token: string;
  let orgId: string;
  const orgOf = () => orgId;

  const text = async (l: Locator) => ((await l.textContent()) ?? '').replace(/\s+/g, ' ').trim();

  beforeAll(async () => {
    await mkdir(shots, { recursive: true });
    api = await startSelfhostApi();
    browser = await launchChromium();
    context = browser.context;
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('data-ui@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    token = (await context.cookies(api.url)).find((c) => c.name === 'sdo_session')!.value;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    orgId = project.body.orgId;
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const node = await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await api?.close();
  });

  it('creates a Redis with its settings, links and unlinks a service, and deletes it after the name is typed', async () => {
    await page
      .getByRole('navigation', { name: 'Main' })
      .getByRole('link', { name: 'Data services' })
      .click();
    await page.getByRole('heading', { name: 'Data services' }).waitFor();
    await page.getByLabel(/^Name/).fill('cache');
    await page.getByLabel('Engine').selectOption('redis');
    await page.getByLabel('Memory limit (MB)').fill('128');
    await page.getByLabel('Eviction policy').selectOption('allkeys-lru');
    await page.getByLabel('Persistence').selectOption('aof');
    await page.getByRole('button', { name: 'Create' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'Data service cache is being created.' })
      .waitFor();
    expect(await text(page.getByRole('heading', { level: 1 }))).toBe('cache provisioning');
    expect(await text(page.locator('dl.facts'))).toContain('128 MB, allkeys-lru, aof');
    // The password is never on the page: only whether and when it was rotated.
    const id = page.url().split('/').pop()!;
    const row0 = await api.system.release.store.withOrg(orgOf(), (r) => r.dataServices.get(id));
    const secret = await api.system.release.vault.open(
      row0!.sealedPassword,
      dataServiceSecretContext(orgOf(), id),
    );
    expect(await page.content()).not.toContain(secret);
    expect(await text(page.locator('dl.facts'))).toContain(
      'Password generated at creation, never rotated',
    );
    // Still provisioning: nothing to rotate yet.
    expect(await page.getByRole('button', { name: 'Rotate password' }).isDisabled()).toBe(true);
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label'))
        .map((el) => el.outerHTML),
    );
    expect(unlabelled).toEqual([]);
    // Backups and drills have their own sections, empty until the first backup.
    expect(await text(page.getByRole('heading', { name: 'Backups' }))).toBe('Backups');
    expect(await page.getByText('No backups yet.').count()).toBe(1);
    expect(await page.getByText('No drills yet.').count()).toBe(1);
    expect(await page.getByText('0 3 * * *').count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Back up now' }).count()).toBe(1);

    await page.getByLabel('Service').selectOption({ label: 'web' });
    await page.getByRole('button', { name: 'Link' }).click();
    await page.getByRole('status').filter({ hasText: 'Linked' }).waitFor();
    const row = page.getByRole('table').getByRole('row').nth(1);
    expect(await text(row)).toBe('web REDIS_URL Unlink');
    await page.screenshot({ path: join(shots, 'data-service.png'), fullPage: true });

    // Linked: the API refuses the delete and the page says why.
    await page.getByLabel(/^Type/).fill('cache');
    await page.getByRole('button', { name: 'Delete data service' }).click();
    expect(await text(page.getByRole('alert'))).toContain('unlink them first');
    await row.getByRole('button', { name: 'Unlink' }).click();
    await page.getByRole('status').filter({ hasText: 'Unlinked' }).waitFor();

    await page.getByLabel(/^Type/).fill('not-cache');
    await page.getByRole('button', { name: 'Delete data service' }).click();
    expect(await text(page.getByRole('alert'))).toContain(
      "confirm: type the data service's name (cache)",
    );
    await page.getByLabel(/^Type/).fill('cache');
    await page.getByRole('button', { name: 'Delete data service' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'Deleting the data service; its data volume is kept on the node.' })
      .waitFor();
    expect(await text(page.getByRole('table').getByRole('row').nth(1))).toMatch(
      /^cache shop redis 7 deleting /,
    );
  }, 60_000);

  it('creates a shareable server, then a database on it chosen from the list of ready ones', async () => {
    await page.goto(`${api.url}/dashboard/data-services`);
    await page.getByLabel(/^Name/).fill('main');
    await page.getByLabel('Engine').selectOption('mariadb');
    await page.getByRole('checkbox', { name: /Shareable server/ }).check();
    await page.getByRole('button', { name: 'Create' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'Data service main is being created.' })
      .waitFor();
    expect(await text(page.locator('dl.facts'))).toContain(
      "Hosting shareable server: holds other data services' databases",
    );
    const serverId = page.url().split('/').pop()!;
    // No worker runs here: only a ready server is offered, so make it ready as the worker would.
    await page.goto(`${api.url}/dashboard/data-services`);
    expect(
      await page.getByLabel('Or a database on a shared server').locator('option').count(),
    ).toBe(1);
    await api.system.release.store.withOrg(orgOf(), (r) =>
      r.dataServices.update(serverId, { status: 'ready' }),
    );
    await page.goto(`${api.url}/dashboard/data-services`);
    await page.getByLabel(/^Name/).fill('shop-db');
    // The engine field is left at Redis: a database on a shared server takes the server's.
    await page
      .getByLabel('Or a database on a shared server')
      .selectOption({ label: 'main (mariadb 10.11)' });
    await page.getByRole('button', { name: 'Create' }).click();
    await page
      .getByRole('status')
      .filter({ hasText: 'Data service shop-db is being created.' })
      .waitFor();
    const facts = await text(page.locator('dl.facts'));
    expect(facts).toContain('mariadb 10.11');
    expect(facts).toMatch(new RegExp(`Hosting database sdo_dat_\\w+ on shared server ${serverId}`));
    expect(facts).toContain(`sdo-data-${serverId.toLowerCase()}:3306`);
  }, 60_000);

  it('moves the shared database to a dedicated server from its page, then confirms the move', async () => {
    const h = { token, headers: { 'x-org-id': orgId } };
    const all = (await api.request('GET', '/api/data-services', h)).body.items as {
      id: string;
      name: string;
    }[];
    const db = all.find((d) => d.name === 'shop-db')!;
    const server = all.find((d) => d.name === 'main')!;
    // No worker here: the database is taken as ready, as the worker would leave it.
    await api.system.release.store.withOrg(orgOf(), (r) =>
      r.dataServices.update(db.id, { status: 'ready' }),
    );
    await page.goto(`${api.url}/dashboard/data-services/${server.id}`);
    expect(await page.getByRole('button', { name: 'Move to dedicated server' }).count()).toBe(0);
    await page.goto(`${api.url}/dashboard/data-services/${db.id}`);
    await page.getByRole('button', { name: 'Move to dedicated server' }).click();
    await page.getByRole('status').filter({ hasText: 'Moving to a dedicated server' }).waitFor();
    expect(await text(page.locator('main'))).toContain('Moving: step backup');
    expect(await page.getByRole('button', { name: 'Move to dedicated server' }).count()).toBe(0);
    const again = await api.request('POST', `/api/data-services/${db.id}/move-to-dedicated`, h);
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'move_in_progress' });
    const dedicated = await api.request(
      'POST',
      `/api/data-services/${server.id}/move-to-dedicated`,
      h,
    );
    expect(dedicated.status).toBe(409);
    expect(dedicated.body.error).toMatchObject({ code: 'data_service_not_shared' });
    const early = await api.request('POST', `/api/data-services/${db.id}/confirm-move`, h);
    expect(early.status).toBe(409);
    expect(early.body.error).toMatchObject({ code: 'move_not_done' });
    // The worker's outcome (its steps are the integration and unit tests'): moved.
    await api.system.release.store.withOrg(orgOf(), async (r) => {
      const row = await r.dataServices.get(db.id);
      await r.dataServices.update(db.id, {
        move: { ...row!.move!, status: 'moved', step: null, targetId: server.id },
      });
    });
    await page.goto(`${api.url}/dashboard/data-services/${db.id}`);
    expect(await text(page.locator('main'))).toContain(`Moved to ${server.id}`);
    await page.getByRole('button', { name: 'Confirm move' }).click();
    await page.getByRole('status').filter({ hasText: 'Move confirmed' }).waitFor();
    const after = await api.request('GET', `/api/data-services/${db.id}`, h);
    expect(after.body.status).toBe('deleting');
  }, 60_000);

  it('shows a clear error for a clashing name and a 404 for an unknown data service', async () => {
    await page.goto(`${api.url}/dashboard/data-services`);
    await page.getByLabel(/^Name/).fill('cache');
    await page.getByLabel('Engine').selectOption('postgres');
    await page.getByRole('button', { name: 'Create' }).click();
    expect(await text(page.getByRole('alert'))).toBe('data_service cache already exists');
    const unknown = await page.goto(`${api.url}/dashboard/data-services/dat_nope`);
    expect(unknown?.status()).toBe(404);
  }, 60_000);

  it('rotates the password from the data service page; a second rotation while one runs is refused', async () => {
    const created = await api.request('POST', '/api/data-services', {
      token,
      headers: { 'x-org-id': orgId },
      body: {
        projectId: (await api.request('GET', '/api/projects', { token })).body.items[0].id,
        name: 'orders',
        engine: 'postgres',
      },
    });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id as string;
    // No worker here: the server is taken as ready so the page offers the rotation.
    await api.system.release.store.withOrg(orgId, (r) =>
      r.dataServices.update(id, { status: 'ready' }),
    );
    await page.goto(`${api.url}/dashboard/data-services/${id}`);
    await page.getByRole('button', { name: 'Rotate password' }).click();
    await page.getByRole('status').filter({ hasText: 'Rotating the password' }).waitFor();
    expect(await text(page.locator('dl.facts'))).toContain('Password rotating…');
    expect(await page.getByRole('button', { name: 'Rotate password' }).isDisabled()).toBe(true);
    const again = await api.request('POST', `/api/data-services/${id}/rotate-password`, {
      token,
      headers: { 'x-org-id': orgId },
    });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatchObject({ code: 'rotation_in_progress' });
    const audit = await api.request(
      'GET',
      `/api/audit-events?action=data_service.rotation_requested&targetId=${id}`,
      { token, headers: { 'x-org-id': orgId } },
    );
    expect(audit.body.items).toHaveLength(1);
  }, 60_000);

  it('shows the drill schedule and changes it beside retention; the newest passed drill is named', async () => {
    const created = await api.request('POST', '/api/data-services', {
      token,
      headers: { 'x-org-id': orgId },
      body: {
        projectId: (await api.request('GET', '/api/projects', { token })).body.items[0].id,
        name: 'payments',
        engine: 'mariadb',
      },
    });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id as string;
    const drillsOf = async () =>
      (
        await api.request('GET', `/api/data-services/${id}`, {
          token,
          headers: { 'x-org-id': orgId },
        })
      ).body.drillSchedule;
    await page.goto(`${api.url}/dashboard/data-services/${id}`);
    const select = page.getByLabel('Restore drills');
    expect(await select.inputValue()).toBe('every_backup');
    expect(await text(page.locator('#drill-policy'))).toMatch(
      /^After every backup: each one is drilled once it is stored\./,
    );
    expect(await text(page.locator('#drill-proven'))).toBe('No backup has passed a drill yet.');

    // A backup the worker drilled (no worker here: the row as it leaves it).
    const sys = api.system.release;
    const row = await newBackupRow(
      { ...sys, backupCodec: sys.backupCodec! },
      { orgId, id },
      'schedule',
    );
    await sys.store.withOrg(orgId, (r) =>
      r.dataServiceBackups.insert({
        ...row,
        status: 'completed',
        finishedAt: row.startedAt,
        drillStatus: 'passed',
        drilledAt: row.startedAt,
      }),
    );

    await select.selectOption('weekly');
    await page.getByRole('button', { name: 'Save drills' }).click();
    await page.getByRole('status').filter({ hasText: 'Drills are weekly' }).waitFor();
    expect(await drillsOf()).toBe('weekly');
    expect(await page.getByLabel('Restore drills').inputValue()).toBe('weekly');
    expect(await text(page.locator('#drill-policy'))).toMatch(
      /^Weekly: a scheduled backup is drilled when no backup of the last 7 days has a drill that passed, and the next one after a failed drill;/,
    );
    expect(await text(page.locator('#drill-proven'))).toMatch(
      new RegExp(`^Newest passed drill: backup ${row.id} taken `),
    );
    // The drill schedule sits in the same form group as retention: both labelled forms.
    expect(await page.getByRole('form', { name: 'Retention' }).count()).toBe(1);
    expect(await page.getByRole('form', { name: 'Drill schedule' }).count()).toBe(1);
    await page.screenshot({ path: join(shots, 'data-service-drills.png'), fullPage: true });

    // A value the API does not take (a tampered form): the reason names the field, nothing changes.
    await page.evaluate(() => {
      const o = document.querySelector<HTMLOptionElement>(
        '#drill-schedule option[value="every_backup"]',
      )!;
      o.value = 'monthly';
    });
    await page.getByLabel('Restore drills').selectOption('monthly');
    await page.getByRole('button', { name: 'Save drills' }).click();
    await page.getByRole('alert').filter({ hasText: 'drillSchedule' }).waitFor();
    expect(await drillsOf()).toBe('weekly');

    await page.goto(`${api.url}/dashboard/data-services/${id}`);
    await page.getByLabel('Restore drills').selectOption('every_backup');
    await page.getByRole('button', { name: 'Save drills' }).click();
    await page.getByRole('status').filter({ hasText: 'Every backup is drilled' }).waitFor();
    expect(await drillsOf()).toBe('every_backup');
  }, 60_000);

  it('exports a backup (the JSON and the encrypted object), imports it back and streams the object up', async () => {
    // No worker here: a ready Redis with one completed backup, stored as the worker would.
    const created = await api.request('POST', '/api/data-services', {
      token,
      body: {
        projectId: (await api.request('GET', '/api/projects', { token })).body.items[0].id,
        name: 'sessions',
        engine: 'redis',
      },
    });
    expect(created.status, created.text).toBe(202);
    const id = created.body.id as string;
    const sys = api.system.release;
    await sys.store.withOrg(orgOf(), (r) => r.dataServices.update(id, { status: 'ready' }));
    const row = await newBackupRow(
      { ...sys, backupCodec: sys.backupCodec! },
      { orgId: orgOf(), id },
      'manual',
    );
    const key = await sys.vault.open(row.sealedDataKey, `${orgOf()}:backup:${row.id}`);
    const coded = sys.backupCodec!.encode(
      (async function* () {
        yield new TextEncoder().encode('REDIS0011 a dump of the dashboard test');
      })(),
      key,
    );
    await sys.objects!.putStream(row.objectKey, coded.output);
    const t = coded.totals();
    const manifest: BackupManifest = {
      format: 1,
      backupId: row.id,
      dataServiceId: id,
      engine: 'redis',
      serverVersion: '7.0.15',
      tool: 'redis BGSAVE + dump.rdb',
      encoding: 'gzip+aes-256-gcm',
      sealedDataKey: row.sealedDataKey,
      objectKey: row.objectKey,
      rawBytes: t.inBytes,
      storedBytes: t.outBytes,
      sha256: t.outSha256,
      rawSha256: t.inSha256,
      tables: {},
      keys: 0,
      takenAt: row.startedAt,
    };
    await sys.objects!.put(row.manifestKey, JSON.stringify(manifest));
    await sys.store.withOrg(orgOf(), (r) =>
      r.dataServiceBackups.insert({
        ...row,
        status: 'completed',
        manifest,
        sha256: t.outSha256,
        storedBytes: t.outBytes,
        rawBytes: t.inBytes,
      }),
    );

    await page.goto(`${api.url}/dashboard/data-services/${id}`);
    const backupRow = page.getByRole('row').filter({ hasText: 'manual' });
    await backupRow
      .getByLabel(`Passphrase for the export of ${row.id}`)
      .fill('dashboard passphrase');
    const [bundleFile] = await Promise.all([
      page.waitForEvent('download'),
      backupRow.getByRole('button', { name: 'Export' }).click(),
    ]);
    expect(bundleFile.suggestedFilename()).toBe(`${row.id}.json`);
    const bundle = JSON.parse(await readFile((await bundleFile.path())!, 'utf8'));
    expect(bundle).toMatchObject({ kind: 'selfdevop-data-backup', manifest: { backupId: row.id } });
    const [objectFile] = await Promise.all([
      page.waitForEvent('download'),
      backupRow.getByRole('link', { name: 'Encrypted object' }).click(),
    ]);
    const objectPath = (await objectFile.path())!;
    expect((await readFile(objectPath)).byteLength).toBe(t.outBytes);

    // A wrong passphrase is named on the page.
    await page.getByLabel('Export (.json)').setInputFiles((await bundleFile.path())!);
    await page.getByLabel('Passphrase', { exact: true }).fill('not the passphrase');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    expect(await text(page.getByRole('alert'))).toContain(
      "passphrase: it does not open this backup's key",
    );
    await page.getByLabel('Export (.json)').setInputFiles((await bundleFile.path())!);
    await page.getByLabel('Passphrase', { exact: true }).fill('dashboard passphrase');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'now upload its encrypted object' }).waitFor();
    const importRow = page.getByRole('row').filter({ hasText: 'import' });
    await importRow.getByLabel('Encrypted object').setInputFiles(objectPath);
    await importRow.getByRole('button', { name: 'Upload' }).click();
    // app.js posts the file as the body, then reloads: the import is stored, its drill queued.
    await page
      .getByRole('row')
      .filter({ hasText: 'import' })
      .getByRole('link', { name: 'Download' })
      .waitFor();
    const list = await api.request('GET', `/api/data-services/${id}/backups`, {
      token,
      headers: { 'x-org-id': orgOf() },
    });
    const imported = list.body.items.find((b: { trigger: string }) => b.trigger === 'import');
    expect(imported).toMatchObject({
      status: 'completed',
      storedBytes: t.outBytes,
      sha256: t.outSha256,
    });
  }, 60_000);

  it('asks for a minor upgrade from the page; another release line is refused with the reason', async () => {
    const created = await api.request('POST', '/api/data-services', {
      token,
      body: {
        projectId: (await api.request('GET', '/api/projects', { token })).body.items[0].id,
        name: 'ledger',
        engine: 'postgres',
      },
    });
    const id = created.body.id as string;
    await api.system.release.store.withOrg(orgOf(), (r) =>
      r.dataServices.update(id, { status: 'ready' }),
    );
    await page.goto(`${api.url}/dashboard/data-services/${id}`);
    await page.getByLabel('Newer minor of postgres 15').fill('16');
    await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
    expect(await text(page.getByRole('alert'))).toContain('changes the release line (15 → 16)');
    // The catalog gains a newer minor, as DATA_IMAGES would add it (no worker runs here).
    addDataImages([{ engine: 'postgres', version: '15.99', image: 'selfdevop/postgres:15' }]);
    await page.getByLabel('Newer minor of postgres 15').fill('15.99');
    await page.getByRole('button', { name: 'Upgrade', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Upgrading: a backup first' }).waitFor();
    expect(await text(page.getByRole('status').filter({ hasText: '15 → 15.99' }))).toContain(
      'upgrading (step backup)',
    );
    expect(await page.getByRole('button', { name: 'Upgrade', exact: true }).isDisabled()).toBe(
      true,
    );
  }, 60_000);
});
