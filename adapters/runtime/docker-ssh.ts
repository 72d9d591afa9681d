/**
 * Docker API requests over SSH, as `docker -H ssh://` makes them (`docker system dial-stdio`
 * on the node), but over one authenticated SSH connection per node instead of a new one per
 * request: each HTTP connection is an exec channel on it, kept alive for further requests.
 * The only file that imports ssh2.
 */
import http from 'node:http';
import { Duplex } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

export interface SshDockerAgentOptions {
  /** A connection with no request on it for this long is closed; default 30 000 ms. */
  idleTimeoutMs?: number;
  /**
   * Channels open at once on one connection before another connection is opened; default 8,
   * under OpenSSH's MaxSessions (10), which refuses further channels on that connection.
   */
  channelsPerConnection?: number;
}

// Like dockerode (which depends on it too), ssh2 loads on first use.
const loadSsh2 = onFirstUse(() => import('ssh2').then((m) => exportsOf(m).Client));

const dialStdio = 'docker system dial-stdio';
const defaultIdleTimeoutMs = 30_000;
const defaultChannelsPerConnection = 8;

interface Connection {
  /** Settles once the server accepted our key (and host key); rejects with ssh2's error. */
  ready: Promise<Client>;
  /** Set once ready: a failure after this is the connection dropping, not refusing us. */
  wasReady: boolean;
  /** Open channels plus channels being opened. */
  channels: number;
  /** Channels carrying a request now (the rest wait in the agent's pool for the next one). */
  busy: number;
  open: Set<DialChannel>;
  closed: boolean;
  idleTimer?: NodeJS.Timeout;
}

/** A dial-stdio channel as the agent holds it. */
type DialChannel = ClientChannel & { [connectionOf]?: Connection; [busy]?: boolean };
const connectionOf = Symbol('ssh connection');
const busy = Symbol('busy');

/**
 * An http.Agent for dockerode whose sockets are `dial-stdio` channels on a shared SSH
 * connection. The connection is opened on first use, reopened when it drops, and closed
 * after `idleTimeoutMs` without a request on it. A refused host key or private key fails
 * the request with ssh2's error as it is (level `handshake` or `client-authentication`).
 */
export class SshDockerAgent extends http.Agent {
  private readonly config: ConnectConfig;
  private readonly idleTimeoutMs: number;
  private readonly channelsPerConnection: number;
  private readonly connections = new Set<Connection>();
  private retired = false;

  constructor(config: ConnectConfig, options: SshDockerAgentOptions = {}) {
    // Opening a channel costs the server a session (a fork and an exec of the docker CLI,
    // 150-300 ms on a busy host), so a channel carries request after request, as a TCP
    // connection to the engine would; hijacked ones (attach) and aborted ones are not reused.
    super({ keepAlive: true });
    this.config = config;
    this.idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs;
    this.channelsPerConnection = options.channelsPerConnection ?? defaultChannelsPerConnection;
    this.createConnection = ((
      _options: unknown,
      callback: (err: Error | null, stream?: Duplex) => void,
    ) => {
      this.openChannel().then(
        (stream) => callback(null, stream),
        (e: Error) => callback(e),
      );
      return undefined;
    }) as unknown as typeof this.createConnection;
  }

  /** A finished request leaves its channel in the pool; the connection may now be idle. */
  override keepSocketAlive(socket: Duplex): boolean {
    // Node returns whether it kept the socket; its typings say void.
    const kept = (super.keepSocketAlive(socket as never) as unknown) !== false;
    if (kept) this.markIdle(socket as DialChannel);
    return kept;
  }

  override reuseSocket(socket: Duplex, request: http.ClientRequest): void {
    this.markBusy(socket as DialChannel);
    super.reuseSocket(socket as never, request);
  }

  /**
   * Closes every connection as soon as no request is on it (at once when idle), and from
   * now on closes connections the moment they fall idle: requests in flight finish, and a
   * caller still holding this agent still gets answers, but nothing lingers.
   */
  retire(): void {
    this.retired = true;
    for (const c of this.connections) if (c.busy === 0) this.close(c);
  }

  override destroy(): void {
    this.retired = true;
    for (const c of this.connections) this.close(c);
    super.destroy();
  }

  private async openChannel(): Promise<Duplex> {
    const connection = this.pick();
    try {
      return await this.exec(connection);
    } catch (e) {
      // The shared connection died under us before this request sent a byte: one fresh try.
      // A connection refused at its own handshake is not retried (wrong key, host down).
      if (!connection.wasReady) throw e;
      return this.exec(this.pick());
    }
  }

  /** A live connection with room for one more channel, or a new one; the channel is counted. */
  private pick(): Connection {
    let connection: Connection | undefined;
    for (const c of this.connections) {
      if (!c.closed && c.channels < this.channelsPerConnection) {
        connection = c;
        break;
      }
    }
    connection ??= this.connect();
    connection.channels += 1;
    return connection;
  }

  private async exec(connection: Connection): Promise<Duplex> {
    let stream: ClientChannel;
    // Busy from the start: a connection being opened or asked for a channel is not idle.
    connection.busy += 1;
    clearTimeout(connection.idleTimer);
    refSocket(connection, true);
    try {
      const client = await connection.ready;
      stream = await this.execOn(connection, client);
    } catch (e) {
      this.release(connection);
      connection.busy -= 1;
      this.whenIdle(connection);
      throw e;
    }
    // The busy count taken above now belongs to the channel.
    const channel = stream as DialChannel;
    channel[connectionOf] = connection;
    channel[busy] = true;
    connection.open.add(channel);
    channel.once('close', () => {
      connection.open.delete(channel);
      this.markIdle(channel);
      this.release(connection);
    });
    // dial-stdio's own complaints (e.g. no docker CLI on the node) must not fill the window.
    channel.stderr.resume();
    // http.Agent treats its sockets as net.Sockets when it pools them; a channel has no
    // TCP-level keep-alive, timeout or event-loop reference of its own to set.
    const channelAsSocket = channel as unknown as Record<string, unknown>;
    for (const method of ['setKeepAlive', 'setTimeout', 'ref', 'unref', 'setNoDelay'])
      channelAsSocket[method] ??= () => channel;
    return channel;
  }

  private markBusy(channel: DialChannel): void {
    const connection = channel[connectionOf];
    if (!connection || channel[busy]) return;
    channel[busy] = true;
    connection.busy += 1;
    clearTimeout(connection.idleTimer);
    refSocket(connection, true);
  }

  private markIdle(channel: DialChannel): void {
    const connection = channel[connectionOf];
    if (!connection || !channel[busy]) return;
    channel[busy] = false;
    connection.busy -= 1;
    this.whenIdle(connection);
  }

  /** Once no request is on a connection, it closes after the idle timeout (at once if retired). */
  private whenIdle(connection: Connection): void {
    if (connection.busy > 0 || connection.closed) return;
    if (this.retired) {
      this.close(connection);
      return;
    }
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => this.close(connection), this.idleTimeoutMs);
    // Pooled channels on an idle connection must not keep the process alive, as a pooled
    // TCP socket does not; the idle timer then closes it, or the process exits first.
    connection.idleTimer.unref();
    refSocket(connection, false);
  }

  private execOn(connection: Connection, client: Client): Promise<ClientChannel> {
    const timeoutMs = this.config.readyTimeout ?? 20_000;
    return new Promise((resolve, reject) => {
      // A server that does not answer a channel open on a live-looking connection has gone
      // away without a FIN: drop the connection so the next request starts a new one.
      const timer = setTimeout(() => {
        this.close(connection);
        reject(
          Object.assign(new Error(`SSH channel did not open in ${timeoutMs} ms`), {
            code: 'ETIMEDOUT',
          }),
        );
      }, timeoutMs);
      client.exec(dialStdio, (err, stream) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(stream);
      });
    });
  }

  private release(connection: Connection): void {
    connection.channels -= 1;
  }

  private connect(): Connection {
    const connection: Connection = {
      ready: undefined as unknown as Promise<Client>,
      wasReady: false,
      channels: 0,
      busy: 0,
      open: new Set(),
      closed: false,
    };
    const forget = () => {
      connection.closed = true;
      clearTimeout(connection.idleTimer);
      this.connections.delete(connection);
      destroyChannels(connection);
    };
    connection.ready = loadSsh2().then(
      (SshClient) =>
        new Promise<Client>((resolve, reject) => {
          const client = new SshClient();
          client
            .once('ready', () => {
              // Requests are small writes answered at once: Nagle's delay would add ~40 ms each.
              client.setNoDelay(true);
              connection.wasReady = true;
              resolve(client);
            })
            // After ready, an error is the connection dropping; its 'close' follows.
            .on('error', (e) => {
              forget();
              reject(e);
            })
            .once('close', () => {
              forget();
              reject(new Error('SSH connection closed before it was ready'));
            });
          client.connect(this.config);
        }),
    );
    // Whoever picked this connection awaits ready and sees the failure; this is for no one.
    connection.ready.catch(() => undefined);
    this.connections.add(connection);
    return connection;
  }

  private close(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    clearTimeout(connection.idleTimer);
    this.connections.delete(connection);
    destroyChannels(connection);
    connection.ready.then(
      (client) => client.end(),
      () => undefined,
    );
  }
}

/**
 * Ends a closed connection's channels as sockets end. ssh2 does not close a channel whose
 * connection went away, and its own destroy() only asks the server to: without this the
 * agent would hand out a pooled channel on a dead connection and the request would hang.
 */
function destroyChannels(connection: Connection): void {
  for (const channel of connection.open) Duplex.prototype.destroy.call(channel);
  connection.open.clear();
}

/**
 * Holds or lets go of the event loop through the SSH connection's TCP socket. ssh2 keeps
 * that socket as `_sock` and offers no way to unref it.
 */
function refSocket(connection: Connection, hold: boolean): void {
  void connection.ready.then(
    (client) => {
      const socket = (client as unknown as { _sock?: { ref?: () => void; unref?: () => void } })
        ._sock;
      // The busy count decides, not the order in which these settle.
      if (connection.busy > 0) socket?.ref?.();
      else if (!hold) socket?.unref?.();
    },
    () => undefined,
  );
}
