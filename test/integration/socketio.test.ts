/**
 * Issue 15's Socket.IO fan-out, for real: the self-hosted control plane with its workers
 * creates a Redis data service, a web service of three sticky replicas of
 * `selfdevop-test/socketio` linked to it, and deploys it behind a real Caddy reading dynamic
 * upstreams. Clients through the edge, each pinned to its replica by the sticky cookie, hear
 * a broadcast sent from any one replica: the Redis adapter works through selfdevop's link.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stickyCookieName } from '../../core/edge/caddy-route.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  ensureDataImages,
  ensureSocketioImage,
  removeContainersByLabel,
  testImages,
} from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import {
  broadcastFrom,
  clientPerReplica,
  deploySocketioApp,
  getViaEdge,
  type EdgeClient,
  type SocketioDeployment,
  untilUpgraded,
} from '../support/socketio.ts';

const ready = (await available('docker')) && (await available('caddy'));
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('Socket.IO across three replicas through a Redis link', () => {
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let auth: { token: string; headers: Record<string, string> };
  let orgId = '';
  let projectId: string;
  let app: SocketioDeployment;
  /** Each replica's container hostname, which the app says hello with. */
  let hostnames: string[] = [];
  const volumes: string[] = [];
  const networks = new Set<string>();
  const clients: EdgeClient[] = [];

  beforeAll(async () => {
    await Promise.all([ensureSocketioImage(), ensureDataImages()]);
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 20_000, dataReadyAttempts: 60 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'socketio@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    auth = { token: s.body.token, headers: { 'x-org-id': orgId } };
    projectId = (await req('POST', '/api/projects', { ...auth, body: { name: 'chat' } })).body.id;
    const node = await req('POST', '/api/nodes', {
      ...auth,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    app = await deploySocketioApp(req, auth, {
      projectId,
      name: 'chat',
      image: testImages.socketio,
      replicas: 3,
      onCreated: (redis) => {
        volumes.push(redis.volume);
        networks.add(redis.network);
      },
    });
    expect(app.release.status, app.release.error).toBe('completed');
    hostnames = await Promise.all(
      app.release.replicaSet.replicas.map((r: { containerId: string }) =>
        docker('inspect', '-f', '{{.Config.Hostname}}', r.containerId),
      ),
    );
  }, 600_000);

  afterAll(async () => {
    for (const c of clients) c.socket.close();
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    for (const v of volumes) await docker('volume', 'rm', '-f', v).catch(() => undefined);
    for (const n of networks) await docker('network', 'rm', n).catch(() => undefined);
  });

  it('runs three replicas, each given the link as REDIS_URL on the project network', async () => {
    const replicas = app.release.replicaSet.replicas as { containerId: string; health: string }[];
    expect(replicas).toHaveLength(3);
    expect(new Set(replicas.map((r) => r.containerId)).size).toBe(3);
    expect(new Set(hostnames).size).toBe(3);
    expect(app.link.envName).toBe('REDIS_URL');
    for (const r of replicas) {
      const env = (
        await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', r.containerId)
      ).split('\n');
      const url = env.find((l) => l.startsWith('REDIS_URL='))?.slice('REDIS_URL='.length);
      expect(url).toMatch(new RegExp(`^redis://:[A-Za-z0-9]+@${app.redis.host}:6379/0$`));
      expect(
        await docker(
          'inspect',
          '-f',
          '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}',
          r.containerId,
        ),
      ).toBe(app.redis.network);
    }
  });

  it('pins a client to one replica with the sticky cookie; without it requests spread', async () => {
    const first = await getViaEdge(caddy.httpPort, app.service.host, '/hostname');
    expect(first.status).toBe(200);
    expect(hostnames).toContain(first.body);
    const cookie = first.setCookie.find((c) => c.startsWith(`${stickyCookieName}=`));
    expect(cookie, `set-cookie: ${first.setCookie.join(' | ')}`).toBeDefined();
    const pinned = cookie!.split(';')[0]!;
    const again = await Promise.all(
      Array.from({ length: 10 }, () =>
        getViaEdge(caddy.httpPort, app.service.host, '/hostname', pinned),
      ),
    );
    expect(new Set(again.map((r) => r.body))).toEqual(new Set([first.body]));
    // Without a cookie Caddy picks at random: 30 picks miss a replica with p ≈ 2e-5.
    const spread = new Set<string>();
    for (let i = 0; i < 30 && spread.size < 3; i++)
      spread.add((await getViaEdge(caddy.httpPort, app.service.host, '/hostname')).body);
    expect(spread).toEqual(new Set(hostnames));
  });

  it('a broadcast from a long-polling client on any replica reaches the clients on every replica', async () => {
    // Long-polling makes every message a new HTTP request through the edge, which engine.io
    // answers only on the replica holding the session: the sticky cookie must hold throughout.
    const polling = await clientPerReplica(caddy.httpPort, app.service.host, 3, {
      transports: ['polling'],
    });
    clients.push(...polling);
    expect(new Set(polling.map((c) => c.hostname))).toEqual(new Set(hostnames));
    for (let sender = 0; sender < polling.length; sender++) {
      const result = await broadcastFrom(polling, sender);
      expect(result.from).toBe(polling[sender]!.hostname);
      expect(result.receivedMs, `sent from ${result.from}`).toEqual(
        Object.fromEntries(hostnames.map((h) => [h, expect.any(Number)])),
      );
      expect(result.reachedAll).toBe(true);
    }
    for (const c of polling) expect(c.socket.io.engine.transport.name).toBe('polling');
  }, 120_000);

  it('and over WebSocket after the upgrade, as a browser connects', async () => {
    const upgraded = await clientPerReplica(caddy.httpPort, app.service.host, 3);
    clients.push(...upgraded);
    await untilUpgraded(upgraded);
    const result = await broadcastFrom(upgraded, 2);
    expect(result.reachedAll, JSON.stringify(result)).toBe(true);
    expect(Object.keys(result.receivedMs).sort()).toEqual([...hostnames].sort());
  }, 120_000);

  it('fails the release of the app without its Redis link at the health gate', async () => {
    const svc = await req('POST', '/api/services', {
      ...auth,
      body: {
        projectId,
        name: 'unlinked',
        image: testImages.socketio,
        containerPort: 8080,
        healthcheckPath: '/health',
        sticky: true,
        health: { intervalMs: 200, successes: 2, deadlineMs: 4_000, timeoutMs: 1_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const queued = await req('POST', '/api/releases', {
      ...auth,
      body: { serviceId: svc.body.id, image: testImages.socketio },
    });
    expect(queued.status, queued.text).toBe(202);
    let r = queued.body;
    for (let i = 0; i < 300 && !['completed', 'failed', 'rolled_back'].includes(r.status); i++) {
      await new Promise((res) => setTimeout(res, 200));
      r = (await req('GET', `/api/releases/${queued.body.id}`, auth)).body;
    }
    expect(r.status).toBe('failed');
    expect(r.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toContain(
      'health_check:failed',
    );
    // The linked service is untouched and still fans out.
    const still = await clientPerReplica(caddy.httpPort, app.service.host, 3);
    clients.push(...still);
    expect((await broadcastFrom(still, 1)).reachedAll).toBe(true);
  }, 120_000);
});
