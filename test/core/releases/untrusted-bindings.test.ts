/**
 * The release engine builds upstreams and probe URLs from the node's registered address and
 * the port the engine bound where it was asked (issue 12, hole 2). An engine that answers
 * another address, or a node nobody vouched for at a loopback or private address, fails
 * the release before any probe or route; a lying answer about a warm container sends a
 * rollback down the redeploy path instead of probing or routing there.
 */
import { describe, expect, it } from 'vitest';
import { rollbackRelease } from '../../../core/releases/engine.ts';
import type { ContainerInfo, PublishedPort } from '../../../core/ports.ts';
import { deployer, setup, type Harness } from './harness.ts';
import { aNode } from './builders.ts';

/** Makes the fake engine answer `hostIp` (and `hostPort`) for every binding from now on. */
function lieAbout(h: Harness, methods: ('start' | 'inspect')[], lie: Partial<PublishedPort>): void {
  const tell = (info: ContainerInfo | null) =>
    info && { ...info, ports: (info.ports ?? []).map((p) => ({ ...p, ...lie })) };
  const runtime = h.runtime as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const m of methods) {
    const honest = runtime[m]!.bind(h.runtime);
    runtime[m] = async (...args) => tell((await honest(...args)) as ContainerInfo | null);
  }
}

describe('bindings the engine answers', () => {
  it('fails the release on a binding off the requested address, probing and routing nothing', async () => {
    const h = await setup();
    lieAbout(h, ['start'], { hostIp: '169.254.169.254' });
    const r = await h.deploy('shop/web:1');
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(
      /^node node-1's engine published container \S+ port 8080 on 169\.254\.169\.254:40001, not on the node's address 127\.0\.0\.1: refused, nothing routed$/,
    );
    expect(h.probe.calls).toEqual([]);
    expect(h.edge.changes).toEqual([]);
    expect(r.upstream).toBeNull();
  });

  it('fails the release on a port that is not 1..65535', async () => {
    const h = await setup();
    lieAbout(h, ['start'], { hostPort: '2019/tcp' });
    const r = await h.deploy('shop/web:1');
    expect(r.status).toBe('failed');
    expect(r.error).toContain('host port "2019/tcp"');
    expect(h.probe.calls).toEqual([]);
  });

  it('rolls back by redeploying when the warm container is claimed elsewhere', async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    const probed = h.probe.calls.length;
    lieAbout(h, ['inspect'], { hostIp: '0.0.0.0', hostPort: '3000' });
    const result = await rollbackRelease(h.deps, deployer, { releaseId: v2.id });
    expect(result.path).toBe('redeploy');
    expect(h.probe.calls.slice(probed).map((c) => c.url)).toEqual([]);
    expect(JSON.stringify(h.edge.changes)).not.toContain(':3000');
    expect(result.redeploy).toMatchObject({ image: v1.imageDigest });
  });
});

describe("a node's address as a target", () => {
  const withNode = async (
    node: Parameters<typeof aNode>[0],
    config: { tenantPrivateNodes?: boolean } = {},
  ) => {
    const h = await setup({}, config);
    await h.repos(async (r) => {
      // The harness's own node is the first in id order; this one replaces it.
      await r.nodes.insert(aNode({ id: 'node_000000', name: 'node-0', ...node }));
    });
    expect((await h.repos((r) => r.nodes.list({ limit: 10 }))).items[0]?.id).toBe('node_000000');
    return h;
  };

  it('refuses loopback on a node nobody vouched for (registered before operators)', async () => {
    const h = await withNode({ operatorRegistered: false });
    const r = await h.deploy('shop/web:1');
    expect(r.status).toBe('failed');
    expect(r.error).toContain('127.0.0.1 is a loopback address');
    expect(h.probe.calls).toEqual([]);
  });

  it("takes a tenant's private address only where the install allows it", async () => {
    const refused = await withNode({ operatorRegistered: false, address: '10.0.0.5' });
    const r = await refused.deploy('shop/web:1');
    expect(r.status).toBe('failed');
    expect(r.error).toContain('10.0.0.5 is a private address');
    const allowed = await withNode(
      { operatorRegistered: false, address: '10.0.0.5' },
      { tenantPrivateNodes: true },
    );
    const ok = await allowed.deploy('shop/web:1');
    expect(ok).toMatchObject({ status: 'completed', upstream: '10.0.0.5:40001' });
    expect(allowed.probe.calls[0]?.url).toBe('http://10.0.0.5:40001/health');
  });

  it('never takes link-local, even from an operator', async () => {
    const h = await withNode({ operatorRegistered: true, address: '169.254.169.254' });
    const r = await h.deploy('shop/web:1');
    expect(r.status).toBe('failed');
    expect(r.error).toContain('link-local');
  });
});
