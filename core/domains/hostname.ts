import { InvalidInput } from '../errors.ts';

/**
 * Custom hostnames end up in Caddy's host matchers, in DNS queries and in certificate
 * orders, so only plain RFC 1123 names get in: nothing that could be read as a wildcard,
 * an address, a path or JSON.
 */

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const maxHostnameLength = 253;

function refuse(hostname: string, why: string): never {
  throw new InvalidInput(`hostname: ${JSON.stringify(hostname.slice(0, 300))} ${why}`, {
    field: 'hostname',
  });
}

/**
 * The hostname as stored and routed, or InvalidInput naming `hostname`: lowercase RFC 1123,
 * at least two labels, no wildcard, no IP address, not `localhost`, and not the platform's
 * own edge domain or any name under it (those are the default hosts of every service).
 * @example assertHostname('shop.example.com', { edgeDomain: 'apps.selfdevop.dev' })
 */
export function assertHostname(hostname: unknown, options: { edgeDomain: string }): string {
  if (typeof hostname !== 'string')
    throw new InvalidInput('hostname: must be a string', { field: 'hostname' });
  if (hostname.length === 0) refuse(hostname, 'is empty');
  if (hostname.length > maxHostnameLength)
    refuse(hostname, `is longer than ${maxHostnameLength} characters`);
  if (hostname.includes('*')) refuse(hostname, 'is a wildcard; add each hostname on its own');
  if (hostname !== hostname.toLowerCase())
    refuse(hostname, `must be lowercase: ${JSON.stringify(hostname.toLowerCase())}`);
  if (hostname.endsWith('.')) refuse(hostname, 'must not end with a dot');
  const ipv6 = hostname.includes(':') && /^\[?[0-9a-f:.]+\]?$/.test(hostname);
  if (ipv6 || /^\d{1,3}(?:\.\d{1,3}){3}$/.test(hostname))
    refuse(hostname, 'is an IP address, not a hostname');
  const labels = hostname.split('.');
  if (labels.length < 2) refuse(hostname, 'needs at least two labels, such as example.com');
  for (const l of labels) {
    if (l.length > 63) refuse(hostname, `has a label longer than 63 characters`);
    if (!label.test(l))
      refuse(hostname, 'may contain only a-z, 0-9, inner hyphens and dots between labels');
  }
  // A top-level label of digits only would make the name read as an address somewhere.
  if (/^\d+$/.test(labels.at(-1)!))
    refuse(hostname, 'ends in a numeric label, so it reads as an address');
  if (hostname === 'localhost' || hostname.endsWith('.localhost'))
    refuse(hostname, 'is a loopback name');
  const edge = options.edgeDomain.toLowerCase().replace(/\.$/, '');
  if (edge && (hostname === edge || hostname.endsWith(`.${edge}`))) {
    refuse(
      hostname,
      `is under the platform's edge domain ${edge}; those hosts are assigned automatically`,
    );
  }
  return hostname;
}

/** True for a registrable apex such as `example.com` (two labels), which cannot carry a CNAME. */
export function isApex(hostname: string): boolean {
  return hostname.split('.').length === 2;
}

/** The name of the TXT record that proves control of `hostname`. */
export function challengeName(hostname: string): string {
  return `_selfdevop-challenge.${hostname}`;
}

/** A DNS answer's name compared the way DNS does: case-insensitive, trailing dot optional. */
export function sameName(a: string, b: string): boolean {
  return a.toLowerCase().replace(/\.$/, '') === b.toLowerCase().replace(/\.$/, '');
}
