/**
 * The CLI sends a read once more when the connection was closed or reset before any
 * response byte (what a Caddy reload does to a few connections in front of the API), and
 * never a write. A loopback server stands in for the edge: it drops the first connections
 * it is told to, after reading their request, the way Caddy's old server does.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/client.ts';
import { CliError } from '../../cli/config.ts';

describe('the CLI client after a connection dropped before the answer', () => {
  let server: http.Server;
  let client: ApiClient;
  let seen: string[] = [];
  let drop = 0;
  let how: 'reset' | 'close' = 'reset';

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        if (drop > 0) {
          drop--;
          if (how === 'reset') req.socket.resetAndDestroy();
          else req.socket.destroy();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    client = new ApiClient({ url: `http://127.0.0.1:${port}`, token: 'sdo_test' });
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  beforeEach(() => {
    seen = [];
    drop = 0;
    how = 'reset';
  });

  it('sends a GET once more after a reset, and answers', async () => {
    drop = 1;
    expect(await client.call('GET', '/api/projects')).toEqual({ ok: true });
    expect(seen).toEqual(['GET /api/projects', 'GET /api/projects']);
  });

  it('sends a GET once more after a close without an answer', async () => {
    drop = 1;
    how = 'close';
    expect(await client.call('GET', '/api/projects')).toEqual({ ok: true });
    expect(seen).toHaveLength(2);
  });

  it('gives up after the second try: an outage is reported, not hidden', async () => {
    drop = 5;
    await expect(client.call('GET', '/api/projects')).rejects.toThrow(
      /cannot reach the API at http:\/\/127\.0\.0\.1:\d+: (ECONNRESET|UND_ERR_SOCKET)/,
    );
    expect(seen).toHaveLength(2);
  });

  it('never sends a POST twice', async () => {
    drop = 1;
    const failed = await client.call('POST', '/api/projects', { name: 'shop' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(failed).toBeInstanceOf(CliError);
    expect(seen).toEqual(['POST /api/projects']);
  });
});
