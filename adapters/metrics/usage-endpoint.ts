import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';

/**
 * The worker's own scrape endpoint (`GET /metrics`) for the usage it collects and its own
 * process metrics (node checks, job durations): the Compose
 * worker serves no other HTTP, and the usage series name every org's services and nodes,
 * so with a token configured (ALERT_RECEIVER_TOKEN, Prometheus's one credential toward
 * selfdevop) only a bearer of it is answered.
 */
export async function serveUsageMetrics(options: {
  host: string;
  port: number;
  token?: string;
  render: () => string | Promise<string>;
}): Promise<{ address: string; close(): Promise<void> }> {
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : null;
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (expected) {
      const got = Buffer.from(req.headers.authorization ?? '');
      if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
        res
          .writeHead(401, { 'content-type': 'text/plain' })
          .end('only Prometheus scrapes this, with the bearer token ALERT_RECEIVER_TOKEN\n');
        return;
      }
    }
    Promise.resolve()
      .then(options.render)
      .then(
        (text) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
          res.end(text);
        },
        (e: Error) => {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
        },
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const a = server.address() as { address: string; port: number };
  return {
    address: `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
