// A Socket.IO app whose replicas fan out through Redis (@socket.io/redis-adapter), as the
// blueprint's realtime apps do. Its dependencies come from package-lock.json, installed on the
// host and copied in by scripts/build-test-images.sh.
//   GET /health    200 "ok" once both Redis connections are ready, else 503 with the reason
//   GET /hostname  this replica's hostname (the container's), to tell replicas apart
//   GET /          "selfdevop-test socketio <APP_VERSION>"
//   Socket.IO:     on connect the server emits `hello` {hostname, version}; a client's
//                  `broadcast` (msg, ack) is emitted as `broadcast` {from, msg} to every client
//                  of every replica (through Redis), and acked with {hostname}.
// REDIS_ENV names the variable holding the Redis URL (default REDIS_URL, what a selfdevop
// link of a Redis data service injects).
import http from 'node:http';
import os from 'node:os';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { Server } from 'socket.io';

const version = process.env.APP_VERSION ?? 'v0';
const port = Number(process.env.PORT ?? 8080);
const urlVar = process.env.REDIS_ENV || 'REDIS_URL';
const redisUrl = process.env[urlVar];
const hostname = os.hostname();
let adapterReady = false;

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    const why = !redisUrl
      ? `${urlVar} is not set`
      : !(adapterReady && pub.isReady && sub.isReady)
        ? 'redis not connected'
        : null;
    res.statusCode = why ? 503 : 200;
    return res.end(why ? `${why}\n` : 'ok\n');
  }
  if (req.url === '/hostname') return res.end(`${hostname}\n`);
  res.end(`selfdevop-test socketio ${version}\n`);
});

// Why no URL means no adapter: the app must be visibly unhealthy without its link, so a
// release that lost the link fails its health gate instead of serving replicas that cannot
// hear each other.
const pub = createClient({ url: redisUrl ?? 'redis://unset.invalid:6379' });
const sub = pub.duplicate();
for (const [name, c] of [
  ['pub', pub],
  ['sub', sub],
]) {
  c.on('error', (e) => console.error(`socketio ${version}: redis ${name}: ${e.message}`));
}

const io = new Server(server, { pingInterval: 5000, pingTimeout: 5000 });
io.on('connection', (socket) => {
  socket.emit('hello', { hostname, version });
  socket.on('broadcast', (msg, ack) => {
    io.emit('broadcast', { from: hostname, msg });
    if (typeof ack === 'function') ack({ hostname });
  });
});

if (redisUrl) {
  // Connect in the background: node-redis retries by itself, and /health says when ready.
  Promise.all([pub.connect(), sub.connect()]).then(
    () => {
      io.adapter(createAdapter(pub, sub));
      adapterReady = true;
      console.log(`socketio ${version}: redis adapter ready on ${hostname}`);
    },
    (e) => console.error(`socketio ${version}: redis: ${e.message}`),
  );
} else console.error(`socketio ${version}: ${urlVar} is not set; /health answers 503`);

// Why: as PID 1 node gets SIGTERM from `docker stop`; close clients and Redis and exit at
// once instead of waiting out the grace period.
process.on('SIGTERM', () => {
  console.log(`socketio ${version}: SIGTERM, closing ${io.engine.clientsCount} clients`);
  io.close();
  for (const c of [pub, sub]) if (c.isOpen) c.disconnect().catch(() => undefined);
  setTimeout(() => process.exit(0), 500).unref();
});

server.listen(port, () => console.log(`socketio ${version} listening on :${port}`));
