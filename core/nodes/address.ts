import type { ContainerInfo, PublishedPort } from '../ports.ts';
import type { NodeRecord } from '../models.ts';

/**
 * Where a node may be and where the edge and the health probe may connect for it. Pure:
 * literal addresses are judged as text, so the same rules hold in both modes and in tests.
 */

/** Why an address is no tenant's to use, or 'public'. */
export type AddressClass =
  'loopback' | 'link-local' | 'unspecified' | 'multicast' | 'private' | 'public';

/** A canonical dotted-quad IPv4 address (no leading zeros, each part ≤ 255) as its bytes. */
export function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    bytes.push(n);
  }
  return bytes;
}

/** An IPv6 address (`::` shorthand and a trailing dotted IPv4 allowed) as its 16 bytes. */
export function parseIpv6(text: string): number[] | null {
  let bare = text.replace(/^\[(.*)\]$/, '$1');
  if (!bare.includes(':') || bare.includes('%')) return null;
  const lastColon = bare.lastIndexOf(':');
  if (bare.slice(lastColon + 1).includes('.')) {
    // A trailing dotted IPv4 is the last two groups.
    const v4 = parseIpv4(bare.slice(lastColon + 1));
    if (!v4) return null;
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    bare = `${bare.slice(0, lastColon + 1)}${hex(v4[0]!, v4[1]!)}:${hex(v4[2]!, v4[3]!)}`;
  }
  const halves = bare.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (s: string) => (s === '' ? [] : s.split(':'));
  const left = groupsOf(halves[0]!);
  const right = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const given = left.length + right.length;
  if (halves.length === 1 ? given !== 8 : given > 7) return null;
  const groups = [...left, ...Array<string>(8 - given).fill('0'), ...right];
  const bytes: number[] = [];
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return null;
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 255);
  }
  return bytes;
}

const inV4 = (b: number[], prefix: number[], bits: number): boolean => {
  for (let i = 0; i < 4; i++) {
    const take = Math.max(0, Math.min(8, bits - i * 8));
    const mask = take === 0 ? 0 : (0xff << (8 - take)) & 0xff;
    if ((b[i]! & mask) !== (prefix[i]! & mask)) return false;
  }
  return true;
};

function classifyV4(b: number[]): AddressClass {
  if (inV4(b, [127, 0, 0, 0], 8)) return 'loopback';
  if (inV4(b, [169, 254, 0, 0], 16)) return 'link-local';
  if (inV4(b, [0, 0, 0, 0], 8)) return 'unspecified';
  if (inV4(b, [224, 0, 0, 0], 3)) return 'multicast';
  const privateV4: [number[], number][] = [
    [[10, 0, 0, 0], 8],
    [[100, 64, 0, 0], 10],
    [[172, 16, 0, 0], 12],
    [[192, 0, 0, 0], 24],
    [[192, 168, 0, 0], 16],
    [[198, 18, 0, 0], 15],
  ];
  return privateV4.some(([p, bits]) => inV4(b, p, bits)) ? 'private' : 'public';
}

function classifyV6(b: number[]): AddressClass {
  const zeroUpTo = (n: number) => b.slice(0, n).every((x) => x === 0);
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses reach that IPv4.
  if (zeroUpTo(10) && b[10] === 0xff && b[11] === 0xff) return classifyV4(b.slice(12));
  if (zeroUpTo(15)) return b[15] === 1 ? 'loopback' : 'unspecified';
  if (zeroUpTo(12)) return classifyV4(b.slice(12));
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'link-local';
  if (b[0] === 0xff) return 'multicast';
  if ((b[0]! & 0xfe) === 0xfc) return 'private';
  // NAT64 (64:ff9b::/96) reaches whatever IPv4 it embeds.
  if (
    b[0] === 0 &&
    b[1] === 0x64 &&
    b[2] === 0xff &&
    b[3] === 0x9b &&
    b.slice(4, 12).every((x) => x === 0)
  )
    return classifyV4(b.slice(12));
  return 'public';
}

/** The class of a literal IP address; null when the text is not one. */
export function classifyIp(text: string): AddressClass | null {
  const v4 = parseIpv4(text);
  if (v4) return classifyV4(v4);
  const v6 = parseIpv6(text);
  return v6 ? classifyV6(v6) : null;
}

/**
 * A name that some resolver reads as an address (`2130706433`, `0x7f.1`, `0177.0.0.1`,
 * `127.1`): glibc's inet_aton takes these, so they are refused rather than guessed at.
 */
const numericName = (host: string): boolean =>
  host
    .replace(/\.$/, '')
    .split('.')
    .every((label) => /^(0x[0-9a-f]*|[0-9]+)$/i.test(label));

/** Names that stand for this machine whatever DNS says. */
const localName = (host: string): boolean =>
  /^(localhost|localhost\.localdomain|ip6-localhost|ip6-loopback)\.?$/i.test(host) ||
  /\.localhost\.?$/i.test(host);

/** What a node's registrar may use: operators vouch for loopback; tenants get public ranges (and private ones where the install allows). */
export interface AddressPolicy {
  /** Loopback hosts and local sockets: the operator's own machine. */
  local: boolean;
  /** Private ranges (10/8, 172.16/12, 192.168/16, CGNAT, fc00::/7). */
  private: boolean;
  /** Host names as well as literal addresses. */
  names: boolean;
}

/**
 * Why `host` may not be used under `policy` (a sentence naming the reason), or null.
 * Link-local (the cloud's metadata service), unspecified (every interface) and multicast
 * addresses are refused for everyone.
 */
export function hostRefusal(host: string, policy: AddressPolicy): string | null {
  const kind = classifyIp(host);
  if (kind === null) {
    if (numericName(host))
      return `${host} is an address in a non-standard form; write it as a dotted quad such as 203.0.113.7`;
    if (localName(host)) {
      return policy.local
        ? null
        : `${host} is this machine (loopback): only the platform's operator registers local engines`;
    }
    if (!policy.names)
      return `${host} is a name: give the node's literal IP address, which a re-pointed name cannot change`;
    return null;
  }
  switch (kind) {
    case 'public':
      return null;
    case 'loopback':
      return policy.local
        ? null
        : `${host} is a loopback address, the control plane's own machine: only the platform's operator registers local engines`;
    case 'private':
      return policy.private
        ? null
        : `${host} is a private address: this installation accepts only public addresses from tenants`;
    case 'link-local':
      return `${host} is a link-local address (the cloud's metadata service lives there); never a node`;
    case 'unspecified':
      return `${host} is the unspecified address (every interface); give the node's own address`;
    case 'multicast':
      return `${host} is a multicast address; give the node's own address`;
  }
}

/** The host part of a docker host URL (`tcp://h:2376`, `ssh://u@h:22`); null for unix://. */
export function dockerHostHost(dockerHost: string): string | null {
  const m = /^(?:tcp|ssh):\/\/(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+)/.exec(dockerHost);
  return m ? m[1]!.replace(/^\[(.*)\]$/, '$1') : null;
}

/**
 * Why a node may not be registered as given under `policy`, as field errors: a local
 * socket or a loopback engine only by the operator, and `address` (where the edge and the
 * probe connect) checked like any other host.
 */
export function nodeAddressProblems(
  input: { dockerHost: string; address: string },
  policy: AddressPolicy,
): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  if (input.dockerHost.startsWith('unix://')) {
    if (!policy.local) {
      problems.push({
        field: 'dockerHost',
        message:
          "unix:// is a socket on the control plane's own machine: only the platform's operator registers it; register a remote engine with tcp://host:2376 and tls, or ssh://user@host",
      });
    }
  } else {
    const host = dockerHostHost(input.dockerHost);
    const refusal = host === null ? 'has no host' : hostRefusal(host, { ...policy, names: true });
    if (refusal) problems.push({ field: 'dockerHost', message: refusal });
  }
  const refusal = hostRefusal(input.address, policy);
  if (refusal) problems.push({ field: 'address', message: refusal });
  return problems;
}

/** `host:port`, with an IPv6 host in brackets. */
export const hostPort = (host: string, port: number): string =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/** The refusal of an engine answer, or of a node's address, as the release's reason. */
export class UntrustedBinding extends Error {}

/**
 * Where the edge and the health probe reach a container: the node's registered address
 * and the host port the engine published the container's port on. The engine only picks
 * the port: its answer counts only for the requested container port, bound on exactly the
 * requested address, at an integer port in 1..65535. Anything else, or a node address the
 * policy refuses (loopback only for an operator's node), throws UntrustedBinding.
 * @example upstreamOf(node, info, 8080, policy) // '203.0.113.7:32768'
 */
export function upstreamOf(
  node: Pick<NodeRecord, 'name' | 'address' | 'operatorRegistered'> &
    Partial<Pick<NodeRecord, 'kind'>>,
  info: Pick<ContainerInfo, 'name' | 'ports'>,
  containerPort: number,
  policy: { privateAddresses: boolean },
): string {
  const rule = {
    local: node.operatorRegistered,
    private: node.operatorRegistered || policy.privateAddresses,
    // A name is resolved by whoever connects, so its answer could be anything: literal only.
    names: false,
  };
  const refusal = hostRefusal(node.address, rule);
  if (refusal)
    throw new UntrustedBinding(`node ${node.name} cannot receive traffic: address ${refusal}`);
  if (node.kind === 'swarm') return swarmUpstreamOf(node, info, containerPort, rule);
  const bindings: PublishedPort[] = (info.ports ?? []).filter(
    (p) => p.containerPort === containerPort,
  );
  const shown = bindings.map((b) => `${b.hostIp}:${b.hostPort}`).join(', ') || 'nothing';
  const match = bindings.find((b) => b.hostIp === node.address);
  if (!match) {
    throw new UntrustedBinding(
      `node ${node.name}'s engine published container ${info.name} port ${containerPort} on ${shown}, not on the node's address ${node.address}: refused, nothing routed`,
    );
  }
  const port = /^[1-9][0-9]{0,4}$/.test(String(match.hostPort)) ? Number(match.hostPort) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new UntrustedBinding(
      `node ${node.name}'s engine answered host port ${JSON.stringify(match.hostPort)} for container ${info.name}: not a port in 1..65535, refused`,
    );
  }
  return hostPort(node.address, port);
}

/**
 * A Swarm task's upstream: its member's address (the manager's word: the cluster's
 * members are not registered one by one) held to the same rule as the registrar's own
 * address, so a lying manager cannot point the edge or the probe at loopback, link-local
 * or, for a tenant, a private range; and an integer host port of the container's port.
 */
function swarmUpstreamOf(
  node: Pick<NodeRecord, 'name'>,
  info: Pick<ContainerInfo, 'name' | 'ports'>,
  containerPort: number,
  rule: AddressPolicy,
): string {
  const bindings = (info.ports ?? []).filter((p) => p.containerPort === containerPort);
  const shown = bindings.map((b) => `${b.hostIp}:${b.hostPort}`).join(', ') || 'nothing';
  const match = bindings.find((b) => hostRefusal(b.hostIp, rule) === null);
  if (!match)
    throw new UntrustedBinding(
      `swarm ${node.name}'s manager placed task ${info.name} port ${containerPort} at ${shown}: no member address this node may send traffic to, refused, nothing routed`,
    );
  const port = /^[1-9][0-9]{0,4}$/.test(String(match.hostPort)) ? Number(match.hostPort) : NaN;
  if (!(port >= 1 && port <= 65535))
    throw new UntrustedBinding(
      `swarm ${node.name}'s manager answered host port ${JSON.stringify(match.hostPort)} for task ${info.name}: not a port in 1..65535, refused`,
    );
  return hostPort(match.hostIp, port);
}
