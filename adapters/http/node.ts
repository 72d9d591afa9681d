import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { HttpSender } from '../../core/ports.ts';

/** Response bodies are read only this far: a receiver's answer is never needed in full. */
const maxResponseBytes = 64 * 1024;

/** dns.lookup's shape with `all: true`, so tests can re-point a name between two calls. */
export type ResolveAll = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface NodeHttpSenderOptions {
  /**
   * Also refuse private ranges (10/8, 172.16/12, 192.168/16, CGNAT, fc00::/7). Loopback,
   * link-local (the cloud metadata service), unspecified and multicast addresses are
   * refused whatever this says: the control plane and the edge's admin API listen there.
   */
  refusePrivateAddresses?: boolean;
  /**
   * host:port of the platform's own services (the edge's admin API, the API, the edge's
   * DNS, the database): never a webhook target, whatever range their address is in. Names
   * are resolved at every check; a wildcard host (0.0.0.0, ::) stands for every address
   * of this machine.
   */
  refusedEndpoints?: readonly string[];
  /** How names are resolved; the system resolver unless set. */
  resolve?: ResolveAll;
  /**
   * Tests only, through a composition root's test override (never configuration): their
   * receivers listen on loopback. The platform's own endpoints stay refused.
   */
  acceptLoopback?: boolean;
}

/** Why an address is never a webhook target, or 'private' / null. */
type AddressClass = 'loopback' | 'link-local' | 'unspecified' | 'multicast' | 'private' | null;

function ranges(list: readonly (readonly [string, number])[], family: 'ipv4' | 'ipv6') {
  const b = new net.BlockList();
  for (const [prefix, bits] of list) b.addSubnet(prefix, bits, family);
  return b;
}

// Checked in this order: the first that matches names the reason.
const classes: [Exclude<AddressClass, null>, net.BlockList, net.BlockList][] = [
  ['loopback', ranges([['127.0.0.0', 8]], 'ipv4'), ranges([['::1', 128]], 'ipv6')],
  ['link-local', ranges([['169.254.0.0', 16]], 'ipv4'), ranges([['fe80::', 10]], 'ipv6')],
  ['unspecified', ranges([['0.0.0.0', 8]], 'ipv4'), ranges([['::', 128]], 'ipv6')],
  ['multicast', ranges([['224.0.0.0', 3]], 'ipv4'), ranges([['ff00::', 8]], 'ipv6')],
  [
    'private',
    ranges(
      [
        ['10.0.0.0', 8],
        ['100.64.0.0', 10],
        ['172.16.0.0', 12],
        ['192.0.0.0', 24],
        ['192.168.0.0', 16],
        ['198.18.0.0', 15],
      ],
      'ipv4',
    ),
    ranges(
      [
        ['fc00::', 7],
        ['64:ff9b::', 96],
      ],
      'ipv6',
    ),
  ],
];

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d` or `::ffff:xxxx:xxxx`) as its IPv4; others unchanged. */
function unmapped(address: string): string {
  const mapped = /^::ffff:(?:0:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return mapped;
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!hex) return address;
  const hi = parseInt(hex[1]!, 16);
  const lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

/** The range an address is in, among those a webhook may not reach; not an address at all counts as unspecified. */
export function classifyAddress(address: string): AddressClass {
  const a = unmapped(address);
  const family = net.isIP(a);
  if (family === 0) return 'unspecified';
  for (const [name, v4, v6] of classes) {
    if (family === 4 ? v4.check(a, 'ipv4') : v6.check(a, 'ipv6')) return name;
  }
  return null;
}

/** True for an address in a private range; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged as its IPv4. */
export const isPrivateAddress = (address: string): boolean => classifyAddress(address) !== null;

const systemResolve: ResolveAll = (hostname) =>
  dns.promises.lookup(hostname, { all: true, verbatim: true });

const bare = (host: string): string => host.replace(/^\[(.*)\]$/, '$1');

function splitEndpoint(endpoint: string): { host: string; port: number } {
  const i = endpoint.lastIndexOf(':');
  return { host: bare(endpoint.slice(0, i)) || '0.0.0.0', port: Number(endpoint.slice(i + 1)) };
}

const portOf = (u: URL): number => Number(u.port || (u.protocol === 'https:' ? 443 : 80));

/** Every address of this machine, for a service listening on a wildcard address. */
function ownAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .map((i) => i?.address)
    .filter((a): a is string => !!a);
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

type Vetted =
  | { refused: string; addresses?: undefined; unresolved?: boolean }
  | { refused: null; addresses: { address: string; family: number }[]; unresolved?: undefined };

/**
 * Outbound POSTs with node:http(s): no redirects followed (a webhook that redirects is
 * misconfigured, and following would defeat the address checks), a hard timeout. The name
 * is resolved once per delivery, every answer is checked, and the socket connects to one
 * of those checked answers: a name re-pointed after the webhook was made (DNS rebinding)
 * is caught at delivery, and cannot change between the check and the connect.
 */
export class NodeHttpSender implements HttpSender {
  private readonly refusePrivate: boolean;
  private readonly endpoints: { host: string; port: number }[];
  private readonly resolve: ResolveAll;
  private readonly acceptLoopback: boolean;
  private own: { at: number; endpoints: Promise<Set<string>> } | null = null;

  constructor(options: NodeHttpSenderOptions = {}) {
    this.refusePrivate = options.refusePrivateAddresses ?? false;
    this.endpoints = (options.refusedEndpoints ?? []).map(splitEndpoint);
    this.resolve = options.resolve ?? systemResolve;
    this.acceptLoopback = options.acceptLoopback ?? false;
  }

  /** Why a webhook must not be sent to url (checked against its resolved addresses), or null. */
  async refusal(url: string): Promise<string | null> {
    const vetted = await this.vet(url);
    // A name that does not resolve yet is not a target either: every delivery checks again.
    return vetted.unresolved ? null : vetted.refused;
  }

  private async addressesOf(host: string): Promise<{ address: string; family: number }[]> {
    const family = net.isIP(host);
    return family ? [{ address: host, family }] : this.resolve(host);
  }

  /**
   * The platform's own address:port pairs. Re-resolved every 30 s (a container's address
   * moves on restart), not at every check: a name that does not resolve (`api` outside
   * Compose) costs the resolver's whole timeout.
   */
  private ownEndpoints(): Promise<Set<string>> {
    if (this.own && Date.now() - this.own.at < 30_000) return this.own.endpoints;
    const endpoints = Promise.all(
      this.endpoints.map(async ({ host, port }) => {
        const wildcard = host === '0.0.0.0' || host === '::';
        const addresses = wildcard
          ? [...ownAddresses(), '127.0.0.1', '::1']
          : (await this.addressesOf(host).catch(() => [])).map((a) => a.address);
        return addresses.map((a) => `${unmapped(a)}|${port}`);
      }),
    ).then((lists) => new Set(lists.flat()));
    this.own = { at: Date.now(), endpoints };
    return endpoints;
  }

  private async vet(url: string): Promise<Vetted> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return { refused: `invalid URL ${url}` };
    }
    const host = bare(target.hostname);
    let addresses: { address: string; family: number }[];
    try {
      addresses = await this.addressesOf(host);
    } catch (e) {
      return { refused: `${host} does not resolve: ${(e as Error).message}`, unresolved: true };
    }
    if (addresses.length === 0) return { refused: `${host} has no address`, unresolved: true };
    const port = portOf(target);
    const own = this.endpoints.length > 0 ? await this.ownEndpoints() : new Set<string>();
    for (const { address } of addresses) {
      const shown = host === address ? address : `${host} (${address})`;
      if (own.has(`${unmapped(address)}|${port}`))
        return { refused: `${shown}:${port} is the control plane or its edge's admin API` };
      const kind = classifyAddress(address);
      if (kind === 'loopback' && this.acceptLoopback) continue;
      if (kind && (kind !== 'private' || this.refusePrivate))
        return { refused: `${shown} is a ${kind} address` };
    }
    return { refused: null, addresses };
  }

  async post(url: string, body: string, headers: Record<string, string>, timeoutMs: number) {
    const vetted = await this.vet(url);
    if (vetted.refused !== null) return { status: null, error: `refused: ${vetted.refused}` };
    const checked = vetted.addresses;
    // Connect only to what was checked: no second resolution a rebinding server could answer differently.
    const lookup = (_host: string, options: dns.LookupOptions, callback: LookupCallback) => {
      if (options.all) return callback(null, checked as dns.LookupAddress[]);
      const first = checked[0]!;
      callback(null, first.address, first.family);
    };
    const target = new URL(url);
    return new Promise<{ status: number | null; error: string | null }>((resolve) => {
      const client = target.protocol === 'https:' ? https : http;
      const req = client.request(
        target,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
          timeout: timeoutMs,
          agent: false,
          lookup: lookup as net.LookupFunction,
        },
        (res) => {
          let read = 0;
          res.on('data', (chunk: Buffer) => {
            read += chunk.length;
            if (read > maxResponseBytes) res.destroy();
          });
          res.on('close', () => resolve({ status: res.statusCode ?? null, error: null }));
          res.on('error', () => resolve({ status: res.statusCode ?? null, error: null }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => resolve({ status: null, error: e.message }));
      req.end(body);
    });
  }
}
