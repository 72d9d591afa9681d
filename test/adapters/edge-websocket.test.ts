import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { aRouteSpec } from '../contracts/edge-router.case.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { available } from '../support/services.ts';

// The zero-drop switch of the deploy engine rests on this: a WebSocket proxied by Caddy
// outlives config reloads (any route change is a full reload) for the route's drain window.

const drainSeconds = 3;

/** A loopback HTTP + WebSocket server that answers and echoes with its own name. */
async function wsUpstream(name: string) {
  const server = http.createServer((_req, res) => res.end(name));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) =>
    socket.on('message', (data) => socket.send(`${name}:${String(data)}`)),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    dial: `127.0.0.1:${port}`,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface HeldSocket {
  socket: WebSocket;
  /** Resolves with Date.now() when the socket closes. */
  closed: Promise<number>;
  echo(text: string): Promise<string>;
}

/** Opens a WebSocket through Caddy for `host` and keeps it. */
async function holdSocket(port: number, host: string): Promise<HeldSocket> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Host: host } });
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const echo = (text: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo of ${text} within 2 s`)), 2000);
      socket.once('message', (data) => {
        clearTimeout(timer);
        resolve(String(data));
      });
      socket.send(text);
    });
  return { socket, closed, echo };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for `p` at most `ms`; 'timeout' when it has not settled by then. */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, sleep(ms).then(() => 'timeout' as const)]);

describe.skipIf(!(await available('caddy')))(
  'WebSockets through Caddy across route changes',
  () => {
    let caddy: TestCaddy;
    let edge: CaddyEdgeRouter;
    const upstreams: Awaited<ReturnType<typeof wsUpstream>>[] = [];
    const held: HeldSocket[] = [];

    beforeAll(async () => {
      caddy = await startCaddy();
      edge = new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName });
      upstreams.push(await wsUpstream('A'), await wsUpstream('B'), await wsUpstream('C'));
    });

    afterEach(async () => {
      for (const h of held.splice(0)) h.socket.terminate();
      await caddy.reset();
    });

    afterAll(async () => {
      await Promise.all(upstreams.map((u) => u.close()));
      await caddy?.stop();
    });

    const [a, b, c] = [() => upstreams[0]!, () => upstreams[1]!, () => upstreams[2]!];
    const routeX = (dial: string, drain = drainSeconds) =>
      aRouteSpec({
        id: 'route_x',
        hosts: ['x.example.test'],
        upstreams: [dial],
        drainSeconds: drain,
      });
    const routeY = (dial: string) =>
      aRouteSpec({ id: 'route_y', hosts: ['y.example.test'], upstreams: [dial], drainSeconds });
    const hold = async (host: string) => {
      const h = await holdSocket(caddy.httpPort, host);
      held.push(h);
      return h;
    };

    it('survives a change to an unrelated route until the drain window ends', async () => {
      await edge.put(routeX(a().dial));
      await edge.put(routeY(b().dial));
      const ws = await hold('x.example.test');
      expect(await ws.echo('1')).toBe('A:1');

      const changedAt = Date.now();
      await edge.put(routeY(c().dial));
      await sleep(1000);
      expect(ws.socket.readyState).toBe(WebSocket.OPEN);
      expect(await ws.echo('2')).toBe('A:2');

      const closedAt = await within(ws.closed, (drainSeconds + 5) * 1000);
      expect(closedAt).not.toBe('timeout');
      expect((closedAt as number) - changedAt).toBeGreaterThanOrEqual(drainSeconds * 1000 - 300);
    });

    it('keeps the old upstream for an open socket when its route switches, then moves on', async () => {
      await edge.put(routeX(a().dial));
      const before = await hold('x.example.test');
      expect(await before.echo('1')).toBe('A:1');

      const switchedAt = Date.now();
      await edge.put(routeX(b().dial));
      await sleep(1000);
      // The held socket still talks to the old upstream; new traffic already goes to the new one.
      expect(before.socket.readyState).toBe(WebSocket.OPEN);
      expect(await before.echo('2')).toBe('A:2');
      const after = await hold('x.example.test');
      expect(await after.echo('1')).toBe('B:1');

      const closedAt = await within(before.closed, (drainSeconds + 5) * 1000);
      expect(closedAt).not.toBe('timeout');
      expect((closedAt as number) - switchedAt).toBeGreaterThanOrEqual(drainSeconds * 1000 - 300);
      // The socket opened after the switch belongs to the new config and stays.
      expect(after.socket.readyState).toBe(WebSocket.OPEN);
      expect(await after.echo('2')).toBe('B:2');
    });

    it('is cut at once by any reload when the route has no drain window', async () => {
      await edge.put(routeX(a().dial, 0));
      await edge.put(routeY(b().dial));
      const ws = await hold('x.example.test');
      expect(await ws.echo('1')).toBe('A:1');

      await edge.put(routeY(c().dial));
      expect(await within(ws.closed, 1000)).not.toBe('timeout');
    });
  },
);
