/**
 * Hole 1: a tenant registered the control plane's own Docker. Any org admin could
 * `POST /api/nodes` with the host's socket, a plain tcp:// engine on loopback, or an
 * `address` of 0.0.0.0, and the worker would then run the tenant's image on the control
 * plane's host. Replayed against the real API over HTTP on real PostgreSQL, self-hosted with
 * open signup and in the cloud edition: each attempt is a 400 naming the field and the
 * reason, no node is stored, and the operator (the install's first account, or one named
 * by OPERATOR_EMAILS in the cloud) still registers the local engine.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cognitoUserId } from '../../adapters/modes/cloud.ts';
import { startSelfhostApi } from '../support/api.ts';
import { httpRequester, type Requester } from '../support/http.ts';
import { makeTestPki, type TestPki } from '../support/docker-tls.ts';
import {
  hostedClientId,
  startCloudDashboard,
  type CloudDashboard,
} from '../cloud/hosted-sign-in.ts';

const sshKey = generateKeyPairSync('ed25519').privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;
const ssh = { privateKey: sshKey, insecureIgnoreHostKey: true };

/** The attempts of the review, each with the field the refusal must name and why. */
const attacks = (pki: TestPki) => {
  const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
  return [
    {
      what: "the host's Docker socket",
      body: { dockerHost: 'unix:///var/run/docker.sock', address: '203.0.113.7' },
      field: 'dockerHost',
      reason: 'operator',
    },
    {
      what: 'a plain tcp:// engine on loopback',
      body: { dockerHost: 'tcp://127.0.0.1:2375', address: '203.0.113.7' },
      field: 'dockerHost',
      reason: 'loopback',
    },
    {
      what: 'a TLS engine named localhost',
      body: { dockerHost: 'tcp://localhost:2376', address: '203.0.113.7', tls },
      field: 'dockerHost',
      reason: 'loopback',
    },
    {
      what: 'loopback written as a number',
      body: { dockerHost: 'tcp://2130706433:2376', address: '203.0.113.7', tls },
      field: 'dockerHost',
      reason: 'non-standard form',
    },
    {
      what: 'SSH to this machine',
      body: { dockerHost: 'ssh://root@127.0.0.1', address: '203.0.113.7', ssh },
      field: 'dockerHost',
      reason: 'loopback',
    },
    {
      what: 'the metadata service as the engine',
      body: { dockerHost: 'tcp://169.254.169.254:2376', address: '203.0.113.7', tls },
      field: 'dockerHost',
      reason: 'link-local',
    },
    {
      what: 'address 0.0.0.0 (every interface)',
      body: { dockerHost: 'tcp://203.0.113.7:2376', address: '0.0.0.0', tls },
      field: 'address',
      reason: 'unspecified',
    },
    {
      what: 'address on loopback',
      body: { dockerHost: 'tcp://203.0.113.7:2376', address: '127.0.0.1', tls },
      field: 'address',
      reason: 'loopback',
    },
    {
      what: 'address at the metadata service',
      body: { dockerHost: 'tcp://203.0.113.7:2376', address: '169.254.169.254', tls },
      field: 'address',
      reason: 'link-local',
    },
    {
      what: 'address as a name a resolver may point anywhere',
      body: { dockerHost: 'tcp://203.0.113.7:2376', address: 'localhost', tls },
      field: 'address',
      reason: 'loopback',
    },
    {
      what: 'a private engine and address (open signup, and the cloud)',
      body: { dockerHost: 'tcp://10.0.0.5:2376', address: '10.0.0.5', tls },
      field: 'address',
      reason: 'private',
    },
  ];
};

async function expectRefused(
  req: Requester,
  token: string,
  attack: ReturnType<typeof attacks>[number],
): Promise<void> {
  const r = await req('POST', '/api/nodes', {
    token,
    body: { name: 'grab', ...attack.body },
  });
  expect(r.status, `${attack.what}: ${r.text}`).toBe(400);
  expect(r.body.error.code, attack.what).toBe('node_address_refused');
  const issue = (r.body.error.details.issues as { field: string; message: string }[]).find(
    (i) => i.field === attack.field,
  );
  expect(issue?.message, attack.what).toContain(attack.reason);
}

describe('hole 1: a tenant cannot register the control plane host (self-hosted, open signup)', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let pki: TestPki;
  let operator: string;
  let tenant: string;
  let tenantKey: string;

  beforeAll(async () => {
    pki = await makeTestPki();
    api = await startSelfhostApi({ signupMode: 'open' });
    req = api.request;
    const signup = async (email: string) => {
      const s = await req('POST', '/api/auth/local/signup', {
        body: { email, password: 'correct horse battery' },
      });
      expect(s.status, s.text).toBe(201);
      return s.body as { token: string; org: { id: string } };
    };
    operator = (await signup('installer@example.com')).token;
    const t = await signup('stranger@example.com');
    tenant = t.token;
    const key = await req('POST', `/api/orgs/${t.org.id}/api-keys`, {
      token: tenant,
      body: { name: 'ci', role: 'admin' },
    });
    expect(key.status, key.text).toBe(201);
    tenantKey = key.body.key;
  }, 60_000);

  afterAll(async () => {
    await api?.close();
  });

  it('refuses every attempt at the host, by session and by admin key, storing nothing', async () => {
    for (const attack of attacks(pki)) {
      await expectRefused(req, tenant, attack);
      await expectRefused(req, tenantKey, attack);
    }
    const listed = await req('GET', '/api/nodes', { token: tenant });
    expect(listed.body.items).toEqual([]);
  });

  it('lets the tenant register a remote TLS engine at a public address', async () => {
    const tls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey };
    const r = await req('POST', '/api/nodes', {
      token: tenant,
      body: { name: 'remote', dockerHost: 'tcp://203.0.113.7:2376', address: '203.0.113.7', tls },
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body.operatorRegistered).toBe(false);
  });

  it("lets the install's first account register the local engine, never on every interface", async () => {
    const r = await req('POST', '/api/nodes', {
      token: operator,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body.operatorRegistered).toBe(true);
    for (const address of ['0.0.0.0', '169.254.169.254']) {
      const bad = await req('POST', '/api/nodes', {
        token: operator,
        body: { name: 'wild', dockerHost: 'unix:///var/run/docker.sock', address },
      });
      expect(bad.status, bad.text).toBe(400);
      expect(bad.body.error.details.issues[0].field).toBe('address');
    }
  });

  it("does not give the operator's API keys operator power", async () => {
    const orgs = await req('GET', '/api/nodes', { token: operator });
    expect(orgs.status).toBe(200);
    const me = await req('POST', '/api/auth/local/login', {
      body: { email: 'installer@example.com', password: 'correct horse battery' },
    });
    const orgId = (await req('POST', '/api/orgs', { token: me.body.token, body: { name: 'ops' } }))
      .body.id as string;
    const key = await req('POST', `/api/orgs/${orgId}/api-keys`, {
      token: me.body.token,
      headers: { 'x-org-id': orgId },
      body: { name: 'ops-ci', role: 'admin' },
    });
    expect(key.status, key.text).toBe(201);
    const r = await req('POST', '/api/nodes', {
      token: key.body.key,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(r.status, r.text).toBe(400);
    expect(r.body.error.code).toBe('node_address_refused');
  });
});

describe('hole 1 in the cloud edition: tenants only, operators by configuration', () => {
  let app: CloudDashboard;
  let req: Requester;
  let pki: TestPki;

  /** A Cognito user with an org of its own, and its access token. */
  async function cognitoUser(sub: string, email: string): Promise<string> {
    await app.system.api.store.identity.createUser({
      id: cognitoUserId(sub),
      email,
      passwordHash: '!',
      createdAt: new Date().toISOString(),
    });
    const token = await app.jwks.sign({
      sub,
      email,
      iat: Math.floor(Date.now() / 1000),
      ttlSeconds: 600,
      clientId: hostedClientId,
    });
    const org = await req('POST', '/api/orgs', { token, body: { name: `${sub} org` } });
    expect(org.status, org.text).toBe(201);
    return token;
  }

  beforeAll(async () => {
    pki = await makeTestPki();
    app = await startCloudDashboard({ OPERATOR_EMAILS: 'Platform-Ops@example.com' });
    req = httpRequester(app.url);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  it("refuses the host to every tenant, the platform's first user too", async () => {
    // The first account of a cloud install is a tenant like any other.
    const first = await cognitoUser('first-sub', 'first@example.com');
    for (const attack of attacks(pki)) await expectRefused(req, first, attack);
    const listed = await req('GET', '/api/nodes', { token: first });
    expect(listed.body.items).toEqual([]);
  });

  it('lets an operator named by OPERATOR_EMAILS register a local engine', async () => {
    const ops = await cognitoUser('ops-sub', 'platform-ops@example.com');
    const r = await req('POST', '/api/nodes', {
      token: ops,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(r.status, r.text).toBe(201);
    expect(r.body.operatorRegistered).toBe(true);
  });
});
