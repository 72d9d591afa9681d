/**
 * A tenant's remote Docker host over SSH, end to end: the node is registered through the
 * API with its private key and pinned host key, the worker opens them from the vault and
 * deploys through a real sshd on a loopback port (`docker system dial-stdio` on the far
 * side), and traffic is checked through a real Caddy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../support/services.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';
import { startRemoteNodeScenario, type RemoteNodeScenario } from './remote-node.ts';

const ready =
  (await available('docker')) && (await available('caddy')) && (await available('sshd'));

describe.skipIf(!ready)('deploying to a node reached over SSH', () => {
  let sshd: TestSshd;
  let s: RemoteNodeScenario;

  const goodSsh = () => ({ privateKey: sshd.clientKey, hostKey: sshd.hostKey });

  beforeAll(async () => {
    sshd = await startSshd();
    s = await startRemoteNodeScenario({
      name: 'ssh-node',
      dockerHost: sshd.dockerHost,
      credentials: { ssh: goodSsh() },
      deployTimeoutMs: 60_000,
    });
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    await sshd?.stop();
  });

  it('deploys through sshd and serves the release', async () => {
    const v1 = await s.deploy('selfdevop-test/app:v1');
    expect(v1.status, v1.error).toBe('completed');
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('fails a release at once naming SSH when the server presents another host key; v1 keeps serving', async () => {
    await s.rotate({ ssh: { privateKey: sshd.clientKey, hostKey: sshd.otherHostKey } });
    const bad = await s.deploy('selfdevop-test/app:v2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(
      /SSH host key verification failed: the server's host key is not the one pinned for this node/,
    );
    expect(bad.steps.find((s: { name: string }) => s.name === 'build')).toMatchObject({
      status: 'failed',
      attempt: 1,
    });
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v1' });
  }, 90_000);

  it('deploys again once the credentials are rotated back, and never logs the private key', async () => {
    await s.rotate({ ssh: goodSsh() });
    const v2 = await s.deploy('selfdevop-test/app:v2');
    expect(v2.status, v2.error).toBe('completed');
    expect(await s.viaCaddy()).toEqual({ status: 200, body: 'v2' });
    const logs = s.api.logLines().join('\n');
    expect(logs).not.toContain(sshd.clientKey.split('\n')[1]);
  }, 90_000);
});
