/**
 * DockerRuntime against an ssh:// node: a real sshd on a loopback port with keys made for
 * this run, through which dockerode runs `docker system dial-stdio` on "the node" (this
 * machine's docker CLI and engine).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { DockerTarget } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import { ensureTestImages, httpGet, removeContainersByLabel, testImages, testRun } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { startSshd, type TestSshd } from '../support/sshd.ts';

const ready = (await available('docker')) && (await available('sshd'));

describe.skipIf(!ready)('DockerRuntime over SSH', () => {
  let sshd: TestSshd;
  const sshTarget = (ssh: Partial<NonNullable<DockerTarget['ssh']>> = {}): DockerTarget => ({
    dockerHost: sshd.dockerHost,
    ssh: { privateKey: sshd.clientKey, hostKey: sshd.hostKey, ...ssh },
  });

  beforeAll(async () => {
    sshd = await startSshd();
  }, 60_000);
  afterAll(async () => {
    await sshd?.stop();
  });

  describe('contract', () => {
    runContainerRuntimeContract({
      images: testImages,
      make: async () => {
        await ensureTestImages();
        const run = testRun(import.meta.url);
        return {
          runtime: new DockerRuntime(),
          target: sshTarget(),
          unreachable: [{ dockerHost: 'ssh://nobody@127.0.0.1:1', ssh: { privateKey: sshd.clientKey, hostKey: null } }],
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

  it('reaches the engine without host-key pinning only when the node was registered so', async () => {
    await new DockerRuntime().ping(sshTarget({ hostKey: null }));
  });

  it('refuses a server whose host key is not the pinned one, at once and naming SSH', async () => {
    const error = await new DockerRuntime().ping(sshTarget({ hostKey: sshd.otherHostKey })).then(
      () => null,
      (e: Error & { kind?: string }) => e,
    );
    expect(error?.message).toMatch(/^docker ping on ssh:\/\/\S+ failed: SSH host key verification failed: the server's host key is not the one pinned/);
    expect(error?.kind).toBeUndefined();
  });

  it('names SSH authentication when the server does not accept the key', async () => {
    await expect(new DockerRuntime().ping(sshTarget({ privateKey: sshd.strangerKey }))).rejects.toThrow(
      /failed: SSH authentication failed: the server does not accept the node's private key/,
    );
  });
});
