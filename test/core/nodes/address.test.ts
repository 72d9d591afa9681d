import { describe, expect, it } from 'vitest';
import {
  classifyIp,
  dockerHostHost,
  hostRefusal,
  nodeAddressProblems,
  upstreamOf,
  UntrustedBinding,
} from '../../../core/nodes/address.ts';
import type { PublishedPort } from '../../../core/ports.ts';

const tenant = { local: false, private: false, names: false };
const team = { local: false, private: true, names: false };
const operator = { local: true, private: true, names: true };

describe('classifyIp', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::127.0.0.1', 'loopback'],
    ['169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['10.0.0.9', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fd00::1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link-local'],
    ['203.0.113.7', 'public'],
    ['172.32.0.1', 'public'],
    ['8.8.8.8', 'public'],
    ['2001:db8::1', 'public'],
  ])('%s is %s', (ip, kind) => expect(classifyIp(ip)).toBe(kind));

  it.each(['0127.0.0.1', '127.1', '256.0.0.1', 'localhost', '1:2:3:4:5:6:7:8:9', ':::1', ''])(
    '%s is no literal address',
    (text) => expect(classifyIp(text)).toBeNull(),
  );
});

describe('hostRefusal', () => {
  it('refuses link-local, unspecified and multicast to everyone, the operator too', () => {
    for (const host of ['169.254.169.254', '0.0.0.0', '::', 'fe80::1', '224.0.0.1']) {
      expect(hostRefusal(host, operator), host).not.toBeNull();
    }
    expect(hostRefusal('169.254.169.254', operator)).toContain('link-local');
    expect(hostRefusal('0.0.0.0', operator)).toContain('unspecified');
  });

  it('leaves loopback and local names to the operator', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost', 'LOCALHOST', 'api.localhost']) {
      expect(hostRefusal(host, tenant), host).toMatch(/loopback/);
      expect(hostRefusal(host, operator), host).toBeNull();
    }
  });

  it('refuses private ranges where tenants may not use them', () => {
    expect(hostRefusal('10.0.0.9', tenant)).toContain('private');
    expect(hostRefusal('10.0.0.9', team)).toBeNull();
    expect(hostRefusal('203.0.113.7', tenant)).toBeNull();
  });

  it('refuses names that resolvers read as addresses, and names where only literals do', () => {
    for (const host of ['2130706433', '0x7f.1', '0177.0.0.1', '127.1']) {
      expect(hostRefusal(host, operator), host).toContain('non-standard form');
    }
    expect(hostRefusal('web-1.example.com', tenant)).toContain('literal IP');
    expect(hostRefusal('web-1.example.com', { ...tenant, names: true })).toBeNull();
  });
});

describe('nodeAddressProblems', () => {
  it('names dockerHost for a local socket or a loopback engine a tenant gives', () => {
    expect(
      nodeAddressProblems(
        { dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        tenant,
      ),
    ).toEqual([
      { field: 'dockerHost', message: expect.stringContaining("only the platform's operator") },
      { field: 'address', message: expect.stringContaining('loopback') },
    ]);
    expect(
      nodeAddressProblems({ dockerHost: 'tcp://localhost:2375', address: '203.0.113.7' }, tenant),
    ).toEqual([{ field: 'dockerHost', message: expect.stringContaining('loopback') }]);
    expect(
      nodeAddressProblems(
        { dockerHost: 'ssh://root@169.254.169.254', address: '203.0.113.7' },
        tenant,
      ),
    ).toEqual([{ field: 'dockerHost', message: expect.stringContaining('link-local') }]);
  });

  it('lets a tenant name a remote engine, and the operator the local one', () => {
    expect(
      nodeAddressProblems(
        { dockerHost: 'tcp://docker.example.com:2376', address: '203.0.113.7' },
        tenant,
      ),
    ).toEqual([]);
    expect(
      nodeAddressProblems(
        { dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        operator,
      ),
    ).toEqual([]);
    expect(
      nodeAddressProblems(
        { dockerHost: 'unix:///var/run/docker.sock', address: '0.0.0.0' },
        operator,
      ),
    ).toEqual([{ field: 'address', message: expect.stringContaining('unspecified') }]);
  });

  it('reads the host out of tcp:// and ssh:// docker hosts', () => {
    expect(dockerHostHost('tcp://10.0.0.5:2376')).toBe('10.0.0.5');
    expect(dockerHostHost('ssh://deploy@web-1.example.com:2222')).toBe('web-1.example.com');
    expect(dockerHostHost('unix:///var/run/docker.sock')).toBeNull();
  });
});

describe('upstreamOf', () => {
  const node = { name: 'web-1', address: '203.0.113.7', operatorRegistered: false };
  const info = (ports: PublishedPort[]) => ({ name: 'sdo-web', ports });
  const policy = { privateAddresses: false };
  const refused = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(UntrustedBinding);
      return (e as Error).message;
    }
    throw new Error('not refused');
  };

  it("is the node's address and the port the engine bound where it was asked", () => {
    expect(
      upstreamOf(
        node,
        info([
          { containerPort: 8080, hostIp: '169.254.169.254', hostPort: '80' },
          { containerPort: 8080, hostIp: '203.0.113.7', hostPort: '32768' },
        ]),
        8080,
        policy,
      ),
    ).toBe('203.0.113.7:32768');
  });

  it('refuses an answer bound elsewhere, for another port, or at no valid port', () => {
    expect(
      refused(() =>
        upstreamOf(
          node,
          info([{ containerPort: 8080, hostIp: '169.254.169.254', hostPort: '80' }]),
          8080,
          policy,
        ),
      ),
    ).toContain('not on the node');
    expect(
      refused(() =>
        upstreamOf(
          node,
          info([{ containerPort: 9000, hostIp: '203.0.113.7', hostPort: '80' }]),
          8080,
          policy,
        ),
      ),
    ).toContain('on nothing');
    for (const hostPort of ['0', '65536', '80/tcp', '1e3', ' 80', '080', '']) {
      expect(
        refused(() =>
          upstreamOf(
            node,
            info([{ containerPort: 8080, hostIp: '203.0.113.7', hostPort }]),
            8080,
            policy,
          ),
        ),
        hostPort,
      ).toContain('not a port');
    }
  });

  it("refuses a tenant node's loopback or private address, not an operator's", () => {
    const at = (address: string, operatorRegistered: boolean, privateAddresses = false) =>
      upstreamOf(
        { name: 'n', address, operatorRegistered },
        info([{ containerPort: 80, hostIp: address, hostPort: '3000' }]),
        80,
        { privateAddresses },
      );
    expect(refused(() => at('127.0.0.1', false))).toContain('loopback');
    expect(refused(() => at('10.0.0.5', false))).toContain('private');
    expect(at('10.0.0.5', false, true)).toBe('10.0.0.5:3000');
    expect(at('127.0.0.1', true)).toBe('127.0.0.1:3000');
    expect(refused(() => at('169.254.169.254', true))).toContain('link-local');
    expect(refused(() => at('node.example.com', false))).toContain('literal IP');
  });

  it("takes a Swarm task's member address from the manager, held to the registrar's rule", () => {
    const swarm = { ...node, name: 'cluster', kind: 'swarm' as const };
    // The task runs on another member than the registered manager: its address serves.
    expect(
      upstreamOf(
        swarm,
        info([{ containerPort: 8080, hostIp: '198.51.100.4', hostPort: '30001' }]),
        8080,
        policy,
      ),
    ).toBe('198.51.100.4:30001');
    // A lying manager cannot send the edge or the probe to the metadata service, loopback
    // or, for a tenant, a private range.
    for (const [hostIp, why] of [
      ['169.254.169.254', 'no member address'],
      ['127.0.0.1', 'no member address'],
      ['10.0.0.9', 'no member address'],
      ['0.0.0.0', 'no member address'],
      ['', 'no member address'],
    ] as const)
      expect(
        refused(() =>
          upstreamOf(
            swarm,
            info([{ containerPort: 8080, hostIp, hostPort: '30001' }]),
            8080,
            policy,
          ),
        ),
        hostIp,
      ).toContain(why);
    expect(
      upstreamOf(
        { ...swarm, address: '10.213.0.17', operatorRegistered: true },
        info([{ containerPort: 8080, hostIp: '10.213.0.18', hostPort: '30001' }]),
        8080,
        policy,
      ),
    ).toBe('10.213.0.18:30001');
    expect(
      refused(() =>
        upstreamOf(
          swarm,
          info([{ containerPort: 8080, hostIp: '198.51.100.4', hostPort: '0' }]),
          8080,
          policy,
        ),
      ),
    ).toContain('not a port');
  });
});
