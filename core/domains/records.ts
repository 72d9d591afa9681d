import type { Domain } from '../models.ts';
import type { DnsResolver } from '../ports.ts';
import { challengeName, isApex, sameName } from './hostname.ts';

/** One DNS record the domain's owner must create. */
export interface DnsRecord {
  type: 'TXT' | 'CNAME' | 'A';
  name: string;
  value: string;
}

/**
 * The records that prove control of the hostname and send its traffic to the edge: a TXT
 * with the verification token, and a CNAME to the service environment's default host (an
 * apex cannot carry a CNAME, so it gets an A record to the edge address instead).
 */
export function requiredRecords(
  domain: Pick<Domain, 'hostname' | 'verificationToken'>,
  target: { defaultHost: string; edgeIpv4: string[] },
): DnsRecord[] {
  const txt: DnsRecord = {
    type: 'TXT',
    name: challengeName(domain.hostname),
    value: domain.verificationToken,
  };
  const ip = target.edgeIpv4[0];
  if (isApex(domain.hostname) && ip !== undefined)
    return [txt, { type: 'A', name: domain.hostname, value: ip }];
  return [txt, { type: 'CNAME', name: domain.hostname, value: target.defaultHost }];
}

/** What a DNS check found: verified, or the missing piece said so a person can fix it. */
export type DnsVerdict = { ok: true; via: 'cname' | 'a' } | { ok: false; reason: string };

/**
 * Checks the TXT token and that the host points at the edge (CNAME to the default host,
 * or only A records of the edge). Throws what the resolver throws (Unavailable('dns')).
 */
export async function checkRecords(
  resolver: DnsResolver,
  domain: Pick<Domain, 'hostname' | 'verificationToken'>,
  target: { defaultHost: string; edgeIpv4: string[] },
): Promise<DnsVerdict> {
  const txtName = challengeName(domain.hostname);
  const [txt, cname] = await Promise.all([resolver.txt(txtName), resolver.cname(domain.hostname)]);
  if (!txt.includes(domain.verificationToken)) {
    const found =
      txt.length === 0
        ? 'none found'
        : `found ${txt.map((t) => JSON.stringify(t.slice(0, 80))).join(', ')}`;
    return {
      ok: false,
      reason: `TXT record ${txtName} must hold ${domain.verificationToken} (${found})`,
    };
  }
  if (cname.some((c) => sameName(c, target.defaultHost))) return { ok: true, via: 'cname' };
  const wanted = `CNAME ${target.defaultHost}${target.edgeIpv4.length ? ` or A ${target.edgeIpv4.join(', ')}` : ''}`;
  if (cname.length > 0) {
    return {
      ok: false,
      reason: `${domain.hostname} must point at the edge with ${wanted} (found CNAME ${cname.join(', ')})`,
    };
  }
  const a = await resolver.a(domain.hostname);
  if (a.length > 0 && target.edgeIpv4.length > 0 && a.every((ip) => target.edgeIpv4.includes(ip)))
    return { ok: true, via: 'a' };
  const found = a.length === 0 ? 'no A or CNAME record found' : `found A ${a.join(', ')}`;
  return {
    ok: false,
    reason: `${domain.hostname} must point at the edge with ${wanted} (${found})`,
  };
}
