// WebSocket echo server with no dependencies (node:http + RFC 6455 framing by hand).
//   GET /        "selfdevop-test ws <APP_VERSION>"
//   GET /health  200 "ok"
//   WebSocket on any path: each text message m is answered with "<APP_VERSION>:<m>".
import http from 'node:http';
import crypto from 'node:crypto';

const version = process.env.APP_VERSION ?? 'v0';
const port = Number(process.env.PORT ?? 8080);
const sockets = new Set();

function frame(opcode, payload) {
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 255])
        : Buffer.concat([
            Buffer.from([0x80 | opcode, 127]),
            (() => {
              const b = Buffer.alloc(8);
              b.writeBigUInt64BE(BigInt(len));
              return b;
            })(),
          ]);
  return Buffer.concat([head, payload]);
}

const server = http.createServer((req, res) => {
  if (req.url === '/health') return res.end('ok\n');
  res.end(`selfdevop-test ws ${version}\n`);
});

server.on('upgrade', (req, socket) => {
  const key = req.headers['sec-websocket-key'];
  if (!key) return socket.destroy();
  const accept = crypto
    .createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  sockets.add(socket);
  socket.on('close', () => sockets.delete(socket));
  socket.on('error', () => sockets.delete(socket));
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0] & 15;
      const masked = (buf[1] & 128) !== 0;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (buf.length < off + len) return;
      const payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
      buf = buf.subarray(off + len);
      if (opcode === 1)
        socket.write(frame(1, Buffer.from(`${version}:${payload.toString('utf8')}`)));
      else if (opcode === 9) socket.write(frame(10, payload));
      else if (opcode === 8) {
        socket.end(frame(8, payload.subarray(0, 2)));
        return;
      }
    }
  });
});

// Why: as PID 1 node gets SIGTERM from `docker stop`; close sockets with 1001 (going away)
// so clients see a clean close and the container stops without waiting out the grace.
process.on('SIGTERM', () => {
  console.log(`ws ${version}: SIGTERM, closing ${sockets.size} sockets`);
  for (const s of sockets) s.end(frame(8, Buffer.from([0x03, 0xe9])));
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});

server.listen(port, () => console.log(`ws ${version} listening on :${port}`));
