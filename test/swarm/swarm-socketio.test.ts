/**
 * Issue 17's "sticky sessions work as on standalone nodes" and "WebSockets kept", for real:
 * the Swarm twin of test/integration/socketio.test.ts. The self-hosted control plane with its
 * workers, behind a real Caddy reading dynamic upstreams, registers the three-manager Swarm
 * of scripts/swarm-up.sh 7 8 9 as a node, creates a Redis data service there (a container on
 * the manager's engine, on the project's attachable overlay) and a web service of three
 * sticky replicas of `selfdevop-test/socketio` linked to it: three one-task Swarm services
 * spread over the members, reached by the edge at each member's host-mode port (no mesh).
 * Clients through the edge, each pinned to its task by the sticky cookie, hear a broadcast
 * sent from any one task over long-polling and WebSocket (the Redis adapter through the
 * link, across members). Then a blue/green deploy while a WebSocket is open: as on
 * standalone nodes the switch reloads nothing, so the socket stays on its old task through
 * the warm window; the retirement waits for the edge's in-flight count (the socket) up to
 * `drainSeconds`, then stops the task, whose app closes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stickyCookieName } from '../../core/edge/caddy-route.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureDataImages, ensureSocketioImage, testImages } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';
import {
  broadcastFrom,
  clientPerReplica,
  connectViaEdge,
  deploySocketioApp,
  getViaEdge,
  type EdgeClient,
  type SocketioDeployment,
  untilUpgraded,
} from '../support/socketio.ts';
import {
  allMembersReady,
  copyImage,
  dk,
  managerHost,
  memberAddresses,
  memberEngines,
  removeOrgFromSwarm,
  swarmReady,
} from '../support/swarm.ts';

const ready = (await swarmReady('the Swarm Socket.IO suite')) && (await available('caddy'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Short, so the deploy test sees the old set retire; long enough to assert the socket outlives the switch. */
const warmSeconds = 5;
const drainSeconds = 3;

/** A replica of a release as GET /api/releases/{id} answers it. */
interface Replica {
  index: number;
  containerId: string;
  upstream: string;
  health: string;
}

/** Where Swarm runs a replica's task: its member and its container's hostname (the app's name). */
interface Placed {
  member: string;
  hostname: string;
  upstream: string;
}

/**
 * Reads, from the manager and then the member's own engine, where the running task of each
 * replica's one-task service is and the hostname its container answers with.
 */
async function placementOf(replicas: Replica[]): Promise<Placed[]> {
  return Promise.all(
    replicas.map(async (r) => {
      const task = (
        await dk(
          managerHost,
          'service',
          'ps',
          '-q',
          '--no-trunc',
          '-f',
          'desired-state=running',
          r.containerId,
        )
      ).split('\n')[0]!;
      const [nodeId, containerId] = (
        await dk(
          managerHost,
          'inspect',
          '-f',
          '{{.NodeID}} {{.Status.ContainerStatus.ContainerID}}',
          task,
        )
      ).split(' ');
      const member = await dk(
        managerHost,
        'node',
        'inspect',
        '-f',
        '{{.Description.Hostname}}',
        nodeId!,
      );
      const engine = memberEngines[member];
      if (!engine) throw new Error(`replica ${r.index} runs on ${member}, not a member 7-9`);
      const hostname = await dk(engine, 'inspect', '-f', '{{.Config.Hostname}}', containerId!);
      return { member, hostname, upstream: r.upstream };
    }),
  );
}

describe.skipIf(!ready)(
  'Socket.IO across three sticky replicas on a Swarm, through a Redis link',
  { timeout: 180_000 },
  () => {
    let caddy: TestCaddy;
    let api: Awaited<ReturnType<typeof startSelfhostApi>>;
    let req: Requester;
    let auth: { token: string; headers: Record<string, string> };
    let orgId = '';
    let projectId: string;
    let app: SocketioDeployment;
    let placed: Placed[] = [];
    const volumes: string[] = [];
    const networks = new Set<string>();
    const clients: EdgeClient[] = [];

    beforeAll(async () => {
      await Promise.all([ensureSocketioImage(), ensureDataImages()]);
      // Redis runs on the manager only; the app's tasks may run on any member.
      await copyImage('selfdevop/redis:7', managerHost);
      for (const engine of Object.values(memberEngines))
        await copyImage(testImages.socketio, engine);
      await allMembersReady();

      caddy = await startCaddy();
      api = await startSelfhostApi({
        workers: true,
        caddyAdminUrl: caddy.adminUrl,
        caddyServer: caddy.serverName,
        release: { maxStepAttempts: 2, migrationTimeoutMs: 20_000, dataReadyAttempts: 90 },
      });
      req = api.request;
      const s = await req('POST', '/api/auth/local/signup', {
        body: { email: 'swarm-socketio@example.com', password: 'correct horse battery' },
      });
      expect(s.status, s.text).toBe(201);
      orgId = s.body.org.id;
      auth = { token: s.body.token, headers: { 'x-org-id': orgId } };
      const project = await req('POST', '/api/projects', { ...auth, body: { name: 'chat' } });
      expect(project.status, project.text).toBe(201);
      projectId = project.body.id;
      const node = await req('POST', '/api/nodes', {
        ...auth,
        body: { name: 'swarm-7-9', kind: 'swarm', dockerHost: managerHost, address: '10.213.0.17' },
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
        service: {
          // A task on a loaded two-core machine starts slower than a container.
          health: { intervalMs: 300, successes: 2, deadlineMs: 90_000, timeoutMs: 3_000 },
          warmSeconds,
          drainSeconds,
        },
      });
      expect(app.release.status, app.release.error).toBe('completed');
      placed = await placementOf(app.release.replicaSet.replicas as Replica[]);
    }, 900_000);

    afterAll(async () => {
      for (const c of clients) c.socket.close();
      await api?.close();
      await caddy?.stop();
      if (orgId) await removeOrgFromSwarm(orgId, { volumes, networks: [...networks] });
    });

    it('runs the three replicas as tasks on three members, linked to Redis on the overlay', async () => {
      const replicas = app.release.replicaSet.replicas as Replica[];
      expect(replicas).toHaveLength(3);
      expect(app.link.envName).toBe('REDIS_URL');
      // Three tasks, spread by selfdevop over the three members (one member's loss never
      // takes every replica), each reached at its member's address.
      expect(new Set(placed.map((p) => p.hostname)).size).toBe(3);
      expect(new Set(placed.map((p) => p.member)), JSON.stringify(placed)).toEqual(
        new Set(Object.keys(memberEngines)),
      );
      for (const p of placed) expect(memberAddresses).toContain(p.upstream.split(':')[0]);
      // Redis is a container on the manager's engine, on the project's attachable overlay.
      expect(await dk(managerHost, 'inspect', '-f', '{{.State.Status}}', app.redis.host)).toBe(
        'running',
      );
      expect(
        await dk(
          managerHost,
          'network',
          'inspect',
          '-f',
          '{{.Driver}} {{.Attachable}}',
          app.redis.network,
        ),
      ).toBe('overlay true');
    });

    it('pins a client to one task with the sticky cookie; without it requests spread over the members', async () => {
      const hostnames = placed.map((p) => p.hostname);
      const first = await getViaEdge(caddy.httpPort, app.service.host, '/hostname');
      expect(first.status, first.body).toBe(200);
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
      // Each task can be pinned: a cookie per task keeps every one of its requests there.
      const byTask = new Map<string, string>();
      for (let i = 0; i < 30 && byTask.size < 3; i++) {
        const r = await getViaEdge(caddy.httpPort, app.service.host, '/hostname');
        const c = r.setCookie.find((x) => x.startsWith(`${stickyCookieName}=`));
        if (c && !byTask.has(r.body)) byTask.set(r.body, c.split(';')[0]!);
      }
      // Without a cookie Caddy places by the cookie policy's fallback, the service's balancing
      // (round robin): the three tasks within a few picks, 30 at most.
      expect(new Set(byTask.keys())).toEqual(new Set(hostnames));
      for (const [hostname, c] of byTask) {
        const held = await Promise.all(
          Array.from({ length: 5 }, () =>
            getViaEdge(caddy.httpPort, app.service.host, '/hostname', c),
          ),
        );
        expect(new Set(held.map((r) => r.body)), `pinned to ${hostname}`).toEqual(
          new Set([hostname]),
        );
      }
    });

    it('a broadcast from a long-polling client on any member reaches the clients on every member', async () => {
      // Long-polling makes every message a new HTTP request through the edge, which engine.io
      // answers only on the task holding the session: the sticky cookie must hold throughout.
      const polling = await clientPerReplica(caddy.httpPort, app.service.host, 3, {
        transports: ['polling'],
      });
      clients.push(...polling);
      expect(new Set(polling.map((c) => c.hostname))).toEqual(
        new Set(placed.map((p) => p.hostname)),
      );
      for (let sender = 0; sender < polling.length; sender++) {
        const result = await broadcastFrom(polling, sender);
        expect(result.from).toBe(polling[sender]!.hostname);
        expect(result.reachedAll, JSON.stringify(result)).toBe(true);
      }
      for (const c of polling) expect(c.socket.io.engine.transport.name).toBe('polling');
    }, 120_000);

    it('and over WebSocket after the upgrade, as a browser connects', async () => {
      const upgraded = await clientPerReplica(caddy.httpPort, app.service.host, 3);
      clients.push(...upgraded);
      await untilUpgraded(upgraded);
      for (let sender = 0; sender < upgraded.length; sender++) {
        const result = await broadcastFrom(upgraded, sender);
        expect(result.reachedAll, JSON.stringify(result)).toBe(true);
        expect(Object.keys(result.receivedMs).sort()).toEqual(placed.map((p) => p.hostname).sort());
      }
    }, 120_000);

    it('keeps an open WebSocket on its old task through a blue/green deploy until that task retires', async () => {
      for (const c of clients.splice(0)) c.socket.close();
      const blue = new Map(placed.map((p) => [p.hostname, p]));
      // One WebSocket, upgraded, on one of the serving (blue) tasks.
      const held = await connectViaEdge(caddy.httpPort, app.service.host);
      clients.push(held);
      await untilUpgraded([held]);
      expect(blue.has(held.hostname)).toBe(true);
      let closed: { at: number; reason: string } | null = null;
      held.socket.on('disconnect', (reason: string) => (closed = { at: Date.now(), reason }));
      // A browser's cookie pinned to a blue task, to see where it goes once blue left.
      const pinnedBlue = await getViaEdge(caddy.httpPort, app.service.host, '/hostname');
      const blueCookie = pinnedBlue.setCookie
        .find((c) => c.startsWith(`${stickyCookieName}=`))!
        .split(';')[0]!;

      const queued = await req('POST', '/api/releases', {
        ...auth,
        body: { serviceId: app.service.id, image: testImages.socketio },
      });
      expect(queued.status, queued.text).toBe(202);
      let green = queued.body;
      for (
        let i = 0;
        i < 900 && !['completed', 'failed', 'rolled_back'].includes(green.status);
        i++
      ) {
        await sleep(200);
        green = (await req('GET', `/api/releases/${queued.body.id}`, auth)).body;
      }
      const completedAt = Date.now();
      expect(green.status, green.error).toBe('completed');
      const greenPlaced = await placementOf(green.replicaSet.replicas as Replica[]);
      expect(greenPlaced.some((p) => blue.has(p.hostname))).toBe(false);

      // The switch reloaded nothing: the socket is open, on its blue task, and its messages
      // still fan out through Redis to clients of the green tasks, and back.
      expect(closed).toBeNull();
      expect(held.socket.connected).toBe(true);
      const fresh = await clientPerReplica(caddy.httpPort, app.service.host, 3);
      clients.push(...fresh);
      expect(new Set(fresh.map((c) => c.hostname))).toEqual(
        new Set(greenPlaced.map((p) => p.hostname)),
      );
      const mixed = [held, ...fresh];
      const fromBlue = await broadcastFrom(mixed, 0);
      expect(fromBlue.from).toBe(held.hostname);
      expect(fromBlue.reachedAll, JSON.stringify(fromBlue)).toBe(true);
      const fromGreen = await broadcastFrom(mixed, 1);
      expect(fromGreen.reachedAll, JSON.stringify(fromGreen)).toBe(true);
      // A cookie pinned to a blue task, no longer in the edge's set, is placed on a green
      // task like a new client and pinned there again.
      const moved = await getViaEdge(caddy.httpPort, app.service.host, '/hostname', blueCookie);
      expect(moved.status).toBe(200);
      expect(greenPlaced.map((p) => p.hostname)).toContain(moved.body);
      const repinned = moved.setCookie.find((c) => c.startsWith(`${stickyCookieName}=`));
      expect(repinned, `set-cookie: ${moved.setCookie.join(' | ')}`).toBeDefined();
      expect(
        (await getViaEdge(caddy.httpPort, app.service.host, '/hostname', repinned!.split(';')[0]))
          .body,
      ).toBe(moved.body);

      // The retirement (after warmSeconds) waits for the edge to finish with blue: the socket
      // is in flight there, so it waits out drainSeconds, then stops the task with that
      // grace, and the app closes its clients on SIGTERM. Bounded: warm, drain, grace, and
      // Swarm's stop on a loaded machine.
      for (let i = 0; i < 600 && !closed; i++) await sleep(200);
      const end = closed as { at: number; reason: string } | null;
      expect(end, 'the held socket closes once its task retires').not.toBeNull();
      expect(end!.at - completedAt).toBeGreaterThanOrEqual((warmSeconds - 1) * 1000);
      // Closed by the server, not cut at the edge or timed out.
      expect(['transport close', 'io server disconnect']).toContain(end!.reason);
      // The retirement's log line comes once Swarm removed the stopped services (bounded).
      let retired: string | undefined;
      let lines: string[] = [];
      for (let i = 0; i < 300 && !retired; i++) {
        if (i > 0) await sleep(200);
        const logs = await req('GET', `/api/releases/${app.release.id}/logs?limit=1000`, auth);
        lines = (logs.body.items as { line: string }[]).map((l) => l.line);
        retired = lines.find((l) => l.includes('stopped (grace'));
      }
      const heldUpstream = blue.get(held.hostname)!.upstream;
      expect(retired, lines.slice(-5).join('\n')).toContain(
        `edge still had requests in flight after the ${drainSeconds} s drain (1 at ${heldUpstream})`,
      );

      // The green tasks serve on: their clients still fan out to each other.
      expect((await broadcastFrom(fresh, 2)).reachedAll).toBe(true);
    }, 300_000);
  },
);
