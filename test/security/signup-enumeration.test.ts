/**
 * Hole 10 (accounts): signup's 409 named the email that already had an account. Replayed
 * against the API on PostgreSQL: the refusal is the same words for every email, names
 * none, and costs the same bcrypt as a new signup.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';

const password = 'correct horse battery';

describe('signup for an email that has an account', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  const known = ['alice@enum.test', 'bob@enum.test'];

  beforeAll(async () => {
    api = await startSelfhostApi();
    for (const email of known) {
      const res = await api.request('POST', '/api/auth/local/signup', {
        body: { email, password },
      });
      expect(res.status).toBe(201);
    }
  }, 60_000);

  afterAll(async () => api?.close());

  it('answers with one generic refusal that names no email', async () => {
    const answers = [];
    for (const email of [...known, 'ALICE@enum.test']) {
      const res = await api.request('POST', '/api/auth/local/signup', {
        body: { email, password: 'another password' },
      });
      expect(res.text.toLowerCase()).not.toContain('alice');
      expect(res.text.toLowerCase()).not.toContain('bob');
      expect(res.text).not.toContain('already exists');
      answers.push({ status: res.status, body: res.body });
    }
    expect(answers[0]!.body.error.code).toBe('signup_refused');
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
  });

  it('gives concurrent signups of one new email the same answer: one wins, the rest are refused alike', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        api.request('POST', '/api/auth/local/signup', {
          body: { email: 'carol@enum.test', password },
        }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    for (const r of results.filter((x) => x.status !== 201))
      expect(r.body.error.code).toBe('signup_refused');
  });
});
