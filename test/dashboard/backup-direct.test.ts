/**
 * The dashboard where the object store serves clients itself (the cloud edition; here the
 * self-hosted API with OBJECTS_S3_DIRECT and a real S3 peer, s3rver, whose bucket allows the
 * dashboard's origin as the cloud's CORS rule does), in Chromium: "Encrypted object" is
 * fetched from the store through the API's 303, and an import's object goes from the browser
 * straight to the store's upload URL, then the page completes it; "Download" takes the dump
 * from the store and decrypts it in the page (`POST …/download-url`).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { encodedBackup, seedCompletedBackup } from '../support/data-services.ts';
import { startS3rver, type LocalS3 } from '../support/s3rver.ts';
import { chromiumAvailable, launchChromium } from './browser.ts';

const ready = chromiumAvailable();

describe.skipIf(!ready)('backup objects past the API, in the dashboard', () => {
  let s3: LocalS3;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let token: string;
  let orgId: string;
  let dataServiceId: string;
  let backupId: string;
  const object = randomBytes(200_000);

  beforeAll(async () => {
    s3 = await startS3rver(['direct'], { corsOrigin: 'http://127.0.0.1:*' });
    api = await startSelfhostApi({ objectsS3: s3.objectsS3('direct', true) });
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.setDefaultTimeout(20_000);
    await page.goto(`${api.url}/dashboard/signup`);
    await page.getByLabel('Email').fill('direct-ui@example.com');
    await page.getByLabel(/^Password/).fill('correct horse battery');
    await page.getByRole('button', { name: 'Sign up' }).click();
    await page.getByRole('heading', { name: 'Projects' }).waitFor();
    token = (await browser.context.cookies(api.url)).find((c) => c.name === 'sdo_session')!.value;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    orgId = project.body.orgId;
    // No worker here: a ready MariaDB with one completed backup, its object in the bucket.
    ({ dataServiceId, backupId } = await seedCompletedBackup(
      api,
      { orgId, projectId: project.body.id },
      object,
    ));
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await api?.close();
    await s3?.stop();
  });

  it('downloads the object from the store and uploads an import’s object to it', async () => {
    await page.goto(`${api.url}/dashboard/data-services/${dataServiceId}`);
    const backupRow = page.getByRole('row').filter({ hasText: 'manual' });
    await backupRow
      .getByLabel(`Passphrase for the export of ${backupId}`)
      .fill('dashboard passphrase');
    const [bundleFile] = await Promise.all([
      page.waitForEvent('download'),
      backupRow.getByRole('button', { name: 'Export' }).click(),
    ]);
    const [objectFile] = await Promise.all([
      page.waitForEvent('download'),
      backupRow.getByRole('link', { name: 'Encrypted object' }).click(),
    ]);
    // Served by the bucket (the dashboard's proxy passed the API's 303 on), named as a backup.
    expect(objectFile.url().startsWith(`${s3.endpoint}/direct/backups/`)).toBe(true);
    expect(objectFile.suggestedFilename()).toBe(`orders-${backupId}.gz.enc`);
    const objectPath = path.join(os.tmpdir(), `sdo-direct-ui-${backupId}.gz.enc`);
    await objectFile.saveAs(objectPath);
    expect(await readFile(objectPath)).toEqual(object);

    await page.getByLabel('Export (.json)').setInputFiles((await bundleFile.path())!);
    await page.getByLabel('Passphrase', { exact: true }).fill('dashboard passphrase');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'now upload its encrypted object' }).waitFor();
    const alerts: string[] = [];
    page.on('dialog', (d) => {
      alerts.push(d.message());
      void d.dismiss();
    });
    page.on('console', (m) => void alerts.push(`console: ${m.text()}`));
    const puts: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'PUT') puts.push(r.url());
    });
    const importRow = page.getByRole('row').filter({ hasText: 'import' });
    await importRow.getByLabel('Encrypted object').setInputFiles(objectPath);
    await importRow.getByRole('button', { name: 'Upload' }).click();
    await page
      .getByRole('row')
      .filter({ hasText: 'import' })
      .getByRole('link', { name: 'Download' })
      .waitFor()
      .catch((e: Error) => {
        throw new Error(`${e.message}; the page said: ${alerts.join(' | ')}`);
      });
    // The bytes went to the bucket, not through the dashboard or the API.
    expect(puts).toHaveLength(1);
    expect(puts[0]!.startsWith(`${s3.endpoint}/direct/backups/`)).toBe(true);
    const list = await api.request('GET', `/api/data-services/${dataServiceId}/backups`, {
      token,
    });
    const imported = list.body.items.find((b: { trigger: string }) => b.trigger === 'import');
    expect(imported).toMatchObject({ status: 'completed', storedBytes: object.length });
    await rm(objectPath, { force: true });
  }, 90_000);

  it('downloads a dump from the store and decrypts it in the browser, past the API', async () => {
    // A real encoded dump (the cloud's API could not carry it: more than 4 MiB decompressed).
    const rows = Array.from({ length: 120_000 }, (_, i) => `INSERT INTO ledger VALUES (${i});\n`);
    const { dump, dataKey, object: encoded } = await encodedBackup(Buffer.from(rows.join('')));
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'books' } });
    const ledger = await seedCompletedBackup(
      api,
      { orgId, projectId: project.body.id },
      encoded,
      'ledger',
      { dataKey, rawBytes: dump.length },
    );
    const requests: string[] = [];
    page.on('request', (r) => void requests.push(`${r.method()} ${r.url()}`));
    await page.goto(`${api.url}/dashboard/data-services/${ledger.dataServiceId}`);
    const [file] = await Promise.all([
      page.waitForEvent('download'),
      page
        .getByRole('row')
        .filter({ hasText: 'manual' })
        .getByRole('link', { name: 'Download', exact: true })
        .click(),
    ]);
    expect(file.suggestedFilename()).toBe(`ledger-${ledger.backupId}.sql`);
    const saved = path.join(os.tmpdir(), `sdo-direct-ui-${ledger.backupId}.sql`);
    await file.saveAs(saved);
    expect((await readFile(saved)).equals(dump)).toBe(true);
    await rm(saved, { force: true });
    // The object came from the bucket; the API's streamed download was never asked.
    expect(requests.some((r) => r.startsWith(`GET ${s3.endpoint}/direct/backups/`))).toBe(true);
    expect(requests.filter((r) => r.endsWith('/download'))).toEqual([]);
  }, 90_000);
});
