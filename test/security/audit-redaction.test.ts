/**
 * Hole 10 (accounts): a viewer, who may not list webhooks, read their URLs (and the tokens
 * in them) through the audit log. Replayed against the API on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';

const hookUrl = 'https://hooks.example.test/services/T0/B0/s3cr3t-hook-token';

describe('audit log redaction', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let owner: string;
  let orgId: string;

  beforeAll(async () => {
    api = await startSelfhostApi();
    const res = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'owner@audit.test', password: 'correct horse battery' },
    });
    owner = res.body.token;
    orgId = res.body.org.id;
    const hook = await api.request('POST', '/api/webhooks', {
      token: owner,
      body: { url: hookUrl },
    });
    expect(hook.status).toBe(201);
  }, 60_000);

  afterAll(async () => api?.close());

  async function keyFor(role: string): Promise<string> {
    const res = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: owner,
      body: { name: role, role },
    });
    expect(res.status).toBe(201);
    return res.body.key;
  }

  it('hides webhook URLs from roles that may not see webhooks', async () => {
    for (const role of ['viewer', 'deployer']) {
      const key = await keyFor(role);
      expect((await api.request('GET', '/api/webhooks', { token: key })).status).toBe(403);
      const audit = await api.request('GET', '/api/audit-events', { token: key });
      expect(audit.status).toBe(200);
      const created = audit.body.items.find(
        (e: { action: string }) => e.action === 'webhook.created',
      );
      expect(created, role).toBeDefined();
      expect(created.data.url).toBe('[redacted]');
      expect(audit.text).not.toContain('hooks.example.test');
      expect(audit.text).not.toContain('s3cr3t-hook-token');
    }
  });

  it('shows them to those who may manage webhooks', async () => {
    const key = await keyFor('admin');
    const audit = await api.request('GET', '/api/audit-events', { token: key });
    const created = audit.body.items.find(
      (e: { action: string }) => e.action === 'webhook.created',
    );
    expect(created.data.url).toBe(hookUrl);
  });
});
