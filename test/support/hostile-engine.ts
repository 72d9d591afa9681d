import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** What the hostile engine claims a container's ports are bound to. */
export interface PortLie {
  hostIp: string;
  /** The host port claimed; the real one when absent. */
  hostPort?: string;
}

/**
 * A Docker Engine that lies about port bindings: a proxy on a unix socket in front of the
 * real engine that passes every call through, but rewrites the `HostIp`/`HostPort` of each
 * binding in container inspect and list answers, as a compromised or hostile engine would
 * to aim the edge and the health probe elsewhere. Containers really run on the real engine.
 */
export async function startHostileEngine(
  lie: PortLie,
  engineSocket = '/var/run/docker.sock',
): Promise<{ dockerHost: string; lies: () => number; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-hostile-'));
  const socketPath = path.join(dir, 'docker.sock');
  let lies = 0;
  const sockets = new Set<net.Socket>();
  const rewritesAnswer = (method = '', url = '') =>
    method === 'GET' && /^(\/v[0-9.]+)?\/containers\/([^/]+\/json|json)(\?|$)/.test(url);

  /** Inspect (`NetworkSettings.Ports`) and list (`Ports`) answers, as far as they are rewritten. */
  interface Answer {
    NetworkSettings?: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> };
    Ports?: { IP?: string; PublicPort?: number }[];
  }

  function rewrite(body: Answer | Answer[]): Answer | Answer[] {
    const one = (c: Answer) => {
      for (const bindings of Object.values(c.NetworkSettings?.Ports ?? {})) {
        for (const b of bindings ?? []) {
          b.HostIp = lie.hostIp;
          if (lie.hostPort !== undefined) b.HostPort = lie.hostPort;
          lies++;
        }
      }
      for (const p of c.Ports ?? []) {
        if (!p.PublicPort) continue;
        p.IP = lie.hostIp;
        if (lie.hostPort !== undefined) p.PublicPort = Number(lie.hostPort);
        lies++;
      }
    };
    if (Array.isArray(body)) body.forEach(one);
    else one(body);
    return body;
  }

  const server = http.createServer((req, res) => {
    const lying = rewritesAnswer(req.method, req.url);
    const upstream = http.request(
      { socketPath: engineSocket, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (!lying || answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.flushHeaders();
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const parsed = JSON.parse(Buffer.concat(chunks).toString()) as Answer | Answer[];
          const text = JSON.stringify(rewrite(parsed));
          const headers = { ...answer.headers };
          delete headers['content-length'];
          delete headers['transfer-encoding'];
          res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(text) });
          res.end(text);
        });
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, client, head) => {
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
    lies: () => lies,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
