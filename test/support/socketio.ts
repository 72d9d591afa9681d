/**
 * Socket.IO clients of `selfdevop-test/socketio` through the edge, for the cross-replica
 * broadcast test and `bench:data`: each client keeps its own cookie jar (engine.io-client's,
 * `withCredentials`), so Caddy's sticky cookie pins it to the replica that took its handshake,
 * as a browser's would.
 */
import http from 'node:http';
import { io, type Socket } from 'socket.io-client';
import type { ApiResponse, Requester } from './http.ts';

/** Connects every name to 127.0.0.1, so a client can use a route's real host name. */
const loopbackAgent = new http.Agent({
  keepAlive: true,
  lookup: ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) =>
    options.all
      ? cb(null, [{ address: '127.0.0.1', family: 4 }])
      : cb(null, '127.0.0.1', 4)) as unknown as http.AgentOptions['lookup'],
});

export interface EdgeClient {
  socket: Socket;
  /** The replica (its container's hostname) that said hello. */
  hostname: string;
}

export type Transports = ('polling' | 'websocket')[];

/** One client through the edge at `host`, once its replica said hello (bounded by timeoutMs). */
export function connectViaEdge(
  edgePort: number,
  host: string,
  options: { transports?: Transports; timeoutMs?: number } = {},
): Promise<EdgeClient> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const socket = io(`http://${host}:${edgePort}`, {
    forceNew: true,
    reconnection: false,
    withCredentials: true,
    agent: loopbackAgent as unknown as string, // the Node client passes it to http and ws
    timeout: timeoutMs,
    ...(options.transports ? { transports: options.transports } : {}),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no hello from ${host} through the edge within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('hello', (hello: { hostname: string }) => {
      clearTimeout(timer);
      resolve({ socket, hostname: hello.hostname });
    });
    socket.once('connect_error', (e: Error) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`Socket.IO through the edge at ${host}: ${e.message}`));
    });
  });
}

/**
 * Clients until `replicas` distinct replicas each hold one; extra clients on a replica already
 * held are closed. Caddy places a client without the cookie at random (the cookie policy's
 * default fallback), so this is bounded at 10 × replicas connections: for 3 replicas the
 * chance that 30 random picks miss one is 3 × (2/3)^30 ≈ 2e-5.
 */
export async function clientPerReplica(
  edgePort: number,
  host: string,
  replicas: number,
  options: { transports?: Transports } = {},
): Promise<EdgeClient[]> {
  const byReplica = new Map<string, EdgeClient>();
  try {
    for (let i = 0; i < 10 * replicas && byReplica.size < replicas; i++) {
      const client = await connectViaEdge(edgePort, host, options);
      if (byReplica.has(client.hostname)) client.socket.close();
      else byReplica.set(client.hostname, client);
    }
  } catch (e) {
    for (const c of byReplica.values()) c.socket.close();
    throw e;
  }
  if (byReplica.size < replicas) {
    for (const c of byReplica.values()) c.socket.close();
    throw new Error(
      `${10 * replicas} clients reached only ${byReplica.size} of ${replicas} replicas (${[...byReplica.keys()].join(', ')})`,
    );
  }
  return [...byReplica.values()];
}

/** Waits (at most timeoutMs) until every client's engine has upgraded to WebSocket. */
export function untilUpgraded(clients: EdgeClient[], timeoutMs = 10_000): Promise<unknown> {
  return Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          const engine = c.socket.io.engine;
          if (engine.transport.name === 'websocket') return resolve();
          const timer = setTimeout(
            () => reject(new Error(`${c.hostname}: no WebSocket upgrade within ${timeoutMs} ms`)),
            timeoutMs,
          );
          engine.once('upgrade', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
}

export interface BroadcastResult {
  /** The replica of the client that sent it. */
  from: string;
  /** Per receiving client's replica: ms from emit to receipt, or null when it never came. */
  receivedMs: Record<string, number | null>;
  /** True when every client, on every replica, received it. */
  reachedAll: boolean;
}

/**
 * `clients[senderIndex]` emits `broadcast` with a fresh nonce; every client (the sender too)
 * waits for it to come back with that nonce, each at most timeoutMs.
 */
export async function broadcastFrom(
  clients: EdgeClient[],
  senderIndex = 0,
  timeoutMs = 5_000,
): Promise<BroadcastResult> {
  const sender = clients[senderIndex]!;
  const nonce = `b-${process.hrtime.bigint()}-${Math.random().toString(36).slice(2)}`;
  const started = performance.now();
  const waits = clients.map(
    (c) =>
      new Promise<[string, number | null]>((resolve) => {
        const onMessage = (m: { from: string; msg: string }) => {
          if (m.msg !== nonce) return;
          done(performance.now() - started);
        };
        const timer = setTimeout(() => done(null), timeoutMs);
        function done(ms: number | null) {
          clearTimeout(timer);
          c.socket.off('broadcast', onMessage);
          resolve([c.hostname, ms === null ? null : Math.round(ms * 10) / 10]);
        }
        c.socket.on('broadcast', onMessage);
      }),
  );
  sender.socket.emit('broadcast', nonce);
  const receivedMs = Object.fromEntries(await Promise.all(waits));
  return {
    from: sender.hostname,
    receivedMs,
    reachedAll: Object.values(receivedMs).every((ms) => ms !== null),
  };
}

/** An HTTP GET through the edge at `host` (Host header), with an optional Cookie. */
export function getViaEdge(
  edgePort: number,
  host: string,
  path: string,
  cookie?: string,
): Promise<{ status: number; body: string; setCookie: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port: edgePort,
        path,
        headers: { host, ...(cookie ? { cookie } : {}) },
        agent: false,
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: body.trim(),
            setCookie: res.headers['set-cookie'] ?? [],
          }),
        );
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`GET ${host}${path} through the edge timed out`)),
    );
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectStatus(what: string, res: ApiResponse, status: number): void {
  if (res.status !== status)
    throw new Error(`${what}: expected ${status}, got ${res.status} ${res.text}`);
}

export interface SocketioDeployment {
  redis: { id: string; host: string; network: string; volume: string };
  service: { id: string; host: string };
  link: { id: string; envName: string };
  /** The completed release, as GET /api/releases/{id} answers it. */
  // The API's JSON; callers read what they assert on.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  release: any;
}

/**
 * Through selfdevop's API, as a user would: a Redis data service, a web service running
 * `image` with `replicas` replicas and sticky sessions, the link between them (REDIS_URL),
 * and one release, awaited until it leaves the pipeline. `onCreated` sees the data service
 * as soon as it exists (so the caller can remove its volume and network even on failure).
 * Throws naming the step that went wrong; every wait is bounded.
 */
export async function deploySocketioApp(
  req: Requester,
  auth: { token: string; headers: Record<string, string> },
  input: {
    projectId: string;
    name: string;
    image: string;
    replicas: number;
    onCreated?: (redis: SocketioDeployment['redis']) => void;
    /** Fields of the web service that differ from this test's defaults (health, warmSeconds…). */
    service?: Record<string, unknown>;
  },
): Promise<SocketioDeployment> {
  const created = await req('POST', '/api/data-services', {
    ...auth,
    body: { projectId: input.projectId, name: `${input.name}-redis`, engine: 'redis' },
  });
  expectStatus('creating the Redis data service', created, 202);
  input.onCreated?.(created.body);
  let redis = created.body;
  for (let i = 0; i < 300 && redis.status === 'provisioning'; i++) {
    await sleep(400);
    redis = (await req('GET', `/api/data-services/${created.body.id}`, auth)).body;
  }
  if (redis.status !== 'ready')
    throw new Error(`the Redis data service is ${redis.status}: ${redis.error}`);

  const svc = await req('POST', '/api/services', {
    ...auth,
    body: {
      projectId: input.projectId,
      name: input.name,
      image: input.image,
      containerPort: 8080,
      healthcheckPath: '/health',
      replicas: input.replicas,
      sticky: true,
      health: { intervalMs: 200, successes: 2, deadlineMs: 30_000, timeoutMs: 2_000 },
      ...input.service,
    },
  });
  expectStatus('creating the web service', svc, 201);
  const link = await req('POST', `/api/data-services/${redis.id}/links`, {
    ...auth,
    body: { serviceId: svc.body.id },
  });
  expectStatus('linking Redis to the service', link, 201);

  const queued = await req('POST', '/api/releases', {
    ...auth,
    body: { serviceId: svc.body.id, image: input.image },
  });
  expectStatus('creating the release', queued, 202);
  let release = queued.body;
  for (
    let i = 0;
    i < 600 && !['completed', 'failed', 'rolled_back'].includes(release.status);
    i++
  ) {
    await sleep(200);
    release = (await req('GET', `/api/releases/${queued.body.id}`, auth)).body;
  }
  return {
    redis: {
      id: redis.id,
      host: redis.host,
      network: redis.network,
      volume: redis.volume,
    },
    service: { id: svc.body.id, host: svc.body.hosts[0].host },
    link: { id: link.body.id, envName: link.body.envName },
    release,
  };
}
