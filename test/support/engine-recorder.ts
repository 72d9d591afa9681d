import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** One request that went through the recorder to the engine. */
export interface RecordedCall {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * A proxy on a unix socket in front of a real Docker Engine that records the request line
 * and headers of every call, as an engine's debug log or a socket proxy would keep them.
 * Bodies and answers pass through untouched, streams and upgrades included.
 */
export async function startEngineRecorder(
  engineSocket = '/var/run/docker.sock',
): Promise<{ dockerHost: string; calls: RecordedCall[]; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-engine-rec-'));
  const socketPath = path.join(dir, 'docker.sock');
  const calls: RecordedCall[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const upstream = http.request(
      { socketPath: engineSocket, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        // An attach answers with headers, then nothing until the container starts, which
        // the client only does once it has those headers: send them at once.
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, client, head) => {
    calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const engine = net.connect(engineSocket, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      engine.write(`${lines.join('\r\n')}\r\n\r\n`);
      engine.write(head);
      engine.pipe(client);
      client.pipe(engine);
    });
    engine.on('error', () => client.destroy());
    client.on('error', () => engine.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    dockerHost: `unix://${socketPath}`,
    calls,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
