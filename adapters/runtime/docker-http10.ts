/**
 * A log read from a local engine's socket as HTTP/1.0. Over HTTP/1.1 the Engine writes and
 * flushes each log record as its own chunk, so Node's HTTP client parses one chunk and emits
 * one `data` event per line (333,334 for 333,334 lines), most of what a search cost in this
 * process. Asked as HTTP/1.0 the Engine sends the body unchunked and closes at its end; the
 * socket then hands over what the kernel holds, tens of kilobytes at a time. Only for
 * `unix://` engines: a TLS or SSH engine keeps dockerode's client.
 */
import net from 'node:net';

/** A header block longer than this is not the Engine's answer. */
const maxHeaderBytes = 16 * 1024;
/** How much of an error answer is kept for the message. */
const maxErrorBytes = 4 * 1024;

/** An HTTP answer that is not 200: its status and the Engine's message. */
export class EngineHttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.statusCode = statusCode;
  }
}

/**
 * GETs `path` (with its query) on the Engine at `socketPath` and answers its body as chunks,
 * once the status line says 200; any other status is an EngineHttpError with the Engine's
 * message. `signal` ends the connection, and the chunks with it.
 */
export async function getOverHttp10(
  socketPath: string,
  path: string,
  signal: AbortSignal,
): Promise<AsyncIterable<Buffer>> {
  const socket = net.createConnection({ path: socketPath });
  const abort = () => socket.destroy();
  signal.addEventListener('abort', abort, { once: true });
  socket.write(`GET ${path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: selfdevop\r\n\r\n`);
  const chunks = socket[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let head = Buffer.alloc(0);
  let end = -1;
  try {
    while (end === -1) {
      const r = await chunks.next();
      if (r.done) throw new Error(`the engine closed ${path} before answering`);
      head = Buffer.concat([head, r.value]);
      end = head.indexOf('\r\n\r\n');
      if (end === -1 && head.length > maxHeaderBytes)
        throw new Error(`the engine's answer to ${path} has no end of headers`);
    }
  } catch (e) {
    signal.removeEventListener('abort', abort);
    socket.destroy();
    throw e;
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, 16).toString())?.[1]);
  const rest = head.subarray(end + 4);
  if (status !== 200) {
    let body = rest;
    try {
      for (
        let r = await chunks.next();
        !r.done && body.length < maxErrorBytes;
        r = await chunks.next()
      )
        body = Buffer.concat([body, r.value]);
    } finally {
      signal.removeEventListener('abort', abort);
      socket.destroy();
    }
    let message = body.subarray(0, maxErrorBytes).toString().trim();
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      /* a plain-text answer is its own message */
    }
    throw new EngineHttpError(status || 0, `engine answered ${status || 'garbage'}: ${message}`);
  }
  return (async function* () {
    try {
      if (rest.length > 0) yield rest;
      for (let r = await chunks.next(); !r.done; r = await chunks.next()) yield r.value;
    } finally {
      signal.removeEventListener('abort', abort);
      socket.destroy();
    }
  })();
}
