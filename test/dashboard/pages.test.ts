/**
 * The dashboard's HTTP behaviour without a browser (PostgreSQL only): sessions, cookies,
 * cross-site refusal, security headers and pages for errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { makeTestPki } from '../support/docker-tls.ts';

describe('dashboard pages over HTTP', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;

  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const post = (
    path: string,
    fields: Record<string, string>,
    headers: Record<string, string> = {},
  ) =>
    fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: form(fields),
      redirect: 'manual',
    });

  beforeAll(async () => {
    api = await startSelfhostApi();
  }, 60_000);
  afterAll(() => api?.close());

  it('sends a visitor without a session to the login page, and / to the dashboard', async () => {
    const root = await fetch(`${api.url}/`, { redirect: 'manual' });
    expect(root.headers.get('location')).toBe('/dashboard');
    const res = await fetch(`${api.url}/dashboard/nodes`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard/login?next=%2Fdashboard%2Fnodes');
    const login = await fetch(`${api.url}/dashboard/login`);
    expect(login.status).toBe(200);
    expect(login.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(login.headers.get('x-frame-options')).toBe('DENY');
    const html = await login.text();
    expect(html).toContain('<label for="email">Email</label>');
    expect(html).toContain('<a class="skip" href="#main">Skip to content</a>');
  });

  it('keeps the session token in an HttpOnly, SameSite=Strict cookie and never in the page', async () => {
    const res = await post('/dashboard/signup', {
      email: 'pages@example.com',
      password: 'correct horse battery',
      next: '/dashboard/nodes',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/dashboard/nodes');
    const cookies = res.headers.getSetCookie();
    const session = cookies.find((c) => c.startsWith('sdo_session='))!;
    expect(session).toMatch(/HttpOnly/);
    expect(session).toMatch(/SameSite=Strict/);
    expect(session).not.toMatch(/Secure/); // plain http on loopback
    const token = /^sdo_session=([^;]+)/.exec(session)![1]!;
    const cookie = cookies.map((c) => c.split(';')[0]).join('; ');
    const page = await fetch(`${api.url}/dashboard/nodes`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('No nodes yet.');
    expect(html).not.toContain(token);
    expect(page.headers.get('cache-control')).toBe('no-store');

    // Over HTTPS (behind a proxy) the cookie is Secure too.
    const secure = await post(
      '/dashboard/login',
      { email: 'pages@example.com', password: 'correct horse battery' },
      { 'x-forwarded-proto': 'https' },
    );
    expect(secure.headers.getSetCookie().find((c) => c.startsWith('sdo_session='))).toMatch(
      /Secure/,
    );
  });

  it('refuses state changes posted from another site, and never redirects off-site after login', async () => {
    const cross = await post('/dashboard/logout', {}, { origin: 'https://evil.example' });
    expect(cross.status).toBe(403);
    const fetchSite = await post(
      '/dashboard/login',
      { email: 'a@b.co', password: 'x' },
      { 'sec-fetch-site': 'cross-site' },
    );
    expect(fetchSite.status).toBe(403);
    const offsite = await post('/dashboard/login', {
      email: 'pages@example.com',
      password: 'correct horse battery',
      next: 'https://evil.example/steal',
    });
    expect(offsite.headers.get('location')).toBe('/dashboard');
  });

  it('answers errors with pages carrying the API message', async () => {
    const bad = await post('/dashboard/login', {
      email: 'pages@example.com',
      password: 'wrong password',
    });
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('email or password is incorrect');
    const short = await post('/dashboard/signup', { email: 'new@example.com', password: 'short' });
    expect(short.status).toBe(400);
    expect(await short.text()).toContain('password: must be at least 8 characters');
    const unknown = await fetch(`${api.url}/dashboard/no/such/page`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toContain('text/html');
    expect(await unknown.text()).toContain('no page at /dashboard/no/such/page');
    const expired = await fetch(`${api.url}/dashboard`, {
      headers: { cookie: 'sdo_session=not-a-token' },
      redirect: 'manual',
    });
    // Back to the same page once signed in again.
    expect(expired.headers.get('location')).toBe('/dashboard/login?next=%2Fdashboard');
    expect(expired.headers.getSetCookie().join(';')).toMatch(/sdo_flash=/);
  });

  it('sends a user in no org from an org page to "create your organization", then back', async () => {
    // Signup always makes an org; a user is left with none when an operator removes their
    // memberships, as here at the store.
    const deps = api.system.api;
    await deps.store.identity.createUser({
      id: 'usr_orgless1',
      email: 'orgless@example.com',
      passwordHash: await deps.auth.hashPassword!('correct horse battery'),
      createdAt: new Date().toISOString(),
    });
    const login = await post('/dashboard/login', {
      email: 'orgless@example.com',
      password: 'correct horse battery',
    });
    expect(login.status).toBe(303);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const nodes = await fetch(`${api.url}/dashboard/nodes`, {
      headers: { cookie },
      redirect: 'manual',
    });
    expect(nodes.status).toBe(303);
    expect(nodes.headers.get('location')).toBe('/dashboard?next=%2Fdashboard%2Fnodes');
    const onboarding = await fetch(`${api.url}${nodes.headers.get('location')}`, {
      headers: { cookie },
    });
    expect(onboarding.status).toBe(200);
    const html = await onboarding.text();
    expect(html).toContain('<h1>Create an organization</h1>');
    expect(html).toContain('<input type="hidden" name="next" value="/dashboard/nodes" />');
    const created = await post(
      '/dashboard/orgs',
      { name: 'Second Start', next: '/dashboard/nodes' },
      { cookie },
    );
    expect(created.status).toBe(303);
    expect(created.headers.get('location')).toBe('/dashboard/nodes');
    const orgCookie = created.headers.getSetCookie().find((c) => c.startsWith('sdo_org='))!;
    const after = await fetch(`${api.url}/dashboard/nodes`, {
      headers: { cookie: `${cookie}; ${orgCookie.split(';')[0]}` },
    });
    expect(after.status).toBe(200);
    expect(await after.text()).toContain('No nodes yet.');
  });

  it('registers a TLS node from the form, shows that it has credentials, never the material', async () => {
    const signup = await post('/dashboard/signup', {
      email: 'nodes@example.com',
      password: 'correct horse battery',
    });
    const cookie = signup.headers
      .getSetCookie()
      .map((c) => c.split(';')[0]!)
      .filter((c) => !c.startsWith('sdo_flash='))
      .join('; ');
    const origin = { origin: api.url, cookie };
    const page = await (await fetch(`${api.url}/dashboard/nodes`, { headers: { cookie } })).text();
    for (const label of [
      'CA certificate',
      'Client certificate',
      'Client key',
      'Private key',
      'Host key',
    ])
      expect(page).toMatch(new RegExp(`<label for="node-[a-z-]+"\\s*>${label}`));

    // Half a TLS section: the API names what is missing, the page shows it, nothing is made.
    const pki = await makeTestPki();
    const half = await post(
      '/dashboard/nodes',
      {
        name: 'remote',
        dockerHost: 'tcp://203.0.113.7:2376',
        address: '203.0.113.7',
        tlsCa: pki.ca,
      },
      origin,
    );
    expect(half.status).toBe(303);
    const shown = await (
      await fetch(`${api.url}/dashboard/nodes`, {
        headers: { cookie: `${cookie}; ${flashOf(half)}` },
      })
    ).text();
    expect(shown).toMatch(/tls\.cert: /);
    expect(shown).toContain('No nodes yet.');

    const ok = await post(
      '/dashboard/nodes',
      {
        name: 'remote',
        dockerHost: 'tcp://203.0.113.7:2376',
        address: '203.0.113.7',
        tlsCa: pki.ca,
        tlsCert: pki.clientCert,
        tlsKey: pki.clientKey,
      },
      origin,
    );
    expect(ok.status).toBe(303);
    const list = await (await fetch(`${api.url}/dashboard/nodes`, { headers: { cookie } })).text();
    expect(list).toContain('<td>TLS client certificate</td>');
    expect(list).not.toContain('PRIVATE KEY');
    expect(list).not.toContain(pki.clientCert.split('\n')[1]!);

    // The node's own page replaces them: TLS fields only, for a tcp:// node.
    const nodeId = /href="\/dashboard\/nodes\/([^"]+)">remote</.exec(list)![1]!;
    const detail = await (
      await fetch(`${api.url}/dashboard/nodes/${nodeId}`, { headers: { cookie } })
    ).text();
    expect(detail).toContain('Replace the credentials');
    expect(detail).toContain('<label for="rotate-tls-ca">CA certificate</label');
    expect(detail).not.toContain('rotate-ssh-key');
    const badKey = await post(
      `/dashboard/nodes/${nodeId}/credentials`,
      { tlsCa: pki.ca, tlsCert: pki.clientCert, tlsKey: 'not a key' },
      { ...origin, referer: `${api.url}/dashboard/nodes/${nodeId}` },
    );
    expect(badKey.headers.get('location')).toBe(`/dashboard/nodes/${nodeId}`);
    const refused = await (
      await fetch(`${api.url}/dashboard/nodes/${nodeId}`, {
        headers: { cookie: `${cookie}; ${flashOf(badKey)}` },
      })
    ).text();
    expect(refused).toMatch(/tls\.key: must be one PEM private key/);
    const rotated = await post(
      `/dashboard/nodes/${nodeId}/credentials`,
      { tlsCa: pki.otherCa, tlsCert: pki.otherClientCert, tlsKey: pki.otherClientKey },
      origin,
    );
    expect(rotated.headers.get('location')).toBe(`/dashboard/nodes/${nodeId}`);
    const after = await (
      await fetch(`${api.url}/dashboard/nodes/${nodeId}`, {
        headers: { cookie: `${cookie}; ${flashOf(rotated)}` },
      })
    ).text();
    expect(after).toContain('Credentials replaced.');
    expect(after).not.toContain(pki.otherClientKey.split('\n')[1]!);
    const token = /sdo_session=([^;]+)/.exec(cookie)![1]!;
    const audit = await (
      await fetch(`${api.url}/api/audit-events?targetId=${nodeId}`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json();
    expect(audit.items.map((e: { action: string }) => e.action)).toEqual([
      'node.created',
      'node.credentials_rotated',
    ]);
  });
});

/** The flash cookie a redirect set, as a cookie header pair. */
function flashOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .findLast((c) => c.startsWith('sdo_flash=') && !c.startsWith('sdo_flash=;'))!
    .split(';')[0]!;
}
