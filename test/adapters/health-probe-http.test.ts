import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { runHealthProbeContract } from '../contracts/health-probe.case.ts';

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

/** A real app on loopback: /ok 200, /redirect 302, /fail 500, /hang never answers. */
async function startApp(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/ok') res.end('ok');
    else if (req.url === '/redirect') res.writeHead(302, { location: '/elsewhere' }).end();
    else if (req.url === '/fail') res.writeHead(500).end('boom');
    else if (req.url === '/stream') {
      res.writeHead(200);
      res.write('endless');
    } else if (req.url === '/hang') {
      // never answers
    } else res.writeHead(404).end();
  });
  const port = await listen(server);
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port nothing listens on: bound once, then released. */
async function freePort(): Promise<number> {
  const s = http.createServer();
  const port = await listen(s);
  await new Promise((r) => s.close(r));
  return port;
}

runHealthProbeContract({
  make: async () => {
    const app = await startApp();
    const base = `http://127.0.0.1:${app.port}`;
    return {
      probe: new HttpHealthProbe(),
      urls: {
        ok: `${base}/ok`,
        redirect: `${base}/redirect`,
        serverError: `${base}/fail`,
        hang: `${base}/hang`,
        refused: `http://127.0.0.1:${await freePort()}/health`,
      },
      close: app.close,
    };
  },
});

describe('HttpHealthProbe', () => {
  const probe = new HttpHealthProbe();

  it('does not wait for an endless body once the status is known', async () => {
    const app = await startApp();
    try {
      expect(await probe.check(`http://127.0.0.1:${app.port}/stream`, 1000)).toEqual({
        ok: true,
        status: 200,
        error: null,
      });
    } finally {
      await app.close();
    }
  });

  it('opens a fresh connection per probe (no keep-alive)', async () => {
    const seen = new Set<number | undefined>();
    const headers: (string | undefined)[] = [];
    const counter = http.createServer((req, res) => {
      seen.add(req.socket.remotePort);
      headers.push(req.headers.connection);
      res.end();
    });
    const port = await listen(counter);
    try {
      for (let i = 0; i < 3; i++)
        expect((await probe.check(`http://127.0.0.1:${port}/`, 1000)).ok).toBe(true);
      expect(seen.size).toBe(3);
      expect(headers).toEqual(['close', 'close', 'close']);
    } finally {
      counter.closeAllConnections();
      await new Promise((r) => counter.close(r));
    }
  });

  it('turns a bad url or protocol into an error instead of throwing', async () => {
    expect(await probe.check('not a url', 100)).toEqual({
      ok: false,
      status: null,
      error: 'invalid url: not a url',
    });
    expect(await probe.check('ftp://127.0.0.1/x', 100)).toEqual({
      ok: false,
      status: null,
      error: 'unsupported protocol ftp: in ftp://127.0.0.1/x',
    });
  });
});
