// selfdevop-test/app-ka: the busybox app's contract (test-images/app/app.sh) on node:http,
// which keeps connections open. busybox httpd closes every connection, so behind the edge
// each proxied request was a new upstream connection (a dial, a DNS question for the SRV
// target, a fork in the container); here the edge reuses its connections as it would to
// a real app.
//   GET /            "selfdevop-test app <APP_VERSION>"
//   GET /version     APP_VERSION
//   GET /health      200 "ok" (404 with APP_MODE=unhealthy, or for HEALTH_DELAY_SECONDS)
//   GET /env/<NAME>  the value of environment variable NAME (404 if unset)
import http from 'node:http';

const version = process.env.APP_VERSION ?? 'v0';
const mode = process.env.APP_MODE ?? 'normal';
const port = Number(process.env.PORT ?? 8080);
const healthAt = Date.now() + Number(process.env.HEALTH_DELAY_SECONDS ?? 0) * 1000;
// Why longer than the proxy's idle timeout (Caddy: 2 min): the client side then closes an
// idle connection first, never this side while a request is already on its way over it.
const keepAliveMs = Number(process.env.KEEPALIVE_SECONDS ?? 150) * 1000;

if (mode === 'crash') {
  console.error(`app ${version}: crashing on purpose (APP_MODE=crash)`);
  process.exit(1);
}

let stopping = false;
const send = (res, status, body) => {
  // While stopping, each answer ends its connection, so none is left idle to be cut.
  if (stopping) res.setHeader('connection', 'close');
  res.writeHead(status, {
    'content-type': 'text/plain',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
};

const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/' || path === '/index.html')
    return send(res, 200, `selfdevop-test app ${version}\n`);
  if (path === '/version') return send(res, 200, `${version}\n`);
  if (path === '/health')
    return mode !== 'unhealthy' && Date.now() >= healthAt
      ? send(res, 200, 'ok\n')
      : send(res, 404, 'not found\n');
  if (path.startsWith('/env/')) {
    const value = process.env[decodeURIComponent(path.slice(5))];
    return value === undefined ? send(res, 404, 'not found\n') : send(res, 200, value);
  }
  send(res, 404, 'not found\n');
});
server.keepAliveTimeout = keepAliveMs;

// Why: as PID 1 node ignores SIGTERM unless it handles it, and `docker stop` would wait out
// the grace. In-flight requests finish; idle connections close now, busy ones after their answer.
const stop = () => {
  if (stopping) return;
  stopping = true;
  console.log(`app ${version}: SIGTERM, stopping`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 5000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

server.listen(port, () =>
  console.log(`app ${version} listening on :${port} (mode ${mode}, keep-alive)`),
);
