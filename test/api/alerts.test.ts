/**
 * The alert receiver's and the metrics endpoint's edges, through the real HTTP API on
 * PostgreSQL: a wrong or missing token, alerts naming no org or another org's service, a
 * body too large, and charts without any Prometheus (the answer says what to install).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { freePort } from '../support/ports.ts';

const receiverToken = 'r'.repeat(40);

describe('alert receiver and metrics endpoint (bad input)', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let bare: Awaited<ReturnType<typeof startSelfhostApi>>;
  let token: string;
  let orgId: string;
  let serviceId: string;

  beforeAll(async () => {
    // A Prometheus URL where nothing listens: the page must say so, never fail.
    const nobody = `http://127.0.0.1:${await freePort()}`;
    api = await startSelfhostApi({ alertReceiverToken: receiverToken, prometheusUrl: nobody });
    bare = await startSelfhostApi({ databaseUrl: api.databaseUrl, prometheusUrl: nobody });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'alerts@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'p' } });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'web',
        image: 'busybox:1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    serviceId = svc.body.id;
  }, 60_000);

  afterAll(async () => {
    await bare?.close();
    await api?.close();
  });

  const post = (h: typeof api, body: unknown, auth?: string) =>
    h.request('POST', '/api/alerts/alertmanager', {
      body,
      headers: auth ? { authorization: auth } : {},
    });
  const alert = (labels: Record<string, string>, status = 'firing') => ({
    status,
    alerts: [{ status, labels, annotations: { summary: 's' }, startsAt: new Date().toISOString() }],
  });

  it('answers 404 where no receiver token is configured, 401 to a wrong or missing one', async () => {
    const none = await post(
      bare,
      alert({ org: orgId, rule: 'crash_loop' }),
      `Bearer ${receiverToken}`,
    );
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe('alert_receiver_not_configured');
    expect((await post(api, alert({ org: orgId, rule: 'crash_loop' }))).status).toBe(401);
    const wrong = await post(api, alert({ org: orgId, rule: 'crash_loop' }), 'Bearer nope');
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('alert_receiver_token_invalid');
  });

  it("ignores alerts naming no org, an unknown rule, an unknown org or another org's service", async () => {
    const auth = `Bearer ${receiverToken}`;
    const cases = [
      alert({ rule: 'crash_loop' }),
      alert({ org: orgId, rule: 'made_up' }),
      alert({ org: 'org_0nothing', rule: 'crash_loop' }),
      alert({ org: orgId, rule: 'crash_loop', service: 'svc_0nothing' }),
    ];
    for (const body of cases) {
      const r = await post(api, body, auth);
      expect(r.status, JSON.stringify(body)).toBe(200);
      expect(r.body).toEqual({ accepted: 0, ignored: 1 });
    }
    const ok = await post(
      api,
      alert({ org: orgId, rule: 'crash_loop', service: serviceId }, 'resolved'),
      auth,
    );
    expect(ok.body).toEqual({ accepted: 1, ignored: 0 });
    const audit = await api.request('GET', '/api/audit-events?action=alert.resolved', { token });
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0].data).toMatchObject({ rule: 'crash_loop', serviceId });
  });

  it('refuses a body that is not Alertmanager’s with a 400', async () => {
    const r = await post(api, { alerts: 'many' }, `Bearer ${receiverToken}`);
    expect(r.status).toBe(400);
  });

  it('says what to install when Prometheus does not answer, and refuses a range it does not know', async () => {
    const m = await api.request('GET', `/api/services/${serviceId}/metrics?range=1d`, { token });
    expect(m.status, m.text).toBe(200);
    expect(m.body).toMatchObject({ available: false, range: '1d' });
    expect(m.body.reason).toContain('apt-get install prometheus');
    const bad = await api.request('GET', `/api/services/${serviceId}/metrics?range=10y`, { token });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('range');
  });

  it('refuses thresholds out of range, for unknown rules and for node rules', async () => {
    for (const [body, says] of [
      [{ serviceId, rule: 'http_5xx_spike', value: 2 }, 'between 0.001 and 1'],
      [{ serviceId, rule: 'nope', value: 1 }, 'unknown alert rule'],
      [{ serviceId, rule: 'disk_full', value: 0.9 }, 'not set per service'],
      [{ serviceId, rule: 'latency_p95', value: 'fast' }, 'value'],
    ] as const) {
      const r = await api.request('PUT', '/api/alerts/thresholds', { token, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.text).toContain(says);
    }
  });
});
