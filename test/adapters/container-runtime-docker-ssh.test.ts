/**
 * DockerRuntime against an ssh:// node: a real sshd on a loopback port with keys made for
 * this run, through which dockerode runs `docker system dial-stdio` on "the node" (this
 * machine's docker CLI and engine).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { DockerTarget } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import {
  ensureTestImages,
  httpGet,
  removeContainersByLabel,
  testImages,
  testRun,
} from '../support/docker.ts';
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
        const runtime = new DockerRuntime();
        return {
          runtime,
          target: sshTarget(),
          unreachable: [
            {
              dockerHost: 'ssh://nobody@127.0.0.1:1',
              ssh: { privateKey: sshd.clientKey, hostKey: null },
            },
          ],
          httpGet: (published, path) => httpGet(published, path),
          labels: run.labels,
          name: run.name,
          cleanup: async () => {
            await removeContainersByLabel(run.labels);
            runtime.close();
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
    expect(error?.message).toMatch(
      /^docker ping on ssh:\/\/\S+ failed: SSH host key verification failed: the server's host key is not the one pinned/,
    );
    expect(error?.kind).toBeUndefined();
  });

  it('names SSH authentication when the server does not accept the key', async () => {
    await expect(
      new DockerRuntime().ping(sshTarget({ privateKey: sshd.strangerKey })),
    ).rejects.toThrow(
      /failed: SSH authentication failed: the server does not accept the node's private key/,
    );
  });
});

/** Polls the sshd's open connections until they satisfy check; returns the last reading. */
async function connectionsUntil(
  node: TestSshd,
  check: (ports: number[]) => boolean,
  deadlineMs = 5000,
): Promise<number[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const ports = await node.connections();
    if (check(ports) || Date.now() > end) return ports;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!ready)('SSH connections to a node', () => {
  // Servers of their own: only this block's runtimes connect to them, so counts are exact.
  const nodes: TestSshd[] = [];
  const runtimes: DockerRuntime[] = [];
  const targetOf = (
    node: TestSshd,
    ssh: Partial<NonNullable<DockerTarget['ssh']>> = {},
  ): DockerTarget => ({
    dockerHost: node.dockerHost,
    ssh: { privateKey: node.clientKey, hostKey: node.hostKey, ...ssh },
  });
  const runtime = (options: ConstructorParameters<typeof DockerRuntime>[0] = {}) => {
    const r = new DockerRuntime(options);
    runtimes.push(r);
    return r;
  };

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) nodes.push(await startSshd());
  }, 60_000);
  afterEach(async () => {
    for (const r of runtimes.splice(0)) r.close();
    for (const node of nodes)
      expect(await connectionsUntil(node, (p) => p.length === 0)).toEqual([]);
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('carries many calls over one SSH connection, and closes it once idle', async () => {
    const [node] = nodes as [TestSshd];
    const r = runtime({ sshIdleTimeoutMs: 300 });
    await Promise.all([
      r.ping(targetOf(node)),
      r.ping(targetOf(node)),
      r.list(targetOf(node), { 'selfdevop.none': 'x' }),
    ]);
    const first = await node.connections();
    expect(first).toHaveLength(1);
    for (let i = 0; i < 5; i++) await r.ping(targetOf(node));
    expect(await node.connections()).toEqual(first);

    expect(await connectionsUntil(node, (p) => p.length === 0)).toEqual([]);
    await r.ping(targetOf(node));
    const again = await node.connections();
    expect(again).toHaveLength(1);
    expect(again).not.toEqual(first);
  }, 30_000);

  it('opens a new connection when the shared one drops', async () => {
    const [node] = nodes as [TestSshd];
    const r = runtime();
    await r.ping(targetOf(node));
    const [before] = await node.connections();
    await node.dropConnections();
    // Once the server side is gone (a request racing the drop fails as Unavailable, retried
    // by its step like any other connection reset), the next call opens a new connection.
    expect(await connectionsUntil(node, (p) => p.length === 0)).toEqual([]);
    await r.ping(targetOf(node));
    const after = await connectionsUntil(node, (p) => p.length === 1 && p[0] !== before);
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before);
  }, 30_000);

  it('closes the connection made with the old credentials once they are rotated', async () => {
    const [, node] = nodes as [TestSshd, TestSshd];
    const r = runtime(); // the default idle timeout (30 s) outlasts this test
    await r.ping(targetOf(node));
    const old = await node.connections();
    expect(old).toHaveLength(1);
    // Other credentials for the same dockerHost (this sshd also takes an unpinned client).
    await r.ping(targetOf(node, { hostKey: null }));
    const now = await connectionsUntil(node, (p) => p.length === 1 && p[0] !== old[0]);
    expect(now).toHaveLength(1);
    expect(now).not.toEqual(old);
  }, 30_000);

  it('lets a call in flight on the old credentials finish before closing their connection', async () => {
    const [, node] = nodes as [TestSshd, TestSshd];
    await ensureTestImages();
    const run = testRun(import.meta.url);
    const r = runtime();
    const name = run.name('rotate-logs');
    try {
      await r.start(targetOf(node), {
        name,
        image: testImages.app,
        env: {},
        labels: run.labels,
        containerPort: 8080,
        publishIp: '127.0.0.1',
        restartPolicy: 'no',
      });
      const controller = new AbortController();
      let listening = false;
      const following = r.followLogs(
        targetOf(node),
        name,
        (line) => void (listening ||= line.includes('listening')),
        controller.signal,
      );
      const until = Date.now() + 10_000;
      while (!listening && Date.now() < until) await new Promise((x) => setTimeout(x, 50));
      expect(listening).toBe(true);
      const [old] = await node.connections();

      await r.ping(targetOf(node, { hostKey: null }));
      // The logs still flow over the old connection, beside the new one.
      expect(await node.connections()).toContain(old);
      expect(await node.connections()).toHaveLength(2);

      controller.abort();
      await following;
      const now = await connectionsUntil(node, (p) => p.length === 1 && !p.includes(old!));
      expect(now).toHaveLength(1);
      expect(now).not.toContain(old);
    } finally {
      await removeContainersByLabel(run.labels);
    }
  }, 30_000);

  it('keeps at most maxClients, closing the least recently used', async () => {
    const [a, b, c] = nodes as [TestSshd, TestSshd, TestSshd];
    const r = runtime({ maxClients: 2 });
    await r.ping(targetOf(a));
    await r.ping(targetOf(b));
    await r.ping(targetOf(a)); // a is now the most recently used
    const aPorts = await a.connections();
    await r.ping(targetOf(c)); // evicts b
    expect(await connectionsUntil(b, (p) => p.length === 0)).toEqual([]);
    expect(await a.connections()).toEqual(aPorts);
    expect(await c.connections()).toHaveLength(1);
    // An evicted node is simply reached again, with a new client.
    await r.ping(targetOf(b));
    expect(await b.connections()).toHaveLength(1);
  }, 30_000);
});
