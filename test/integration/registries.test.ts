/**
 * Images from a private registry, for real: Distribution's registry on loopback with
 * htpasswd auth, the real Docker Engine pulling from it, the self-hosted control plane with
 * its workers and a real Caddy. Without the org's credential the pull is refused and the
 * release says what to add; with it the image is pulled; `:latest` moved in the registry is
 * pulled again by the next deploy, while the node's copy of a fixed tag is used as it is.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel, testImages } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { startRegistry, type TestRegistry } from '../support/registry.ts';
import { available } from '../support/services.ts';

const ready =
  (await available('docker')) && (await available('caddy')) && (await available('registry'));
const exec = promisify(execFile);

describe.skipIf(!ready)('deploying images from a private registry', () => {
  let caddy: TestCaddy;
  let registry: TestRegistry;
  let api: ApiHarness & { url: string };
  let req: Requester;
  let token: string;
  let orgId: string;
  let serviceId: string;
  let host: string;
  let image: string;
  const repo = `sdo-test-web-${Math.random().toString(36).slice(2, 8)}`;

  /** Takes the registry's images off the node, so only a pull can bring them back. */
  const forgetLocal = (ref: string) => exec('docker', ['rmi', '-f', ref]).catch(() => undefined);

  async function deploy(ref: string) {
    const res = await req('POST', '/api/releases', { token, body: { serviceId, image: ref } });
    expect(res.status, res.text).toBe(202);
    const id = res.body.id as string;
    const end = Date.now() + 60_000;
    for (;;) {
      const r = await req('GET', `/api/releases/${id}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) {
        const logs = await req('GET', `/api/releases/${id}/logs`, { token });
        return { ...r.body, log: logs.text };
      }
      if (Date.now() > end) throw new Error(`release ${id} still ${r.body.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const version = () =>
    new Promise<string>((resolve, reject) => {
      const r = http.get(
        {
          host: '127.0.0.1',
          port: caddy.httpPort,
          path: '/version',
          headers: { host },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body.trim()));
        },
      );
      r.on('error', reject);
    });

  beforeAll(async () => {
    await ensureTestImages();
    registry = await startRegistry();
    image = `${registry.server}/${repo}:latest`;
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 1, migrationTimeoutMs: 10_000 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'registry@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body
      .id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const created = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        drainSeconds: 0,
      },
    });
    expect(created.status, created.text).toBe(201);
    serviceId = created.body.id;
    host = created.body.hosts[0].host;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (registry) {
      for (const tag of ['latest', 'v1']) await forgetLocal(`${registry.server}/${repo}:${tag}`);
      await registry.stop();
    }
  });

  it('without the credential the pull is refused, and the release says what to add', async () => {
    await registry.push(testImages.app, `${repo}:latest`);
    await forgetLocal(image);
    const r = await deploy(image);
    expect(r.status).toBe('failed');
    expect(r.error).toMatch(/no basic auth credentials|unauthorized|authentication required/);
    expect(r.error).toContain(`the org has no credential for ${registry.server}`);
    expect(r.error).toContain('selfdevop registries add');
  });

  it('with the credential it pulls, and the password appears nowhere', async () => {
    const added = await req('POST', '/api/registries', {
      token,
      body: { server: registry.server, username: registry.username, password: registry.password },
    });
    expect(added.status, added.text).toBe(201);
    await forgetLocal(image);
    const r = await deploy(image);
    expect(r.status, r.error).toBe('completed');
    expect(r.log).toContain(`with the org's credential for ${registry.server}, user ci`);
    expect(await version()).toBe('v1');
    const everything = [
      r.log,
      (await req('GET', '/api/registries', { token })).text,
      (await req('GET', '/api/audit-events?limit=200', { token })).text,
      api.logLines().join('\n'),
    ].join('\n');
    expect(everything).not.toContain(registry.password);
  });

  it(':latest moved in the registry is pulled again by the next deploy; a fixed tag the node has is not', async () => {
    // The node still has the old :latest; the registry now has v2 under the same tag.
    const v2 = await registry.push(testImages.appV2, `${repo}:latest`);
    await exec('docker', ['tag', testImages.app, image]);
    const moved = await deploy(image);
    expect(moved.status, moved.error).toBe('completed');
    expect(moved.log).toContain(`pulling it again from ${registry.server}, :latest may have moved`);
    expect(moved.imageDigest).toBe(v2);
    expect(await version()).toBe('v2');

    // A fixed tag: the node's copy is used even though the registry's differs.
    const fixed = `${registry.server}/${repo}:v1`;
    await registry.push(testImages.app, `${repo}:v1`);
    await exec('docker', ['tag', testImages.appV2, fixed]);
    const pinned = await deploy(fixed);
    expect(pinned.status, pinned.error).toBe('completed');
    expect(pinned.log).not.toContain('pulling it again');
    expect(await version()).toBe('v2');
  });

  it('a moved :latest the registry will not give fails the release instead of running a stale copy', async () => {
    const list = await req('GET', '/api/registries', { token });
    for (const r of list.body.items as { id: string }[])
      await req('DELETE', `/api/registries/${r.id}`, { token });
    const r = await deploy(image);
    expect(r.status).toBe('failed');
    expect(r.error).toContain('could not be pulled again from its registry');
    expect(await version()).toBe('v2');
  });
});
