/**
 * Hole 10 (accounts): ten wrong passwords locked the real owner out for 15 minutes, and each
 * API process counted alone. Replayed with two API processes on one database: a stranger's
 * guesses, spread over both, are limited together, and the owner from elsewhere gets in.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, sharedDatabase, startApiProcess, type ApiProcess } from './support/stack.ts';

const email = 'owner@lockout.test';
const password = 'correct horse battery';

describe('login lockout', () => {
  let a: ApiProcess;
  let b: ApiProcess;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const db = await sharedDatabase();
    drop = db.drop;
    [a, b] = await Promise.all([startApiProcess(db.settings), startApiProcess(db.settings)]);
    const res = await a.request('POST', '/api/auth/local/signup', {
      body: { email, password },
      headers: from('10.2.0.1'),
    });
    expect(res.status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await drop?.();
  });

  it('limits a stranger across processes and still lets the owner in from another source', async () => {
    const attacker = from('203.0.113.66');
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) {
      const api = i % 2 === 0 ? a : b;
      const res = await api.request('POST', '/api/auth/local/login', {
        body: { email, password: `guess-${i}` },
        headers: attacker,
      });
      statuses.push(res.status);
    }
    // Ten guesses in all, whichever process answered; then 429 everywhere.
    expect(statuses).toEqual([...Array(10).fill(401), ...Array(10).fill(429)]);
    // Even the right password from the attacker's source waits out the window.
    const blocked = await a.request('POST', '/api/auth/local/login', {
      body: { email, password },
      headers: attacker,
    });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);

    for (const api of [a, b]) {
      const owner = await api.request('POST', '/api/auth/local/login', {
        body: { email, password },
        headers: from('198.51.100.7'),
      });
      expect(owner.status).toBe(200);
      expect(typeof owner.body.token).toBe('string');
    }
  }, 30_000);
});
