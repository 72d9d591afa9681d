import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
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
 */
export interface UpstreamDnsServer {
  /** host:port the server is bound to (the port is real even when 0 was asked for). */
  address: string;
  /** Drops cached answers for a label, so this process serves a fresh write at once. */
  invalidate(label: string): void;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_SRV = 33;
const CLASS_IN = 1;

function readName(msg: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let off = offset;
  for (let guard = 0; guard < 128; guard++) {
    const len = msg[off];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.').toLowerCase(), end: off + 1 };
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

function answer(type: number, ttl: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(10);
  head.writeUInt16BE(type, 0);
  head.writeUInt16BE(CLASS_IN, 2);
  head.writeUInt32BE(ttl, 4);
  head.writeUInt16BE(rdata.length, 8);
  // 0xc00c points back at the question's name.
  return Buffer.concat([Buffer.from([0xc0, 0x0c]), head, rdata]);
}

function srvRecord(target: string, port: number): Buffer {
  const fixed = Buffer.alloc(6);
  fixed.writeUInt16BE(10, 0); // priority
  fixed.writeUInt16BE(10, 2); // weight
  fixed.writeUInt16BE(port, 4);
  return Buffer.concat([fixed, encodeName(target)]);
}

/** How long the server reuses a registry answer unless told otherwise (`cacheMs`). */
export const defaultUpstreamDnsCacheMs = 200;

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
  logger?: Logger;
}): Promise<UpstreamDnsServer> {
  const zone = options.zone.toLowerCase();
  const cacheMs = options.cacheMs ?? defaultUpstreamDnsCacheMs;
  const cache = new Map<string, { upstreams: string[] | null; until: number }>();
  const mirror = options.registry.watch ? await mirrorOf(options.registry, options) : null;
  const socket = dgram.createSocket(options.host.includes(':') ? 'udp6' : 'udp4');

  async function upstreamsOf(label: string): Promise<string[] | null> {
    const mirrored = mirror?.get(label);
    if (mirrored) return mirrored;
    const hit = cache.get(label);
    if (hit && hit.until > Date.now()) return hit.upstreams;
    const upstreams = await options.registry.get(label);
    cache.set(label, { upstreams, until: Date.now() + cacheMs });
    return upstreams;
  }

  async function respond(msg: Buffer): Promise<Buffer | null> {
    if (msg.length < 12) return null;
    const id = msg.readUInt16BE(0);
    const { name, end } = readName(msg, 12);
    const qtype = msg.readUInt16BE(end);
    const question = msg.subarray(12, end + 4);
    const answers: Buffer[] = [];
    let rcode = 0;
    if (qtype === TYPE_SRV && labelOfSrvName(name, zone)) {
      const upstreams = await upstreamsOf(labelOfSrvName(name, zone)!);
      if (upstreams === null) rcode = 3; // NXDOMAIN: no such route
      for (const u of upstreams ?? []) {
        const i = u.lastIndexOf(':');
        answers.push(
          answer(TYPE_SRV, 1, srvRecord(targetOf(u.slice(0, i), zone), Number(u.slice(i + 1)))),
        );
      }
    } else if (qtype === TYPE_A && name.endsWith(`.${zone}`)) {
      const ip = hostOfTarget(name, zone);
      const address =
        ip ??
        (await lookup(name.slice(0, -(zone.length + 1)), { family: 4 }).then(
          (r) => r.address,
          () => null,
        ));
      if (address) answers.push(answer(TYPE_A, 60, Buffer.from(address.split('.').map(Number))));
      else rcode = 3;
    } else if (!name.endsWith(zone)) {
      rcode = 5; // REFUSED: not our zone
    }
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    header.writeUInt16BE(0x8400 | rcode, 2); // response, authoritative
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    return Buffer.concat([header, question, ...answers]);
  }

  socket.on('message', (msg, rinfo) => {
    respond(msg).then(
      (reply) => {
        if (reply) socket.send(reply, rinfo.port, rinfo.address);
      },
      (e: unknown) => {
        // A registry that cannot answer must not look like "no such route": SERVFAIL makes
        // Caddy keep its last good upstreams (grace_period) instead of dropping the route.
        options.logger?.warn(
          { err: e instanceof Error ? e.message : String(e) },
          'edge DNS could not answer',
        );
        if (msg.length >= 12) {
          const fail = Buffer.from(msg.subarray(0, 12));
          fail.writeUInt16BE(0x8402, 2);
          fail.writeUInt16BE(0, 6);
          socket.send(Buffer.concat([fail, msg.subarray(12)]), rinfo.port, rinfo.address);
        }
      },
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port, options.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await mirror?.close();
    throw e;
  }
  socket.on('error', (e) => options.logger?.error({ err: e.message }, 'edge DNS socket error'));
  const bound = socket.address();
  return {
    address: `${bound.address.includes(':') ? `[${bound.address}]` : bound.address}:${bound.port}`,
    invalidate: (label) => {
      cache.delete(label);
      mirror?.refresh(label);
    },
    close: async () => {
      await mirror?.close();
      await new Promise<void>((r) => socket.close(() => r()));
    },
  };
}

interface Mirror {
  /** A route's upstreams as last heard; undefined when not loaded yet or not held. */
  get(label: string): string[] | undefined;
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
  options: { resyncMs?: number; logger?: Logger },
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
      },
      (e: unknown) => {
        // Not served stale: the route falls back to reading the registry until it answers.
        if (reads.get(label) === mine) routes.delete(label);
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
    refresh,
    close: async () => {
      clearInterval(timer);
      await watcher.close();
    },
  };
}

/** The SRV target for an upstream host: IPs are encoded in the name, hostnames kept under the zone. */
function targetOf(host: string, zone: string): string {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host)
    ? `ip-${host.replace(/\./g, '-')}.${zone}`
    : `${host}.${zone}`;
}
