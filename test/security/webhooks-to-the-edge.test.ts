/**
 * Hole 3: a tenant's webhook aimed at the edge's admin API (`POST /stop`) stopped Caddy for
 * every tenant on the next event. Replayed against a real Caddy and the self-hosted API
 * with its pg-boss workers: the webhook is refused when it is created, naming why, and one
 * whose name is re-pointed at loopback after creation is refused when it is delivered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { fromEnv } from '../../adapters/modes/config.ts';
import { available } from '../support/services.ts';

const ready = await available('caddy');

describe.skipIf(!ready)('webhooks never reach the edge or the control plane', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let token: string;
  let orgId: string;
  let adminPort: string;
  // What the webhook sender's resolver answers for each name; the test re-points them.
  const names = new Map<string, string>();

  // The edge's own admin client: a stopped Caddy refuses the connection.
  const caddyAnswers = (): Promise<boolean> =>
    caddy.admin.read('/config/apps/http/servers').then(
      (r) => r !== undefined,
      () => false,
    );

  beforeAll(async () => {
    caddy = await startCaddy();
    adminPort = new URL(caddy.adminUrl).port;
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      webhookResolve: async (host) => {
        const address = names.get(host);
        if (!address) throw Object.assign(new Error(`${host} not found`), { code: 'ENOTFOUND' });
        return [{ address, family: 4 }];
      },
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'edge-attack@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    expect(await caddyAnswers()).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
  });

  it.each([
    ['the admin address itself', () => `${caddy.adminUrl}/stop`, /loopback|control plane/],
    ['localhost', () => `http://localhost:${adminPort}/stop`, /loopback/],
    ['IPv6 loopback', () => `http://[::1]:${adminPort}/stop`, /loopback/],
    ['a mapped IPv4', () => `http://[::ffff:127.0.0.1]:${adminPort}/stop`, /loopback/],
    [
      'a name for it',
      () => `http://caddy.internal:${adminPort}/stop`,
      /caddy\.internal \(127\.0\.0\.1\)/,
    ],
    ['the metadata service', () => 'http://169.254.169.254/latest/meta-data/', /link-local/],
  ])('refuses %s when the webhook is created, saying why', async (_what, url, reason) => {
    names.set('caddy.internal', '127.0.0.1');
    const res = await api.request('POST', '/api/webhooks', { token, body: { url: url() } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_input');
    expect(res.body.error.message).toMatch(/^url: /);
    expect(res.body.error.message).toMatch(reason);
    expect(await caddyAnswers()).toBe(true);
  });

  it('refuses a private address unless the operator opted in', async () => {
    const res = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: 'http://10.20.30.40/hook' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/private/);
    // And the opt-in is refused while anyone may sign up.
    expect(() => fromEnv({ SIGNUP_MODE: 'open', WEBHOOKS_ALLOW_PRIVATE: 'true' })).toThrow(
      /WEBHOOKS_ALLOW_PRIVATE: must not be true while SIGNUP_MODE=open/,
    );
  });

  it('refuses at delivery a name re-pointed to the admin API after creation; Caddy stays up', async () => {
    // Public when created: accepted.
    names.set('hooks.attacker.example', '203.0.113.9');
    const created = await api.request('POST', '/api/webhooks', {
      token,
      body: { url: `http://hooks.attacker.example:${adminPort}/stop` },
    });
    expect(created.status).toBe(201);
    // The attacker's DNS now answers loopback: the next delivery would POST /stop to Caddy.
    names.set('hooks.attacker.example', '127.0.0.1');
    await api.system.api.queue.send('webhook-deliveries', {
      orgId,
      webhookId: created.body.id,
      event: {
        id: 'evt_rebind',
        type: 'release.started',
        createdAt: new Date().toISOString(),
        data: {},
      },
    });
    const refusal = async () =>
      api
        .logLines()
        .find((l) => l.includes(created.body.id) && l.includes('webhook delivery failed'));
    const end = Date.now() + 20_000;
    while (!(await refusal()) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    const line = JSON.parse((await refusal()) ?? '{}') as { error?: string };
    expect(line.error).toBe(
      `refused: hooks.attacker.example (127.0.0.1):${adminPort} is the control plane or its edge's admin API`,
    );
    expect(await caddyAnswers()).toBe(true);
  }, 30_000);
});
