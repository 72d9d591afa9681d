/**
 * A tenant's remote Docker host over mutual TLS, end to end: the node is registered through
 * the API with its PEM material, the worker opens it from the vault and deploys through a
 * TLS endpoint that demands a client certificate (a stand-in for `dockerd --tlsverify` on
 * port 2376), and traffic is checked through a real Caddy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeTestPki,
  startDockerTlsProxy,
  type DockerTlsProxy,
  type TestPki,
} from '../support/docker-tls.ts';
import { available } from '../support/services.ts';
import { startRemoteNodeScenario, type RemoteNodeScenario } from './remote-node.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('deploying to a node reached over TCP with TLS client certificates', () => {
  let pki: TestPki;
  let proxy: DockerTlsProxy;
  let s: RemoteNodeScenario;

  const goodTls = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });

  beforeAll(async () => {
    pki = await makeTestPki();
    proxy = await startDockerTlsProxy(pki);
    s = await startRemoteNodeScenario({
      name: 'tls-node',
      dockerHost: proxy.dockerHost,
      credentials: { tls: goodTls() },
      deployTimeoutMs: 40_000,
    });
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    await proxy?.stop();
  });
  it('deploys through the TLS endpoint and serves the release', async () => {
    const before = proxy.accepted;
    const v1 = await s.deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error).toBe('completed');
    expect(proxy.accepted).toBeGreaterThan(before);
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it('fails a release naming TLS when the client certificate is not one the engine trusts; v1 keeps serving', async () => {
    await s.rotate({ tls: { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey } });
    const refusedBefore = proxy.refused.length;
    const bad = await s.deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(
      /^docker unreachable: tcp:\/\/127\.0\.0\.1:\d+: .*over TLS: an engine that refuses the client certificate/,
    );
    expect(proxy.refused.length).toBeGreaterThan(refusedBefore);
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it("fails at once naming TLS when the engine's certificate does not verify against the node's CA; v1 keeps serving", async () => {
    await s.rotate({ tls: { ca: pki.otherCa, cert: pki.clientCert, key: pki.clientKey } });
    const bad = await s.deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(
      /TLS handshake failed: the engine's certificate does not verify against the node's CA/,
    );
    expect(bad.steps.find((s: { name: string }) => s.name === 'build')).toMatchObject({
      status: 'failed',
      attempt: 1,
    });
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v1' });
  }, 60_000);

  it('deploys again once the credentials are rotated back, and never logs the key material', async () => {
    await s.rotate({ tls: goodTls() });
    const v2 = await s.deploy('selfdevop-test/app:v2');
    expect(v2.status, v2.error).toBe('completed');
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v2' });
    const audit = await s.req('GET', `/api/audit-events?targetId=${s.nodeId}`, { token: s.token });
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
      'node.created',
      'node.credentials_rotated',
      'node.credentials_rotated',
      'node.credentials_rotated',
    ]);
    const logs = s.api.logLines().join('\n');
    for (const pem of [pki.clientKey, pki.otherClientKey])
      expect(logs).not.toContain(pem.split('\n')[1]);
  }, 60_000);
});
