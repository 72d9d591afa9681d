/**
 * The client side of the switch benchmark, run as a child process so its load does not
 * share an event loop with the control plane it measures: keep-alive HTTP through Caddy
 * (autocannon, rate-limited) and WebSocket clients held open on two routes, each sending
 * a message every `wsEveryMs` and checking the echo `<version>:<message>`.
 *
 * Protocol (IPC): the parent forks this file with one JSON argument (TrafficOptions); the
 * child sends `{ type: 'ready' }` once load runs and every client is open. The parent
 * sends `{ type: 'add-switched' }` to open one more client on the switched route and
 * `{ type: 'stop' }` at the end; the child answers `{ type: 'result', result }` and exits.
 * It stops by itself after `capSeconds` whatever the parent does.
 */
import autocannon from 'autocannon';
import WebSocket from 'ws';

export interface TrafficOptions {
  caddyPort: number;
  switchedHost: string;
  otherHost: string;
  httpPath: string;
  connections: number;
  /** Requests per second over all connections. */
  rate: number;
  capSeconds: number;
  wsPerRoute: number;
  wsEveryMs: number;
  /** An echo not back within this long counts as late. */
  echoTimeoutMs: number;
}

export interface WsDrop {
  route: 'other' | 'switched';
  client: number;
  /** ms since the client side started. */
  atMs: number;
  code: number | null;
  reason: string;
}

export interface TrafficResult {
  http: {
    requests: number;
    twoXx: number;
    non2xx: number;
    /** Connection errors, timeouts included (autocannon `errors`). */
    connectionErrors: number;
    timeouts: number;
    seconds: number;
    reqPerSec: number;
    latencyP99Ms: number;
    /** The first few failures, with when they happened. */
    firstFailures: { atMs: number; what: string }[];
    /** Failures by message (`read ECONNRESET`, `http 502`, …). */
    failureKinds: Record<string, number>;
    /** When each failure happened, ms since the epoch (at most 2,000). */
    failureTimes: number[];
  };
  ws: {
    held: { other: number; switched: number };
    connectFailures: number;
    drops: WsDrop[];
    echoes: number;
    /** Echoes that were wrong (other text, or another version than the socket started on). */
    mismatches: number;
    late: number;
    versionsSeen: { other: string[]; switched: string[] };
    heldMs: number;
  };
}

interface Client {
  route: 'other' | 'switched';
  id: number;
  ws: WebSocket;
  version: string | null;
  seq: number;
  pending: Map<string, number>;
  /** Messages already counted late: their echo, if it comes, is not a mismatch. */
  overdue: Set<string>;
  closing: boolean;
  timer: NodeJS.Timeout | null;
}

async function main(options: TrafficOptions): Promise<void> {
  const started = Date.now();
  const since = () => Date.now() - started;
  const clients: Client[] = [];
  const drops: WsDrop[] = [];
  const versions = { other: new Set<string>(), switched: new Set<string>() };
  let connectFailures = 0;
  let echoes = 0;
  let mismatches = 0;
  let late = 0;
  let nextId = 0;
  const firstFailures: { atMs: number; what: string }[] = [];
  const failureKinds: Record<string, number> = {};
  const failureTimes: number[] = [];
  const noteFailure = (what: string, http = true) => {
    if (firstFailures.length < 20) firstFailures.push({ atMs: since(), what });
    if (!http) return;
    failureKinds[what] = (failureKinds[what] ?? 0) + 1;
    if (failureTimes.length < 2000) failureTimes.push(Date.now());
  };

  function open(route: 'other' | 'switched'): Promise<void> {
    const host = route === 'other' ? options.otherHost : options.switchedHost;
    const ws = new WebSocket(`ws://127.0.0.1:${options.caddyPort}/`, {
      headers: { host },
      handshakeTimeout: 5000,
    });
    const c: Client = {
      route,
      id: nextId++,
      ws,
      version: null,
      seq: 0,
      pending: new Map(),
      overdue: new Set(),
      closing: false,
      timer: null,
    };
    return new Promise((resolve) => {
      let opened = false;
      ws.on('open', () => {
        opened = true;
        clients.push(c);
        c.timer = setInterval(() => {
          const now = Date.now();
          for (const [m, at] of c.pending) {
            if (now - at > options.echoTimeoutMs) {
              late++;
              c.pending.delete(m);
              c.overdue.add(m);
            }
          }
          const m = `c${c.id}-${c.seq++}`;
          c.pending.set(m, now);
          ws.send(m);
        }, options.wsEveryMs);
        resolve();
      });
      ws.on('message', (data) => {
        const text = String(data);
        const i = text.indexOf(':');
        const version = text.slice(0, i);
        const m = text.slice(i + 1);
        versions[route].add(version);
        c.version ??= version;
        if (i >= 0 && c.overdue.delete(m)) return;
        if (i < 0 || version !== c.version || !c.pending.delete(m)) mismatches++;
        else echoes++;
      });
      ws.on('error', (e) => {
        if (!opened) {
          connectFailures++;
          noteFailure(`ws ${route} connect: ${e.message}`, false);
          resolve();
        }
      });
      ws.on('close', (code, reason) => {
        if (c.timer) clearInterval(c.timer);
        if (opened && !c.closing)
          drops.push({ route, client: c.id, atMs: since(), code, reason: String(reason) });
      });
    });
  }

  let resolveStop: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  const cap = setTimeout(() => {
    process.stderr.write(`traffic: hard cap of ${options.capSeconds} s reached; stopping\n`);
    resolveStop();
  }, options.capSeconds * 1000);
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') resolveStop();
    if (m.type === 'add-switched') void open('switched');
  });
  process.on('disconnect', () => resolveStop());

  for (let i = 0; i < options.wsPerRoute; i++) {
    await open('other');
    await open('switched');
  }
  const wsStarted = Date.now();

  const instance = autocannon(
    {
      url: `http://127.0.0.1:${options.caddyPort}${options.httpPath}`,
      connections: options.connections,
      overallRate: options.rate,
      duration: options.capSeconds,
      headers: { host: options.switchedHost },
      timeout: 5,
    },
    () => undefined,
  );
  const done = new Promise<autocannon.Result>((resolve) => instance.once('done', resolve));
  instance.on('response', (_client: unknown, status: number) => {
    if (status < 200 || status > 299) noteFailure(`http ${status}`);
  });
  instance.on('reqError', (e: Error) => noteFailure(`http error: ${e.message}`));
  process.send!({ type: 'ready' });

  await stopped;
  clearTimeout(cap);
  instance.stop();
  const result = await done;
  const heldMs = Date.now() - wsStarted;
  for (const c of clients) {
    c.closing = true;
    if (c.timer) clearInterval(c.timer);
    c.ws.close(1000, 'bench done');
  }
  const seconds = result.duration;
  const report: TrafficResult = {
    http: {
      requests: result.requests.total,
      twoXx: result['2xx'],
      non2xx: result.non2xx,
      connectionErrors: result.errors,
      timeouts: result.timeouts,
      seconds: Math.round(seconds * 10) / 10,
      reqPerSec: Math.round(result.requests.total / seconds),
      latencyP99Ms: result.latency.p99,
      firstFailures,
      failureKinds,
      failureTimes,
    },
    ws: {
      held: {
        other: clients.filter((c) => c.route === 'other').length,
        switched: clients.filter((c) => c.route === 'switched').length,
      },
      connectFailures,
      drops,
      echoes,
      mismatches,
      late,
      versionsSeen: { other: [...versions.other].sort(), switched: [...versions.switched].sort() },
      heldMs,
    },
  };
  process.send!({ type: 'result', result: report }, () => process.exit(0));
}

const arg = process.argv[2];
if (!arg || !process.send) {
  process.stderr.write(
    'bench/support/traffic.ts is started by bench/deploy.ts (fork with one JSON argument)\n',
  );
  process.exit(2);
}
await main(JSON.parse(arg) as TrafficOptions);
