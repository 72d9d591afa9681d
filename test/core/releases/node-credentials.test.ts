import { describe, expect, it } from 'vitest';
import type { ContainerRuntime, DockerTarget } from '../../../core/ports.ts';
import { getRelease, rollbackRelease } from '../../../core/releases/engine.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { nodeCredentialContext } from '../../../core/nodes/credentials.ts';
import { deployer, dockerHost, orgId, setup, type Harness } from './harness.ts';

const nodeId = 'node_000001';
const tls = { ca: 'CA PEM', cert: 'CLIENT CERT PEM', key: 'CLIENT KEY PEM' };
const routeId = 'sdo-svc_0abc12-env_000001';

/** Every target the engine handed to the runtime, in order. */
function recordTargets(h: Harness): DockerTarget[] {
  const seen: DockerTarget[] = [];
  const inner = h.runtime;
  h.deps.runtime = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (first: DockerTarget, ...rest: unknown[]) => {
        seen.push(first);
        return (value as (...a: unknown[]) => unknown).call(target, first, ...rest);
      };
    },
  }) as ContainerRuntime;
  return seen;
}

async function setTls(h: Harness, sealedUnder: string, value = JSON.stringify(tls)) {
  const sealedTls = await h.vault.seal(value, sealedUnder);
  await h.repos((r) =>
    r.nodes.setCredentials(nodeId, {
      sealedTls,
      sealedSsh: null,
      credentialsUpdatedAt: '2026-01-01T00:00:00.000Z',
    }),
  );
}

const running = (h: Harness) =>
  h.runtime
    .containers(dockerHost)
    .filter((c) => c.state === 'running')
    .map((c) => c.spec.name);

describe('a release on a node with credentials', () => {
  it('hands the opened TLS material to every engine call', async () => {
    const h = await setup();
    await setTls(h, nodeCredentialContext(orgId, nodeId, 'tls'));
    const targets = recordTargets(h);
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status, v1.error ?? '').toBe('completed');
    expect(targets.length).toBeGreaterThan(2);
    expect(
      targets.every(
        (t) => t.dockerHost === dockerHost && JSON.stringify(t.tls) === JSON.stringify(tls),
      ),
    ).toBe(true);
  });

  it('fails the release, naming the node and the fix, when its credentials do not open; traffic stays', async () => {
    const h = await setup();
    await setTls(h, nodeCredentialContext(orgId, nodeId, 'tls'));
    const v1 = await h.deploy('shop/web:1');
    const routeBefore = await h.edge.get(routeId);
    // Sealed for another node: a row copied across nodes must not open.
    await setTls(h, nodeCredentialContext(orgId, 'node_000002', 'tls'));
    const v2 = await h.deploy('shop/web:2');

    expect(v2.status).toBe('failed');
    expect(v2.error).toMatch(
      /^the tls credentials of node node-1 could not be opened \(.+\); set them again with PATCH \/api\/nodes\/node_000001$/,
    );
    const view = await getRelease(h.deps, deployer, v2.id);
    // Not retried: credentials that do not open now will not open on the next delivery.
    expect(view.steps.filter((s) => s.status === 'failed').map((s) => [s.name, s.attempt])).toEqual(
      [['build', 1]],
    );
    expect(await h.edge.get(routeId)).toEqual(routeBefore);
    expect(running(h)).toEqual([containerName(v1)]);
    expect(JSON.stringify(view)).not.toContain('CLIENT KEY PEM');
  });

  it('fails likewise when the opened value is not the stored shape, without showing it', async () => {
    const h = await setup();
    await setTls(h, nodeCredentialContext(orgId, nodeId, 'tls'), 'CLIENT KEY PEM but no JSON');
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('failed');
    expect(v1.error).toContain('the opened value is not the stored shape');
    expect(v1.error).not.toContain('CLIENT KEY PEM');
  });

  it('refuses a rollback (409) and leaves retirement to retry while the credentials do not open', async () => {
    const h = await setup({ warmSeconds: 600 });
    await setTls(h, nodeCredentialContext(orgId, nodeId, 'tls'));
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    expect(v2.status).toBe('completed');
    await setTls(h, nodeCredentialContext(orgId, nodeId, 'ssh'));

    await expect(rollbackRelease(h.deps, deployer, { releaseId: v2.id })).rejects.toMatchObject({
      kind: 'conflict',
      code: 'node_credentials_unreadable',
    });
    expect((await h.release(v2.id)).status).toBe('completed');

    h.clock.advance(601_000);
    await expect(h.retireDue()).rejects.toThrow(
      /the tls credentials of node node-1 could not be opened/,
    );
    expect(running(h)).toContain(containerName(v1));
  });
});
