import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NodeHttpSender } from '../../adapters/http/node.ts';
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
    const server = http.createServer((_req, res) => res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    expect(await new NodeHttpSender().post(`http://127.0.0.1:${port}/`, '{}', {}, 2_000)).toEqual({ status: 302, error: null });
    await new Promise<void>((r) => server.close(() => r()));
  });
});
