/**
 * The client side of a BuildKit session on a hijacked `POST /session` connection: the
 * engine's builder calls back over it (gRPC over h2c) for what the client holds. Served
 * here: build-time secrets (`moby.buildkit.secrets.v1.Secrets/GetSecret`, what `RUN
 * --mount=type=secret,id=…` reads) and registry credentials (`moby.filesync.v1.Auth/
 * Credentials`, none: images come from the node) and, when the build's context is a
 * directory here, the context itself (`moby.filesync.v1.FileSync/DiffCopy`, whose packets
 * and walk are buildkit-filesync.ts). dockerode's own session serves only registry
 * credentials, so builds open this one instead. The only file that imports @grpc/grpc-js.
 *
 * Why a session and not a build arg or a file in the context: a secret sent as a build
 * arg stays in the image's history, one in the context can be copied into a layer; a
 * secret mount exists only while its RUN step runs, in a tmpfs, and the value travels
 * over this connection alone (never in the build's request, URL or output).
 */
import * as grpc from '@grpc/grpc-js';
import type { Duplex } from 'node:stream';
import {
  decodePacket,
  encodePacket,
  sendDiffCopy,
  type Packet,
  type SyncReport,
} from './buildkit-filesync.ts';

/** The gRPC methods this session answers; the engine is told them when the session opens. */
export const sessionMethods = [
  '/moby.filesync.v1.Auth/Credentials',
  '/moby.buildkit.secrets.v1.Secrets/GetSecret',
  '/grpc.health.v1.Health/Check',
];
/** Offered only by a session that serves a context directory (the engine then asks for it). */
export const fileSyncMethod = '/moby.filesync.v1.FileSync/DiffCopy';

// ---------------------------------------------------------------- protobuf, the two messages

function readVarint(b: Buffer, at: number): [number, number] {
  let n = 0;
  let shift = 0;
  for (;;) {
    if (at >= b.length) throw new Error('truncated varint');
    const byte = b[at++]!;
    n += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [n, at];
    shift += 7;
  }
}

/**
 * Field 1 (a string) of a message; the others (annotations, …) are skipped. Wrapped in an
 * object: grpc-js takes a falsy request (an empty message decoded to '') for none at all.
 */
function stringField1(b: Buffer): { value: string } {
  let at = 0;
  let value = '';
  while (at < b.length) {
    let tag: number;
    [tag, at] = readVarint(b, at);
    const wire = tag & 7;
    if (wire === 0) [, at] = readVarint(b, at);
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      let len: number;
      [len, at] = readVarint(b, at);
      if (tag >>> 3 === 1) value = b.toString('utf8', at, at + len);
      at += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return { value };
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** `GetSecretResponse { bytes data = 1; }` */
const secretResponse = (data: Buffer): Buffer =>
  Buffer.concat([Buffer.from([0x0a]), varint(data.length), data]);

const unary = <Req, Res>(
  path: string,
  decode: (b: Buffer) => Req,
  encode: (r: Res) => Buffer,
): grpc.MethodDefinition<Req, Res> => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: () => Buffer.alloc(0),
  requestDeserialize: decode,
  responseSerialize: encode,
  responseDeserialize: () => undefined as Res,
});

const secretsService = {
  GetSecret: unary<{ value: string }, Buffer>(sessionMethods[1]!, stringField1, secretResponse),
};
const authService = {
  // An empty CredentialsResponse: no registry credentials from this client.
  Credentials: unary<{ value: string }, null>(sessionMethods[0]!, stringField1, () =>
    Buffer.alloc(0),
  ),
};

/**
 * BuildKit checks the session's health every second and drops the session at the first
 * failed check, UNIMPLEMENTED included (so a build longer than a second would lose its
 * secrets mid-way: "transport is closing"). `HealthCheckResponse { status: SERVING }`.
 */
const healthService = {
  Check: unary<{ value: string }, null>(sessionMethods[2]!, stringField1, () =>
    Buffer.from([0x08, 0x01]),
  ),
};

/**
 * DiffCopy's messages are `fsutil.types.Packet`s (the proto names BytesMessage; BuildKit
 * sends packets on it), in both directions.
 */
const fileSyncService = {
  DiffCopy: {
    path: fileSyncMethod,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodePacket,
    requestDeserialize: decodePacket,
    responseSerialize: encodePacket,
    responseDeserialize: decodePacket,
  } satisfies grpc.MethodDefinition<Packet, Packet>,
};

export interface BuildSession {
  close(): void;
  /** The secret ids the builder asked for, in order (for the log: ids, never values). */
  readonly asked: string[];
  /** One report per DiffCopy the builder ran (each local: `context`, `dockerfile`, …). */
  readonly synced: SyncReport[];
}

/** Directories the session serves by the names the builder asks for (`context`, `dockerfile`). */
/** A local's directory by name; a promise while it is still being written (awaited on request). */
export type SessionDirs = Record<string, string | Promise<string>>;

/**
 * A duplex call's packets as an async iterable that leaves the call open when the reader
 * stops (a Readable's own iterator destroys the stream on `break`, which would reset it
 * before the FIN and the OK status go out).
 */
function reader(call: grpc.ServerDuplexStream<Packet, Packet>): AsyncIterable<Packet> {
  const queue: Packet[] = [];
  let ended = false;
  let failed: Error | null = null;
  let wake: (() => void) | null = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  call.on('data', (p: Packet) => {
    queue.push(p);
    poke();
  });
  call.on('end', () => {
    ended = true;
    poke();
  });
  call.on('close', () => {
    ended = true;
    poke();
  });
  call.on('error', (e: Error) => {
    failed = e;
    poke();
  });
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (queue.length > 0) yield queue.shift()!;
        else if (failed) throw failed;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

/** A duplex call's writes, waiting for its buffer to drain: a large file is never held whole. */
function writer(call: grpc.ServerDuplexStream<Packet, Packet>) {
  return (p: Packet) =>
    new Promise<void>((resolve, reject) => {
      if (call.destroyed) return reject(new Error('the builder closed the file sync'));
      if (call.write(p)) return resolve();
      const done = () => {
        call.off('drain', done);
        call.off('close', done);
        if (call.destroyed) reject(new Error('the builder closed the file sync'));
        else resolve();
      };
      call.on('drain', done);
      call.on('close', done);
    });
}

/**
 * Serves a session on `socket` (the hijacked `/session` connection) until `close`.
 * `secrets` maps a secret id to its value; an id not in it answers NOT_FOUND, which a
 * `required` mount turns into a failed step naming the id.
 */
export function serveBuildSession(
  socket: Duplex,
  secrets: Record<string, string>,
  dirs: SessionDirs = {},
): BuildSession {
  const server = new grpc.Server();
  const asked: string[] = [];
  const synced: SyncReport[] = [];
  server.addService(fileSyncService as unknown as grpc.ServiceDefinition, {
    DiffCopy: (call: grpc.ServerDuplexStream<Packet, Packet>) => {
      // Go sends a list as repeated header fields; Node's HTTP/2 joins them with ", ".
      const values = (key: string) =>
        call.metadata
          .get(key)
          .flatMap((v) => v.toString().split(','))
          .map((v) => v.trim())
          .filter((v) => v !== '');
      const name = values('dir-name')[0] ?? '';
      const root = Object.hasOwn(dirs, name) ? dirs[name] : undefined;
      if (root === undefined) {
        call.emit('error', {
          code: grpc.status.NOT_FOUND,
          details: `no directory ${name} in this build's session`,
        });
        return;
      }
      Promise.resolve(root)
        .then((dir) =>
          sendDiffCopy({ incoming: reader(call), send: writer(call) }, dir, name, {
            includePatterns: values('include-patterns'),
            excludePatterns: values('exclude-patterns'),
            followPaths: values('followpaths'),
          }),
        )
        .then(
          (report) => {
            synced.push(report);
            call.end();
          },
          (e: unknown) =>
            call.emit('error', {
              code: grpc.status.UNKNOWN,
              details: e instanceof Error ? e.message : String(e),
            }),
        );
    },
  });
  server.addService(secretsService as unknown as grpc.ServiceDefinition, {
    GetSecret: (
      call: grpc.ServerUnaryCall<{ value: string }, Buffer>,
      callback: grpc.sendUnaryData<Buffer>,
    ) => {
      const id = call.request.value;
      asked.push(id);
      const value = Object.hasOwn(secrets, id) ? secrets[id] : undefined;
      if (value === undefined)
        return callback({ code: grpc.status.NOT_FOUND, details: `secret ${id} not found` });
      callback(null, Buffer.from(value, 'utf8'));
    },
  });
  server.addService(authService as unknown as grpc.ServiceDefinition, {
    Credentials: (_call: unknown, callback: grpc.sendUnaryData<null>) => callback(null, null),
  });
  server.addService(healthService as unknown as grpc.ServiceDefinition, {
    Check: (_call: unknown, callback: grpc.sendUnaryData<null>) => callback(null, null),
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  injector.injectConnection(socket);
  let closed = false;
  return {
    asked,
    synced,
    close() {
      if (closed) return;
      closed = true;
      server.forceShutdown();
      socket.destroy();
    },
  };
}
