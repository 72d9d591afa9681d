/**
 * DockerRuntime against a remote-style engine: mutual TLS on a loopback port (a proxy that
 * requires a client certificate from a CA made for this run, then pipes to the machine's
 * socket), as `dockerd --tlsverify` on port 2376 presents itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime, fromDockerTarget } from '../../adapters/runtime/docker.ts';
import type { DockerTarget } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import {
  ensureTestImages,
  httpGet,
  removeContainersByLabel,
  testImages,
  testRun,
} from '../support/docker.ts';
import {
  makeTestPki,
  startDockerTlsProxy,
  type DockerTlsProxy,
  type TestPki,
} from '../support/docker-tls.ts';
import { available } from '../support/services.ts';

const hasDocker = await available('docker');

describe('ssh credentials of a target', () => {
  const hostKeyBlob = Buffer.from('the server host key blob');
  const target = (hostKey: string | null): DockerTarget => ({
    dockerHost: 'ssh://deploy@node-4:2222',
    ssh: { privateKey: 'PRIVATE KEY PEM', hostKey },
  });
  type SshOptions = {
    privateKey?: string;
    agent?: string;
    hostVerifier?: (key: Buffer) => boolean;
  };
  const sshOptionsOf = (t: DockerTarget) =>
    (
      fromDockerTarget(t, { sshOptions: { privateKey: 'process-wide' } }) as {
        sshOptions: SshOptions;
      }
    ).sshOptions;

  it("uses the node's own key, not the process's agent or default key", () => {
    const o = sshOptionsOf(target(`ssh-ed25519 ${hostKeyBlob.toString('base64')}`));
    expect(o.privateKey).toBe('PRIVATE KEY PEM');
    expect(o.agent).toBeUndefined();
  });

  it('accepts only the pinned host key', () => {
    const verify = sshOptionsOf(
      target(`ssh-ed25519 ${hostKeyBlob.toString('base64')}`),
    ).hostVerifier!;
    expect(verify(hostKeyBlob)).toBe(true);
    expect(verify(Buffer.from('another host key blob'))).toBe(false);
  });

  it('checks no host key only for a node registered without pinning', () => {
    expect(sshOptionsOf(target(null)).hostVerifier).toBeUndefined();
  });
});

describe.skipIf(!hasDocker)('DockerRuntime over mutual TLS', () => {
  let pki: TestPki;
  let proxy: DockerTlsProxy;
  const tlsTarget = (): DockerTarget => ({
    dockerHost: proxy.dockerHost,
    tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
  });

  beforeAll(async () => {
    pki = await makeTestPki();
    proxy = await startDockerTlsProxy(pki);
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
  });

  describe('contract', () => {
    runContainerRuntimeContract({
      images: testImages,
      make: async () => {
        await ensureTestImages();
        const run = testRun(import.meta.url);
        return {
          runtime: new DockerRuntime(),
          target: tlsTarget(),
          unreachable: [{ dockerHost: 'tcp://127.0.0.1:1', tls: tlsTarget().tls }],
          httpGet: (published, path) => httpGet(published, path),
          labels: run.labels,
          name: run.name,
          cleanup: async () => {
            await removeContainersByLabel(run.labels);
          },
        };
      },
    });
  });

  it('really went through the TLS proxy', async () => {
    const before = proxy.accepted;
    await new DockerRuntime().ping(tlsTarget());
    expect(proxy.accepted).toBe(before + 1);
  });

  it('fails at once, naming TLS and the CA, when the engine certificate is not signed by the node CA', async () => {
    const target = { ...tlsTarget(), tls: { ...tlsTarget().tls!, ca: pki.otherCa } };
    const error = await new DockerRuntime().ping(target).then(
      () => null,
      (e: Error & { kind?: string }) => e,
    );
    expect(error?.message).toMatch(
      /^docker ping on tcp:\/\/127\.0\.0\.1:\d+ failed: TLS handshake failed: the engine's certificate does not verify against the node's CA/,
    );
    // Not Unavailable: a retry would meet the same certificate.
    expect(error?.kind).toBeUndefined();
  });

  it('names the client certificate when the engine hangs up on one it does not trust', async () => {
    const refusedBefore = proxy.refused.length;
    const target = {
      ...tlsTarget(),
      tls: { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey },
    };
    await expect(new DockerRuntime().ping(target)).rejects.toThrow(
      /docker is unavailable: tcp:\/\/127\.0\.0\.1:\d+: .*over TLS: an engine that refuses the client certificate/,
    );
    expect(proxy.refused.length).toBeGreaterThan(refusedBefore);
  });

  it('uses rotated material at once, with the same runtime', async () => {
    const runtime = new DockerRuntime();
    const bad = {
      ...tlsTarget(),
      tls: { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey },
    };
    await expect(runtime.ping(bad)).rejects.toThrow(/TLS/);
    await runtime.ping(tlsTarget());
  });
});
