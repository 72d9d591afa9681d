/**
 * Hole 10 (accounts): a revoked API key kept working ~5 s, because the key cache was
 * cleared before the revoke committed and other processes kept their copy. Replayed with
 * two API processes on one database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, sharedDatabase, startApiProcess, type ApiProcess } from './support/stack.ts';

const password = 'correct horse battery';

describe('a revoked API key', () => {
  let a: ApiProcess;
  let b: ApiProcess;
  let drop: () => Promise<void>;
  let session: string;
  let orgId: string;

  beforeAll(async () => {
    const db = await sharedDatabase();
    drop = db.drop;
    [a, b] = await Promise.all([startApiProcess(db.settings), startApiProcess(db.settings)]);
    const res = await a.request('POST', '/api/auth/local/signup', {
      body: { email: 'owner@keys.test', password },
      headers: from('10.1.0.1'),
    });
    expect(res.status).toBe(201);
    session = res.body.token;
    orgId = res.body.org.id;
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await drop?.();
  });

  let keys = 0;
  async function newKey(): Promise<{ id: string; key: string }> {
    const res = await a.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: session,
      body: { name: `ci-${++keys}`, role: 'deployer' },
    });
    expect(res.status).toBe(201);
    return res.body;
  }

  it('is refused by the revoking process at once, even when requests raced the revoke', async () => {
    const { id, key } = await newKey();
    expect((await a.request('GET', '/api/me', { token: key })).status).toBe(200);
    // Requests in flight during the revoke re-read the key while it is still valid.
    let racing = true;
    const racers = Array.from({ length: 4 }, async () => {
      while (racing) await a.request('GET', '/api/me', { token: key });
    });
    const revoked = await a.request('DELETE', `/api/orgs/${orgId}/api-keys/${id}`, {
      token: session,
    });
    expect(revoked.status).toBe(204);
    const after: number[] = [];
    for (let i = 0; i < 20; i++)
      after.push((await a.request('GET', '/api/me', { token: key })).status);
    racing = false;
    await Promise.all(racers);
    expect(after).toEqual(Array(20).fill(401));
  });

  it('is refused by another process once its key cache turns over', async () => {
    const { id, key } = await newKey();
    // B caches the key as valid.
    expect((await b.request('GET', '/api/me', { token: key })).status).toBe(200);
    expect((await b.request('GET', '/api/me', { token: key })).status).toBe(200);
    const revoked = await a.request('DELETE', `/api/orgs/${orgId}/api-keys/${id}`, {
      token: session,
    });
    expect(revoked.status).toBe(204);
    // B's cache entry is older than the revoke; once 1.5 s have passed it is older than the
    // 1 s key cache of every process, so B must ask the database again. The old 5 s cache
    // still answered from memory here.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await b.request('GET', '/api/me', { token: key })).status).toBe(401);
  }, 20_000);
});
