import type dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { Logger, UpstreamFeed, UpstreamRegistry } from '../../core/ports.ts';
import { hostOfTarget, labelOfSrvName } from '../../core/edge/caddy-route.ts';

/**
 * A small authoritative DNS server over UDP for the edge's dynamic upstreams. It answers
 * `SRV _<label>._tcp.<zone>` with a route's upstreams from the registry, and `A` for the
 * SRV targets (`ip-10-0-0-5.<zone>` → 10.0.0.5; other names are looked up as the host
 * would). Caddy asks it every refresh interval, so a switch is a registry write, not a
 * proxy reload.
 *
 * A registry that offers a feed (PostgreSQL's, through LISTEN/NOTIFY) is mirrored in memory:
 * every route loaded at start and again after each reconnect and every `resyncMs`, and a
 * route read again when its write is announced, so an answer costs no database round trip
 * (with 200 services, a cached read still paid one per route per `cacheMs`, and its p99
 * followed the pool's queue during deploys). Until the mirror is loaded, and for a route it
 * does not hold (created a moment ago, its word still on the way), the registry is read,
 * its answer cached for `cacheMs`.
 *
 * The socket lives on a worker thread of its own, holding a copy of the mirror: it answers
 * every mirrored route and every `ip-…` target there, so an answer never waits for the
 * process's main event loop, which during a mass deploy is busy with the release engine's
 * steps, health probes and pool callbacks (bench:scale's upstream DNS p99 was 42 ms with
 * every answer already in memory). Only what memory cannot answer (a route not mirrored,
 * an `A` for a host name) goes to the main thread, which reads the registry as before.
 * The worker's copy trails the mirror by one message; a switch never relies on it, since
 * it asks this server until the new set is answered.
 */
export interface UpstreamDnsServer {
  /** host:port the server is bound to (the port is real even when 0 was asked for). */
  address: string;
  /** Drops cached answers for a label, so this process serves a fresh write at once. */
  invalidate(label: string): void;
  /** The socket thread's V8 heap (bytes), or null while no thread runs: its share of the RSS. */
  threadHeap(): Promise<{ used: number; total: number; physical: number } | null>;
  close(): Promise<void>;
}

/*
 * The wire format. These are function declarations that reference only each other, their
 * arguments and globals, because the worker thread runs their source text (the bcrypt pool's
 * way, adapters/auth/bcrypt-pool.ts: an evaluated worker needs no TypeScript loader and
 * survives the esbuild bundle, where a worker file beside this one would not exist).
 */

/** The question of a query: its name (lower case), type and where the question ends. */
function questionOf(msg: Buffer): { name: string; qtype: number; end: number } | null {
  if (msg.length < 12) return null;
  const labels: string[] = [];
  let off = 12;
  for (let guard = 0; guard < 128; guard++) {
    const len = msg[off];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) {
      if (off + 5 > msg.length) throw new Error('truncated question');
      return {
        name: labels.join('.').toLowerCase(),
        qtype: msg.readUInt16BE(off + 1),
        end: off + 5,
      };
    }
    if ((len & 0xc0) !== 0) throw new Error('compressed question names are not expected');
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  throw new Error('name too long');
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.');
  return Buffer.concat([
    ...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])),
    Buffer.from([0]),
  ]);
}

/** One resource record for the question's name (type 1 = A, 33 = SRV; class IN). */
function answerRecord(type: number, ttl: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(1, 2);
  head.writeUInt32BE(ttl, 4);
  head.writeUInt16BE(rdata.length, 8);
  // 0xc00c points back at the question's name.
  return Buffer.concat([Buffer.from([0xc0, 0x0c]), head, rdata]);
}

/** SRV records for `upstreams` (host:port); IPs become `ip-10-0-0-5.<zone>` targets. */
function srvAnswers(upstreams: readonly string[], zone: string): Buffer[] {
  return upstreams.map((u) => {
    const i = u.lastIndexOf(':');
    const host = u.slice(0, i);
    const target = /^\d+\.\d+\.\d+\.\d+$/.test(host)
      ? `ip-${host.replace(/\./g, '-')}.${zone}`
      : `${host}.${zone}`;
    const fixed = Buffer.alloc(6);
    fixed.writeUInt16BE(10, 0); // priority
    fixed.writeUInt16BE(10, 2); // weight
    fixed.writeUInt16BE(Number(u.slice(i + 1)), 4);
    return answerRecord(33, 1, Buffer.concat([fixed, encodeName(target)]));
  });
}

function aAnswer(address: string): Buffer {
  return answerRecord(1, 60, Buffer.from(address.split('.').map(Number)));
}

/** The reply to `msg` (its question ends at `end`): authoritative, with `answers` or `rcode`. */
function replyOf(msg: Buffer, end: number, answers: readonly Buffer[], rcode: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0);
  header.writeUInt16BE(0x8400 | rcode, 2); // response, authoritative
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, msg.subarray(12, end), ...answers]);
}

/**
 * The reply memory alone gives: an SRV for a route in `routes`, an `A` for an `ip-…` target,
 * REFUSED for another zone; null when the main thread must answer (a route not held, a host
 * name to look up). `routes` is null until the mirror is loaded. The names' functions come
 * as an argument: a test runner's module transform rewrites references to imports.
 */
function replyFromMemory(
  msg: Buffer,
  zone: string,
  routes: ReadonlyMap<string, readonly string[]> | null,
  names: { labelOfSrvName: typeof labelOfSrvName; hostOfTarget: typeof hostOfTarget },
): Buffer | null {
  const q = questionOf(msg);
  if (!q) return null;
  if (q.qtype === 33) {
    const label = names.labelOfSrvName(q.name, zone);
    const upstreams = label !== null ? routes?.get(label) : undefined;
    return upstreams ? replyOf(msg, q.end, srvAnswers(upstreams, zone), 0) : null;
  }
  if (q.qtype === 1 && q.name.endsWith(`.${zone}`)) {
    const ip = names.hostOfTarget(q.name, zone);
    return ip ? replyOf(msg, q.end, [aAnswer(ip)], 0) : null;
  }
  return q.name.endsWith(zone) ? null : replyOf(msg, q.end, [], 5); // REFUSED: not our zone
}

/** SERVFAIL for `msg`: Caddy then keeps its last good upstreams (grace_period). */
function servfailOf(msg: Buffer): Buffer | null {
  if (msg.length < 12) return null;
  const fail = Buffer.from(msg);
  fail.writeUInt16BE(0x8402, 2);
  fail.writeUInt16BE(0, 6);
  fail.writeUInt16BE(0, 8);
  fail.writeUInt16BE(0, 10);
  return fail;
}

/** Messages between the main thread and the socket's thread. */
type ToSocket =
  | { routes: [string, string[]][] }
  | { set: string; upstreams: string[] | null }
  | { reply: number; buf: Uint8Array | null }
  | { close: true };
type FromSocket =
  | { bound: { address: string; port: number } }
  | { bindError: string; code?: string; syscall?: string; address?: string; port?: number }
  | { ask: number; msg: Uint8Array }
  | { socketError: string }
  | { closed: true };

/**
 * The socket thread's body. It runs from its source text, so it reaches the wire functions
 * through `h` and Node through `require`, never through this module's imports.
 */
function socketThread(
  h: {
    replyFromMemory: typeof replyFromMemory;
    names: Parameters<typeof replyFromMemory>[3];
  },
  data: { zone: string; host: string; port: number },
  port: {
    on(event: 'message', cb: (m: ToSocket) => void): void;
    postMessage(m: FromSocket): void;
  },
  dgramOf: typeof dgram,
): void {
  let routes: Map<string, string[]> | null = null;
  const asked = new Map<number, { port: number; address: string }>();
  let nextAsk = 0;
  const socket = dgramOf.createSocket(data.host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (msg, rinfo) => {
    let reply: Buffer | null;
    try {
      reply = h.replyFromMemory(msg, data.zone, routes, h.names);
    } catch {
      return; // not a question this server can read: dropped, as the main thread did
    }
    if (reply) {
      socket.send(reply, rinfo.port, rinfo.address);
      return;
    }
    const id = ++nextAsk;
    asked.set(id, { port: rinfo.port, address: rinfo.address });
    port.postMessage({ ask: id, msg });
  });
  port.on('message', (m) => {
    if ('routes' in m) routes = new Map(m.routes);
    else if ('set' in m) {
      if (m.upstreams) routes?.set(m.set, m.upstreams);
      else routes?.delete(m.set);
    } else if ('reply' in m) {
      const to = asked.get(m.reply);
      asked.delete(m.reply);
      if (to && m.buf) socket.send(m.buf, to.port, to.address);
    } else if ('close' in m) socket.close(() => port.postMessage({ closed: true }));
  });
  // The OS error's fields, not only its text: start-up names the taken port and the
  // variable from them (`functions/selfhost/start-errors.ts`).
  socket.once('error', (e: NodeJS.ErrnoException & { address?: string; port?: number }) =>
    port.postMessage({
      bindError: e.message,
      code: e.code,
      syscall: e.syscall,
      address: e.address,
      port: e.port,
    }),
  );
  socket.bind(data.port, data.host, () => {
    socket.removeAllListeners('error');
    socket.on('error', (e) => port.postMessage({ socketError: e.message }));
    const a = socket.address();
    port.postMessage({ bound: { address: a.address, port: a.port } });
  });
}

const socketThreadSource = `
const { parentPort, workerData } = require('node:worker_threads');
${[questionOf, encodeName, answerRecord, srvAnswers, aAnswer, replyOf, labelOfSrvName, hostOfTarget, replyFromMemory].map((f) => f.toString()).join('\n')}
(${socketThread.toString()})(
  {
    replyFromMemory: ${replyFromMemory.name},
    names: { labelOfSrvName: ${labelOfSrvName.name}, hostOfTarget: ${hostOfTarget.name} },
  },
  workerData, parentPort, require('node:dgram'));
`;

/** How long the server reuses a registry answer unless told otherwise (`cacheMs`). */
export const defaultUpstreamDnsCacheMs = 200;

/** How long the socket's thread may take to load and bind before start-up fails (`bindTimeoutMs`). */
export const defaultUpstreamDnsBindTimeoutMs = 10_000;

/**
 * Why the edge DNS could not start: its thread did not load, exited, or did not bind in
 * time. A bind the OS refused is not this error: it keeps the OS error's own fields
 * (`code`, `syscall`, `port`), which start-up turns into words.
 */
export class UpstreamDnsStartFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamDnsStartFailed';
  }
}

/** Starts the socket's thread; tests pass their own to watch it, break it or end it. */
export type SpawnDnsThread = (source: string, options: WorkerOptions) => Worker;

const spawnDnsThread: SpawnDnsThread = (source, options) => new Worker(source, options);

interface SocketThread {
  worker: Worker;
  /** Settles once: the bound address, or why the thread could not get there. */
  bound: Promise<{ address: string; port: number }>;
}

export async function startUpstreamDns(options: {
  registry: UpstreamRegistry & Partial<UpstreamFeed>;
  zone: string;
  host: string;
  port: number;
  cacheMs?: number;
  /**
   * How often the mirror is reloaded whole, a backstop should a word be lost with a
   * connection that died quietly; 10 s unless set (one small read of every route).
   */
  resyncMs?: number;
  /** The socket's thread must have bound within this, or start-up fails saying so; 10 s. */
  bindTimeoutMs?: number;
  /** After the thread dies, how long before another is started (doubling up to 10 s); 100 ms. */
  restartDelayMs?: number;
  logger?: Logger;
  spawnThread?: SpawnDnsThread;
}): Promise<UpstreamDnsServer> {
  const zone = options.zone.toLowerCase();
  const cacheMs = options.cacheMs ?? defaultUpstreamDnsCacheMs;
  const bindTimeoutMs = options.bindTimeoutMs ?? defaultUpstreamDnsBindTimeoutMs;
  const firstRestartMs = options.restartDelayMs ?? 100;
  const spawnThread = options.spawnThread ?? spawnDnsThread;
  const cache = new Map<string, { upstreams: string[] | null; until: number }>();
  let mirror: Mirror | null = null;
  let closing = false;
  let closed: (() => void) | null = null;
  let thread: SocketThread | null = null;
  /** Where the first thread bound: a restarted one binds the same port. */
  let address: { address: string; port: number } | null = null;

  async function upstreamsOf(label: string): Promise<string[] | null> {
    const mirrored = mirror?.get(label);
    if (mirrored) return mirrored;
    const hit = cache.get(label);
    if (hit && hit.until > Date.now()) return hit.upstreams;
    const upstreams = await options.registry.get(label);
    cache.set(label, { upstreams, until: Date.now() + cacheMs });
    return upstreams;
  }

  /** What the socket's thread could not answer from memory. */
  async function respond(msg: Buffer): Promise<Buffer | null> {
    const q = questionOf(msg);
    if (!q) return null;
    if (q.qtype === 33 && labelOfSrvName(q.name, zone)) {
      const upstreams = await upstreamsOf(labelOfSrvName(q.name, zone)!);
      // NXDOMAIN: no such route
      return upstreams === null
        ? replyOf(msg, q.end, [], 3)
        : replyOf(msg, q.end, srvAnswers(upstreams, zone), 0);
    }
    if (q.qtype === 1 && q.name.endsWith(`.${zone}`)) {
      const address =
        hostOfTarget(q.name, zone) ??
        (await lookup(q.name.slice(0, -(zone.length + 1)), { family: 4 }).then(
          (r) => r.address,
          () => null,
        ));
      return address ? replyOf(msg, q.end, [aAnswer(address)], 0) : replyOf(msg, q.end, [], 3);
    }
    return replyOf(msg, q.end, [], q.name.endsWith(zone) ? 0 : 5); // REFUSED: not our zone
  }

  /**
   * One socket thread on `port`. Every listener is attached here, before anything is
   * awaited: a Worker drops the messages and events it emits while nobody listens, and the
   * first version attached them only after the mirror's load. Its thread bound while the
   * load still waited on PostgreSQL (a database with routes, in a fresh container), so its
   * `bound` was lost and the Compose worker waited for it forever, saying nothing.
   */
  function startThread(port: number): SocketThread {
    const worker = spawnThread(socketThreadSource, {
      eval: true,
      workerData: { zone, host: options.host, port },
    });
    let settle: { resolve(a: { address: string; port: number }): void; reject(e: Error): void };
    const bound = new Promise<{ address: string; port: number }>((resolve, reject) => {
      settle = { resolve, reject };
    });
    let up = false;
    const fail = (e: Error) => {
      clearTimeout(timer);
      settle.reject(e);
    };
    const timer = setTimeout(
      () =>
        fail(
          new UpstreamDnsStartFailed(
            `the edge's upstream DNS thread did not bind ${options.host}:${port} within ${bindTimeoutMs / 1000} s`,
          ),
        ),
      bindTimeoutMs,
    );
    timer.unref();
    worker.on('message', (m: FromSocket) => {
      if ('bound' in m) {
        up = true;
        clearTimeout(timer);
        settle.resolve(m.bound);
      } else if ('bindError' in m) {
        const { bindError, ...fields } = m;
        fail(Object.assign(new Error(bindError), fields));
      } else if ('socketError' in m)
        options.logger?.error({ err: m.socketError }, 'edge DNS socket error');
      else if ('closed' in m) closed?.();
      else if ('ask' in m) {
        const msg = Buffer.from(m.msg);
        respond(msg).then(
          (reply) => worker.postMessage({ reply: m.ask, buf: reply } satisfies ToSocket),
          (e: unknown) => {
            // A registry that cannot answer must not look like "no such route".
            options.logger?.warn(
              { err: e instanceof Error ? e.message : String(e) },
              'edge DNS could not answer',
            );
            worker.postMessage({ reply: m.ask, buf: servfailOf(msg) } satisfies ToSocket);
          },
        );
      }
    });
    // An error is followed by 'exit'; it is kept so the exit can say why.
    let error: Error | null = null;
    worker.on('error', (e) => {
      error = e;
      if (!up)
        fail(
          new UpstreamDnsStartFailed(`the edge's upstream DNS thread failed to load: ${e.message}`),
        );
    });
    worker.on('exit', (code) => {
      if (!up) {
        fail(
          new UpstreamDnsStartFailed(
            `the edge's upstream DNS thread exited (code ${code}) before binding ${options.host}:${port}${error ? `: ${error.message}` : ''}`,
          ),
        );
        return;
      }
      if (!closing && thread?.worker === worker) died(code, error);
    });
    return { worker, bound };
  }

  const first = startThread(options.port);
  thread = first;
  // Settled later than it may fail: the mirror's load is awaited first.
  first.bound.catch(() => undefined);
  const tell = (m: ToSocket) => thread?.worker.postMessage(m);

  try {
    mirror = options.registry.watch
      ? await mirrorOf(options.registry, {
          ...options,
          // The socket's copy follows every change of the mirror, in order.
          onLoad: (routes) => tell({ routes: [...routes] }),
          onChange: (label, upstreams) => tell({ set: label, upstreams }),
        })
      : null;
    address = await first.bound;
  } catch (e) {
    await mirror?.close();
    await first.worker.terminate();
    throw e;
  }
  const bound = address;

  /**
   * A thread that dies after binding (an uncaught error in it, an OOM) is started again on
   * the same port with the mirror's routes: the edge's DNS is down only until it binds, and
   * Caddy keeps its last answers for its grace period meanwhile. Failing the whole worker
   * instead would also stop the deploys in flight for a fault of the socket alone. Each
   * death and each failed restart is logged as an error; restarts back off to 10 s.
   */
  let restartMs = firstRestartMs;
  let restartTimer: NodeJS.Timeout | undefined;
  function died(code: number, error: Error | null) {
    const at = address ? `${address.address}:${address.port}` : `${options.host}:${options.port}`;
    const port = address?.port ?? options.port;
    options.logger?.error(
      { code, err: error?.message, address: at },
      'edge DNS thread died; starting another',
    );
    thread = null;
    const again = () => {
      restartTimer = undefined;
      if (closing) return;
      const next = startThread(port);
      thread = next;
      const loaded = mirror?.routes();
      if (loaded) next.worker.postMessage({ routes: [...loaded] } satisfies ToSocket);
      next.bound.then(
        () => {
          restartMs = firstRestartMs;
          options.logger?.info({ address: at }, 'edge DNS thread restarted');
        },
        (e: unknown) => {
          options.logger?.error(
            { err: e instanceof Error ? e.message : String(e), retryInMs: restartMs },
            'edge DNS thread could not be restarted',
          );
          void next.worker.terminate();
          if (thread === next) thread = null;
          if (!closing) restartTimer = setTimeout(again, restartMs);
          restartMs = Math.min(restartMs * 2, 10_000);
        },
      );
    };
    restartTimer = setTimeout(again, restartMs);
  }

  return {
    address: `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`,
    invalidate: (label) => {
      cache.delete(label);
      mirror?.refresh(label);
    },
    threadHeap: async () => {
      const h = await thread?.worker.getHeapStatistics().catch(() => null);
      return h
        ? { used: h.used_heap_size, total: h.total_heap_size, physical: h.total_physical_size }
        : null;
    },
    close: async () => {
      closing = true;
      clearTimeout(restartTimer);
      await mirror?.close();
      const last = thread;
      if (!last) return;
      await new Promise<void>((resolve) => {
        closed = resolve;
        last.worker.postMessage({ close: true } satisfies ToSocket);
        // A thread that cannot say so (stuck, gone) is ended anyway.
        setTimeout(resolve, 1_000).unref();
      });
      await last.worker.terminate();
    },
  };
}

interface Mirror {
  /** A route's upstreams as last heard; undefined when not loaded yet or not held. */
  get(label: string): string[] | undefined;
  /** Every route held; null until the first load. */
  routes(): ReadonlyMap<string, string[]> | null;
  refresh(label: string): void;
  close(): Promise<void>;
}

/**
 * Every route's upstreams in memory. A route's read that started before a newer one for it
 * (or before a whole reload that saw it) is dropped when it lands late, so the mirror never
 * goes back to an older write.
 */
async function mirrorOf(
  registry: UpstreamRegistry & Partial<UpstreamFeed>,
  options: {
    resyncMs?: number;
    logger?: Logger;
    /** Every route, after each whole load. */
    onLoad(routes: ReadonlyMap<string, string[]>): void;
    /** One route changed (null: no longer held). */
    onChange(label: string, upstreams: string[] | null): void;
  },
): Promise<Mirror> {
  const routes = new Map<string, string[]>();
  let loaded = false;
  /** Bumped when a read of the route starts; a read applies only if still the latest. */
  const reads = new Map<string, number>();
  let generation = 0;
  let reloading = 0;
  const warn = (e: unknown, what: string) =>
    options.logger?.warn({ err: e instanceof Error ? e.message : String(e) }, what);

  const refresh = (label: string): void => {
    const mine = ++generation;
    reads.set(label, mine);
    registry.get(label).then(
      (upstreams) => {
        if (reads.get(label) !== mine) return;
        if (upstreams) routes.set(label, upstreams);
        else routes.delete(label);
        options.onChange(label, upstreams);
      },
      (e: unknown) => {
        // Not served stale: the route falls back to reading the registry until it answers.
        if (reads.get(label) === mine) {
          routes.delete(label);
          options.onChange(label, null);
        }
        warn(e, 'edge DNS could not read a changed route');
      },
    );
  };

  const reload = (): Promise<void> => {
    const started = ++generation;
    const mine = ++reloading;
    return registry.all!().then(
      (all) => {
        if (mine !== reloading) return;
        // A route read after this reload began holds a newer answer than the reload's.
        const newer = (label: string) => (reads.get(label) ?? 0) > started;
        for (const label of [...routes.keys()])
          if (!all.has(label) && !newer(label)) routes.delete(label);
        for (const [label, upstreams] of all) if (!newer(label)) routes.set(label, upstreams);
        loaded = true;
        options.onLoad(routes);
      },
      (e: unknown) => warn(e, 'edge DNS could not load the routes; reading them one by one'),
    );
  };

  // The feed says "reload" once subscribed: that first load is awaited, not repeated.
  let firstLoad: Promise<void> | undefined;
  const watcher = await registry.watch!((label) => {
    if (label !== null) refresh(label);
    else if (firstLoad) void reload();
    else firstLoad = reload();
  });
  await (firstLoad ?? (firstLoad = reload()));
  const timer = setInterval(() => void reload(), options.resyncMs ?? 10_000);
  timer.unref();
  return {
    get: (label) => (loaded ? routes.get(label) : undefined),
    routes: () => (loaded ? routes : null),
    refresh,
    close: async () => {
      clearInterval(timer);
      await watcher.close();
    },
  };
}
