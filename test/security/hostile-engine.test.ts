/**
 * Hole 2: the node's engine decided where the edge and the health probe connect. The
 * upstream and the probe URL were the `HostIp:HostPort` of the engine's inspect answer, so a
 * hostile engine aimed Caddy and the worker at link-local metadata or the control plane's own
 * ports. Here a hostile engine (a proxy in front of the real one that lies about bindings)
 * answers with such addresses; the release must fail naming the engine's answer, with no
 * probe sent there (a canary standing for a control-plane port counts every connection) and
 * no upstream there, in Caddy or in the edge's upstream table.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseStatus } from '../../core/models.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { startHostileEngine, type PortLie } from '../support/hostile-engine.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)('hole 2: a hostile engine does not aim the edge or the probe', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let canary: http.Server;
  let canaryPort: number;
  let canaryHits = 0;
  const orgs: string[] = [];
  const engines: { close(): Promise<void> }[] = [];
  const emails = ['hostile-1@example.com', 'hostile-2@example.com', 'hostile-3@example.com'];

  beforeAll(async () => {
    await ensureTestImages();
    // Stands for one of the control plane's own ports: any connection to it is a failure.
    canary = http.createServer((_, res) => {
      canaryHits++;
      res.end('ok');
    });
    canary.on('connection', () => canaryHits++);
    await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
    canaryPort = (canary.address() as AddressInfo).port;
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 1 },
      // Each case is its own org on this machine's engine, which only operators register.
      operatorEmails: emails,
    });
    req = api.request;
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    for (const e of engines) await e.close();
    await new Promise((r) => canary?.close(r));
    for (const orgId of orgs) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  /** An org whose one node is a hostile engine telling `lie`; deploys once, returns the end. */
  async function deployThrough(
    email: string,
    lie: (canaryPort: number) => PortLie,
    asTenantNode = false,
  ) {
    const engine = await startHostileEngine(lie(canaryPort));
    engines.push(engine);
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email, password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const token = s.body.token as string;
    orgs.push(s.body.org.id);
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'hostile', dockerHost: engine.dockerHost, address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    if (asTenantNode) {
      // A node registered before operators existed: nobody vouched for its loopback address.
      const db = new pg.Client({ connectionString: api.databaseUrl });
      await db.connect();
      try {
        await db.query('update nodes set operator_registered = false where id = $1', [
          node.body.id,
        ]);
      } finally {
        await db.end();
      }
    }
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'p' } })).body.id;
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 1, deadlineMs: 5_000, timeoutMs: 1_000 },
        warmSeconds: 0,
        drainSeconds: 0,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const r = await req('POST', '/api/releases', {
      token,
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:v1' },
    });
    expect(r.status, r.text).toBe(202);
    const done: ReleaseStatus[] = ['completed', 'failed', 'rolled_back'];
    const end = Date.now() + 60_000;
    for (;;) {
      const got = await req('GET', `/api/releases/${r.body.id}`, { token });
      if (done.includes(got.body.status)) {
        const logs = await req('GET', `/api/releases/${r.body.id}/logs`, { token });
        return { release: got.body, logs: JSON.stringify(logs.body), engine, token };
      }
      if (Date.now() > end) throw new Error(`release still ${got.body.status}`);
      await sleep(100);
    }
  }

  /** Every upstream the edge holds: Caddy's whole config and the dynamic-upstream table. */
  async function edgeUpstreams(): Promise<string> {
    const config = await caddy.admin.read('/config/');
    const db = new pg.Client({ connectionString: api.databaseUrl });
    await db.connect();
    try {
      const rows = await db.query('select label, upstreams from edge_upstreams');
      return JSON.stringify({ config: config?.value ?? null, upstreams: rows.rows });
    } finally {
      await db.end();
    }
  }

  it('refuses a binding the engine claims on the metadata address', async () => {
    const { release, logs, engine } = await deployThrough(emails[0]!, () => ({
      hostIp: '169.254.169.254',
    }));
    expect(engine.lies()).toBeGreaterThan(0);
    expect(release.status).toBe('failed');
    expect(release.error).toContain('169.254.169.254');
    expect(release.error).toContain("not on the node's address 127.0.0.1");
    // Nothing probed or routed: the release never reached its health check.
    expect(release.steps.map((s: { name: string }) => s.name)).not.toContain('health_check');
    expect(logs).not.toContain('probing');
    expect(await edgeUpstreams()).not.toContain('169.254');
  }, 90_000);

  it('refuses a binding on every interface at a control-plane port: no probe reaches it', async () => {
    const before = canaryHits;
    const { release, engine } = await deployThrough(emails[1]!, (port) => ({
      hostIp: '0.0.0.0',
      hostPort: String(port),
    }));
    expect(engine.lies()).toBeGreaterThan(0);
    expect(release.status).toBe('failed');
    expect(release.error).toContain(`0.0.0.0:${canaryPort}`);
    expect(release.steps.map((s: { name: string }) => s.name)).not.toContain('health_check');
    expect(canaryHits).toBe(before);
    expect(await edgeUpstreams()).not.toContain(String(canaryPort));
  }, 90_000);

  it("refuses loopback on a node nobody vouched for, even where the engine's answer matches", async () => {
    const before = canaryHits;
    const { release, engine } = await deployThrough(
      emails[2]!,
      (port) => ({ hostIp: '127.0.0.1', hostPort: String(port) }),
      true,
    );
    expect(engine.lies()).toBeGreaterThan(0);
    expect(release.status).toBe('failed');
    expect(release.error).toContain('loopback');
    expect(release.steps.map((s: { name: string }) => s.name)).not.toContain('health_check');
    expect(canaryHits).toBe(before);
    expect(await edgeUpstreams()).not.toContain(String(canaryPort));
  }, 90_000);
});
