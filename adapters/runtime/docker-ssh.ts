/**
 * Docker API requests over SSH, as `docker -H ssh://` makes them (`docker system dial-stdio`
 * on the node), but over one authenticated SSH connection per node instead of a new one per
 * request: each HTTP connection is a new exec channel on it. The only file that imports ssh2.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, ConnectConfig } from 'ssh2';

export interface SshDockerAgentOptions {
  /** A connection with no open channel for this long is closed; default 30 000 ms. */
  idleTimeoutMs?: number;
  /**
   * Channels open at once on one connection before another connection is opened; default 8,
   * under OpenSSH's MaxSessions (10), which refuses further channels on that connection.
   */
  channelsPerConnection?: number;
}

// ssh2 comes with dockerode (docker-modem depends on it); like dockerode it loads on first use.
let ssh2: Promise<typeof Client> | undefined;
function loadSsh2(): Promise<typeof Client> {
  ssh2 ??= import('ssh2').then(
    (m) => m.Client,
    (e: unknown) => {
      ssh2 = undefined;
      throw e;
    },
  );
  return ssh2;
}

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
  closed: boolean;
  idleTimer?: NodeJS.Timeout;
}

/** What an SshDockerAgent holds, for tests and diagnostics. */
export interface SshDockerAgentState {
  connections: number;
  channels: number;
}

/**
 * An http.Agent for dockerode whose sockets are `dial-stdio` channels on a shared SSH
 * connection. The connection is opened on first use, reopened when it drops, and closed
 * after `idleTimeoutMs` without an open channel. A refused host key or private key fails
 * the request with ssh2's error as it is (level `handshake` or `client-authentication`).
 */
export class SshDockerAgent extends http.Agent {
  private readonly config: ConnectConfig;
  private readonly idleTimeoutMs: number;
  private readonly channelsPerConnection: number;
  private readonly connections = new Set<Connection>();
  private retired = false;

  constructor(config: ConnectConfig, options: SshDockerAgentOptions = {}) {
    // No HTTP keep-alive: a channel carries one request (hijacked ones, like attach, keep it).
    super({ keepAlive: false });
    this.config = config;
    this.idleTimeoutMs = options.idleTimeoutMs ?? defaultIdleTimeoutMs;
    this.channelsPerConnection = options.channelsPerConnection ?? defaultChannelsPerConnection;
    this.createConnection = ((_options: unknown, callback: (err: Error | null, stream?: Duplex) => void) => {
      this.openChannel().then(
        (stream) => callback(null, stream),
        (e: Error) => callback(e),
      );
      return undefined;
    }) as unknown as typeof this.createConnection;
  }

  get state(): SshDockerAgentState {
    let channels = 0;
    for (const c of this.connections) channels += c.channels;
    return { connections: this.connections.size, channels };
  }

  /**
   * Closes every connection as soon as it has no open channel (at once when idle), and from
   * now on closes connections the moment they fall idle: requests in flight finish, and a
   * caller still holding this agent still gets answers, but nothing lingers.
   */
  retire(): void {
    this.retired = true;
    for (const c of this.connections) if (c.channels === 0) this.close(c);
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
    clearTimeout(connection.idleTimer);
    return connection;
  }

  private async exec(connection: Connection): Promise<Duplex> {
    let stream: ClientChannel;
    try {
      const client = await connection.ready;
      stream = await this.execOn(connection, client);
    } catch (e) {
      this.release(connection);
      throw e;
    }
    stream.once('close', () => this.release(connection));
    // dial-stdio's own complaints (e.g. no docker CLI on the node) must not fill the window.
    stream.stderr.resume();
    return stream;
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
    if (connection.channels > 0 || connection.closed) return;
    if (this.retired) {
      this.close(connection);
      return;
    }
    connection.idleTimer = setTimeout(() => this.close(connection), this.idleTimeoutMs);
    // An idle connection alone must not keep the process alive.
    connection.idleTimer.unref();
  }

  private connect(): Connection {
    const connection: Connection = {
      ready: undefined as unknown as Promise<Client>,
      wasReady: false,
      channels: 0,
      closed: false,
    };
    const forget = () => {
      connection.closed = true;
      clearTimeout(connection.idleTimer);
      this.connections.delete(connection);
    };
    connection.ready = loadSsh2().then(
      (SshClient) =>
        new Promise<Client>((resolve, reject) => {
          const client = new SshClient();
          client
            .once('ready', () => {
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
    connection.ready.then(
      (client) => client.end(),
      () => undefined,
    );
  }
}
