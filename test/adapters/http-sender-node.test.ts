import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { classifyAddress, isPrivateAddress, NodeHttpSender } from '../../adapters/http/node.ts';
import { runHttpSenderContract } from '../contracts/http-sender.case.ts';

// Receivers listen on loopback, which only a test's sender accepts (acceptLoopback).
const host = '127.0.0.1';
const toTestReceivers = () => new NodeHttpSender({ acceptLoopback: true });

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
    await new Promise<void>((r) => server.listen(0, host, r));
    const { port } = server.address() as AddressInfo;
    return {
      sender: toTestReceivers(),
      url: `http://${host}:${port}/hook`,
      deadUrl: `http://${host}:1/hook`,
      answer: (s) => (status = s),
      received: () => received,
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  },
});

describe('NodeHttpSender', () => {
  it('gives up on an endpoint that never answers, within its timeout', async () => {
    const server = http.createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, host, r));
    const { port } = server.address() as AddressInfo;
    const started = Date.now();
    const res = await toTestReceivers().post(`http://${host}:${port}/`, '{}', {}, 300);
    expect(res.status).toBeNull();
    expect(res.error).toMatch(/300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('does not follow redirects', async () => {
    const server = http.createServer((_req, res) =>
      res.writeHead(302, { location: `http://${host}:1/` }).end(),
    );
    await new Promise<void>((r) => server.listen(0, host, r));
    const { port } = server.address() as AddressInfo;
    expect(await toTestReceivers().post(`http://${host}:${port}/`, '{}', {}, 2_000)).toEqual({
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
      const res = await guarded.post(`http://localhost:${port}/`, '{}', {}, 2_000);
      expect(res).toEqual({
        status: null,
        error: expect.stringMatching(
          /^refused: localhost \((127\.0\.0\.1|::1)\) is a loopback address$/,
        ),
      });
      expect(hits).toBe(0);
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
      expect(res.error).toMatch(/^refused: .* is a (loopback|link-local|private) address$/);
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

  describe('without refusePrivateAddresses (a self-hosted sender)', () => {
    it.each([
      ['http://127.0.0.1:2019/stop', 'loopback'],
      ['http://[::1]:2019/stop', 'loopback'],
      ['http://169.254.169.254/latest/meta-data/', 'link-local'],
      ['http://0.0.0.0:2019/stop', 'unspecified'],
    ])('still refuses %s (%s)', async (url, kind) => {
      const sender = new NodeHttpSender();
      expect(await sender.refusal(url)).toMatch(new RegExp(`is an? ${kind} address$`));
      expect((await sender.post(url, '{}', {}, 2_000)).error).toMatch(/^refused: /);
    });

    it('accepts a private address, but never the platform own endpoints', async () => {
      let hits = 0;
      const server = http.createServer((_req, res) => {
        hits++;
        res.end();
      });
      await new Promise<void>((r) => server.listen(0, host, r));
      const { port } = server.address() as AddressInfo;
      const named = (address: string) => async () => [{ address, family: 4 }];
      // Judged only: no test sends traffic to a private address.
      expect(
        await new NodeHttpSender({ resolve: named('10.20.30.40') }).refusal(
          `http://receiver.internal:${port}/`,
        ),
      ).toBeNull();
      const free = new NodeHttpSender({ resolve: named(host), acceptLoopback: true });
      expect((await free.post(`http://receiver.internal:${port}/`, '{}', {}, 2_000)).status).toBe(
        200,
      );
      // The edge's admin API named by a name that resolves to the receiver's address: refused
      // even by a sender that accepts loopback.
      const guardedOwn = new NodeHttpSender({
        refusedEndpoints: [`caddy.internal:${port}`],
        resolve: named(host),
        acceptLoopback: true,
      });
      expect(await guardedOwn.refusal(`http://receiver.internal:${port}/`)).toBe(
        `receiver.internal (${host}):${port} is the control plane or its edge's admin API`,
      );
      expect(
        (await guardedOwn.post(`http://receiver.internal:${port}/`, '{}', {}, 2_000)).error,
      ).toMatch(/control plane/);
      // Listening on every interface covers every address of the machine, loopback included.
      const wildcard = new NodeHttpSender({
        refusedEndpoints: [`0.0.0.0:${port}`],
        acceptLoopback: true,
      });
      expect((await wildcard.post(`http://${host}:${port}/`, '{}', {}, 2_000)).error).toMatch(
        /control plane/,
      );
      // Another port of the same address is not the platform's.
      expect(await guardedOwn.refusal(`http://receiver.internal:${port + 1}/`)).toBeNull();
      expect(hits).toBe(1);
      await new Promise<void>((r) => server.close(() => r()));
    });

    it('lets a name that does not resolve yet be created, and refuses to deliver to it', async () => {
      const nowhere = new NodeHttpSender({
        resolve: async () => {
          throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        },
      });
      expect(await nowhere.refusal('https://hooks.later.example/h')).toBeNull();
      expect((await nowhere.post('https://hooks.later.example/h', '{}', {}, 2_000)).error).toBe(
        'refused: hooks.later.example does not resolve: not found',
      );
    });

    it('names the range of each address', () => {
      expect(
        [
          '127.0.0.5',
          '::ffff:127.0.0.1',
          'fe80::1',
          '169.254.1.1',
          '10.0.0.1',
          'fd00::1',
          '8.8.8.8',
        ].map(classifyAddress),
      ).toEqual(['loopback', 'loopback', 'link-local', 'link-local', 'private', 'private', null]);
    });
  });
});
