/**
 * The HTTP/1.0 log read (adapters/runtime/docker-http10.ts) against a real HTTP server on a
 * unix socket, answering as the Engine does: a 200 whose body streams until the connection
 * closes, and a 404 with the Engine's JSON message. The read against the real Engine is in
 * test/integration/service-logs.test.ts.
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineHttpError, getOverHttp10 } from '../../adapters/runtime/docker-http10.ts';

describe('getOverHttp10', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  const seen: { method?: string; url?: string; version?: string }[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdo-http10-'));
    socketPath = join(dir, 'engine.sock');
    server = http.createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, version: req.httpVersion });
      if (req.url?.startsWith('/containers/gone/'))
        return void res
          .writeHead(404, { 'content-type': 'application/json' })
          .end(JSON.stringify({ message: 'No such container: gone' }));
      if (req.url?.startsWith('/containers/endless/')) {
        res.writeHead(200);
        const timer = setInterval(() => res.write('tick\n'), 5);
        res.on('close', () => clearInterval(timer));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/vnd.docker.multiplexed-stream' });
      for (let k = 0; k < 1000; k++) res.write(`line ${k}\n`);
      res.end();
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('asks as HTTP/1.0 and answers the whole body, without chunk framing', async () => {
    const body: Buffer[] = [];
    for await (const c of await getOverHttp10(
      socketPath,
      '/containers/abc/logs?stdout=true&timestamps=true',
      new AbortController().signal,
    ))
      body.push(c);
    const text = Buffer.concat(body).toString();
    expect(text).toBe(Array.from({ length: 1000 }, (_, k) => `line ${k}\n`).join(''));
    expect(seen.at(-1)).toEqual({
      method: 'GET',
      url: '/containers/abc/logs?stdout=true&timestamps=true',
      version: '1.0',
    });
  });

  it('throws the status and the engine’s message for anything but 200', async () => {
    const failed = await getOverHttp10(
      socketPath,
      '/containers/gone/logs',
      new AbortController().signal,
    ).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(EngineHttpError);
    expect(failed).toMatchObject({
      statusCode: 404,
      message: 'engine answered 404: No such container: gone',
    });
  });

  it('ends the read when its signal aborts', async () => {
    const controller = new AbortController();
    let chunks = 0;
    const read = (async () => {
      try {
        for await (const _ of await getOverHttp10(
          socketPath,
          '/containers/endless/logs',
          controller.signal,
        ))
          if (++chunks === 3) controller.abort();
      } catch {
        /* a destroyed socket may end its iterator with an error; either way it ends */
      }
    })();
    await read;
    expect(controller.signal.aborted).toBe(true);
    expect(chunks).toBeGreaterThanOrEqual(3);
  });
});
