import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isPrivateAddress, NodeHttpSender } from '../../adapters/http/node.ts';
import { runHttpSenderContract } from '../contracts/http-sender.case.ts';

runHttpSenderContract({
  make: async () => {
    let status = 200;
    const received: { body: string; headers: Record<string, string> }[] = [];
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ body, headers: req.headers as Record<string, string> });
        res.writeHead(status).end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    return {
      sender: new NodeHttpSender(),
      url: `http://127.0.0.1:${port}/hook`,
      deadUrl: 'http://127.0.0.1:1/hook',
      answer: (s) => (status = s),
      received: () => received,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  },
});

describe('NodeHttpSender', () => {
  it('gives up on an endpoint that never answers, within its timeout', async () => {
    const server = http.createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const started = Date.now();
    const res = await new NodeHttpSender().post(`http://127.0.0.1:${port}/`, '{}', {}, 300);
    expect(res.status).toBeNull();
    expect(res.error).toMatch(/300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('does not follow redirects', async () => {
    const server = http.createServer((_req, res) =>
      res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end(),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    expect(await new NodeHttpSender().post(`http://127.0.0.1:${port}/`, '{}', {}, 2_000)).toEqual({
      status: 302,
      error: null,
    });
    await new Promise<void>((r) => server.close(() => r()));
  });

  describe('with refusePrivateAddresses (the cloud sender)', () => {
    const guarded = new NodeHttpSender({ refusePrivateAddresses: true });

    it('never opens a socket to a name that resolves to loopback (DNS rebinding)', async () => {
      let hits = 0;
      const server = http.createServer((_req, res) => {
        hits++;
        res.end();
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const { port } = server.address() as AddressInfo;
      // The same receiver is reachable without the guard, so the refusal below is the guard's.
      expect(
        (await new NodeHttpSender().post(`http://localhost:${port}/`, '{}', {}, 2_000)).status,
      ).toBe(200);
      expect(hits).toBe(1);
      const res = await guarded.post(`http://localhost:${port}/`, '{}', {}, 2_000);
      expect(res).toEqual({
        status: null,
        error: expect.stringMatching(
          /^refused: localhost resolves to the private address (127\.0\.0\.1|::1)$/,
        ),
      });
      expect(hits).toBe(1);
      await new Promise<void>((r) => server.close(() => r()));
    });

    it.each([
      'http://127.0.0.1:9/',
      'http://[::1]:9/',
      'http://[::ffff:127.0.0.1]:9/',
      'http://169.254.169.254/latest/meta-data/',
      'http://2130706433:9/',
      'http://10.1.2.3/',
    ])('refuses the literal address in %s before connecting', async (url) => {
      const res = await guarded.post(url, '{}', {}, 2_000);
      expect(res.status).toBeNull();
      expect(res.error).toMatch(/^refused: .* resolves to the private address/);
    });

    it('judges addresses by range, IPv4-mapped IPv6 as its IPv4', () => {
      for (const a of [
        '127.0.0.1',
        '10.0.0.1',
        '172.16.5.4',
        '172.31.255.255',
        '192.168.1.1',
        '169.254.169.254',
        '100.64.0.1',
        '0.0.0.0',
        '::1',
        '::',
        'fd00::1',
        'fe80::1',
        '::ffff:10.0.0.1',
        '::ffff:a9fe:a9fe',
        'not-an-ip',
      ]) {
        expect(isPrivateAddress(a), a).toBe(true);
      }
      for (const a of [
        '203.0.113.10',
        '8.8.8.8',
        '172.32.0.1',
        '100.128.0.1',
        '2001:db8::1',
        '2606:4700::1111',
        '::ffff:8.8.8.8',
      ]) {
        expect(isPrivateAddress(a), a).toBe(false);
      }
    });
  });
});
