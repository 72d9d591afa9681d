import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { HttpSender } from '../../core/ports.ts';

/** Response bodies are read only this far: a receiver's answer is never needed in full. */
const maxResponseBytes = 64 * 1024;

export interface NodeHttpSenderOptions {
  /**
   * Refuse to connect to loopback, private, link-local (the cloud metadata service),
   * shared (CGNAT) and unspecified addresses. The API checks a webhook's host when it is
   * created, but a name can resolve elsewhere later (DNS rebinding), so in a multi-tenant
   * cloud the address actually connected to is checked here, at every delivery.
   */
  refusePrivateAddresses?: boolean;
}

/** The address ranges a tenant's webhook must never reach from inside the SaaS network. */
const privateRanges = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 3],
] as const) {
  privateRanges.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  privateRanges.addSubnet(prefix, bits, 'ipv6');
}

/** True for an address in a private range; IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is judged as its IPv4. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return privateRanges.check(address, 'ipv4');
  if (family !== 6) return true; // not an address at all: refuse rather than guess
  const mapped = /^::ffff:(?:0:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return privateRanges.check(mapped, 'ipv4');
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return privateRanges.check(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, 'ipv4');
  }
  return privateRanges.check(address, 'ipv6');
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** dns.lookup that fails for private answers, so the socket never opens to them. */
function publicOnlyLookup(
  hostname: string,
  options: dns.LookupOptions,
  callback: LookupCallback,
): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '');
    const refused = addresses.find((a) => isPrivateAddress(a.address));
    if (refused) return callback(privateAddressError(hostname, refused.address), '');
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first)
      return callback(
        Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }),
        '',
      );
    callback(null, first.address, first.family);
  });
}

function privateAddressError(host: string, address: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`refused: ${host} resolves to the private address ${address}`), {
    code: 'EPRIVATEADDRESS',
  });
}

/**
 * Outbound POSTs with node:http(s): no redirects followed (a webhook that redirects is
 * misconfigured, and following would defeat the private-address check), a hard timeout.
 */
export class NodeHttpSender implements HttpSender {
  private readonly refusePrivate: boolean;

  constructor(options: NodeHttpSenderOptions = {}) {
    this.refusePrivate = options.refusePrivateAddresses ?? false;
  }

  post(url: string, body: string, headers: Record<string, string>, timeoutMs: number) {
    return new Promise<{ status: number | null; error: string | null }>((resolve) => {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        resolve({ status: null, error: `invalid URL ${url}` });
        return;
      }
      if (this.refusePrivate) {
        // An IP literal never goes through lookup, so it is judged here.
        const literal = target.hostname.replace(/^\[(.*)\]$/, '$1');
        if (net.isIP(literal) && isPrivateAddress(literal)) {
          resolve({ status: null, error: privateAddressError(target.hostname, literal).message });
          return;
        }
      }
      const client = target.protocol === 'https:' ? https : http;
      const req = client.request(
        target,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
          timeout: timeoutMs,
          agent: false,
          ...(this.refusePrivate ? { lookup: publicOnlyLookup as net.LookupFunction } : {}),
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
