/**
 * PostgreSQL going away under a running API: requests fail with a clear 503 while it is
 * down, and succeed again once it is back, with no restart of the API. The database is
 * an embedded PostgreSQL of this test's own, so stopping it disturbs no other suite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../adapters/db/embedded-postgres.ts';
import { startSelfhostApi } from '../support/api.ts';
import { freePort } from '../support/ports.ts';
import type { ApiHarness } from './api.case.ts';

describe('PostgreSQL restarting under the running API', () => {
  let dir: string;
  let port: number;
  let pg: { url: string; stop: () => Promise<void> };
  let api: ApiHarness;
  let token: string;
  const start = () =>
    startEmbeddedPostgres({ dataDir: dir, port, password: 'restart-test', database: 'selfdevop' });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-pg-restart-'));
    await import('node:fs/promises').then((fs) => fs.chmod(dir, 0o711));
    port = await freePort();
    pg = await start();
    api = await startSelfhostApi({ databaseUrl: pg.url });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'restart@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    expect(
      (await api.request('POST', '/api/projects', { token, body: { name: 'before' } })).status,
    ).toBe(201);
  }, 120_000);

  afterAll(async () => {
    await api?.close().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 503 while the database is down and recovers by itself', async () => {
    await pg.stop();

    const down = await api.request('GET', '/api/projects', { token });
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('database_unavailable');
    const ready = await api.request('GET', '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.checks.database).not.toBe('ok');
    expect((await api.request('GET', '/health')).status).toBe(200);
    const write = await api.request('POST', '/api/projects', { token, body: { name: 'during' } });
    expect(write.status).toBe(503);

    pg = await start();
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await api.request('GET', '/api/projects', { token })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(200);
    const after = await api.request('GET', '/api/projects', { token });
    expect(after.body.items.map((p: { name: string }) => p.name)).toEqual(['before']);
    expect(
      (await api.request('POST', '/api/projects', { token, body: { name: 'after' } })).status,
    ).toBe(201);
  }, 120_000);
});
