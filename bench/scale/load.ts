/**
 * bench:scale's load, in a child process so it never shares an event loop with the control
 * plane it measures: keep-alive HTTP through Caddy at a fixed overall rate (autocannon,
 * cycling over the given hosts), plus a stream of requests on new connections (one TCP
 * connection each, `Connection: close`) at `newPerSecond`. Every 2xx body (the replica's
 * HOSTNAME) is counted per host, so the parent can read the spread over replicas.
 *
 * Protocol (IPC): forked with one JSON argument (LoadOptions); sends `{type: 'ready'}` once
 * load runs. The parent sends `{type: 'window'}` to get `{type: 'window', counts}` (2xx per
 * `host body` since the last window) and `{type: 'stop'}` for `{type: 'result', result}`.
 * It stops by itself after `capSeconds`. Traffic goes to 127.0.0.1 only.
 */
import http from 'node:http';
import autocannon from 'autocannon';

export interface LoadOptions {
  port: number;
  hosts: string[];
  path: string;
  connections: number;
  /** Keep-alive requests per second over all connections. */
  rate: number;
  /** Requests per second on a new connection each. */
  newPerSecond: number;
  capSeconds: number;
}

export interface LoadResult {
  keepAlive: {
    requests: number;
    twoXx: number;
    non2xx: number;
    /** Connection errors and timeouts (autocannon `errors`). */
    connectionErrors: number;
    seconds: number;
    reqPerSec: number;
    /**
     * Mean latency: with one request in flight per connection, `connections / mean` is the
     * most this client can send, so a rate short of the goal with a mean above
     * `connections / rate` is the box's latency, not a rate limit of the client.
     */
    latencyMeanMs: number;
    latencyP99Ms: number;
  };
  newConnections: {
    requests: number;
    twoXx: number;
    non2xx: number;
    connectionErrors: number;
    perSec: number;
    /** Requests the interval could not send because too many were still open (the box is slow). */
    skipped: number;
  };
  /** The first failures seen, with ms since the load started. */
  firstFailures: { atMs: number; what: string }[];
  /** Failures by kind (`http 502`, `new: ECONNRESET`, …). */
  failureKinds: Record<string, number>;
}

async function main(o: LoadOptions): Promise<void> {
  const started = Date.now();
  let window = new Map<string, number>();
  const firstFailures: LoadResult['firstFailures'] = [];
  const failureKinds: Record<string, number> = {};
  const fail = (what: string) => {
    if (firstFailures.length < 20) firstFailures.push({ atMs: Date.now() - started, what });
    failureKinds[what] = (failureKinds[what] ?? 0) + 1;
  };
  const count = (host: string, body: string) => {
    const key = `${host} ${body.trim()}`;
    window.set(key, (window.get(key) ?? 0) + 1);
  };

  let resolveStop: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  const cap = setTimeout(() => {
    process.stderr.write(`load: hard cap of ${o.capSeconds} s reached; stopping\n`);
    resolveStop();
  }, o.capSeconds * 1000);
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') resolveStop();
    if (m.type === 'window') {
      const counts = Object.fromEntries(window);
      window = new Map();
      process.send!({ type: 'window', counts });
    }
  });
  process.on('disconnect', () => resolveStop());

  const instance = autocannon(
    {
      url: `http://127.0.0.1:${o.port}`,
      connections: o.connections,
      overallRate: o.rate,
      duration: o.capSeconds,
      timeout: 5,
      requests: o.hosts.map((host) => ({
        method: 'GET' as const,
        path: o.path,
        headers: { host },
        onResponse: (status: number, body: string) => {
          if (status >= 200 && status < 300) count(host, body);
        },
      })),
    },
    () => undefined,
  );
  const done = new Promise<autocannon.Result>((resolve) => instance.once('done', resolve));
  instance.on('response', (_c: unknown, status: number) => {
    if (status < 200 || status > 299) fail(`http ${status}`);
  });
  instance.on('reqError', (e: Error) => fail(`keep-alive: ${e.message}`));

  // New connections: one request each, bounded in flight so a slow box cannot pile them up.
  const fresh = { requests: 0, twoXx: 0, non2xx: 0, connectionErrors: 0, skipped: 0 };
  let inFlight = 0;
  let nextHost = 0;
  const freshOne = () => {
    if (inFlight >= 50) {
      fresh.skipped++;
      return;
    }
    inFlight++;
    fresh.requests++;
    const host = o.hosts[nextHost++ % o.hosts.length]!;
    const req = http.get(
      {
        host: '127.0.0.1',
        port: o.port,
        path: o.path,
        headers: { host, connection: 'close' },
        agent: false,
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          inFlight--;
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) fresh.twoXx++;
          else {
            fresh.non2xx++;
            fail(`new: http ${status}`);
          }
        });
        res.on('error', (e) => {
          inFlight--;
          fresh.connectionErrors++;
          fail(`new: ${e.message}`);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => {
      inFlight--;
      fresh.connectionErrors++;
      fail(`new: ${e.message}`);
    });
  };
  // Paced by the clock, not by one timer tick per request: on a busy box a 20 ms interval
  // fires late (bench:scale measured 23.5 new connections/s of 50 asked, none skipped), so
  // each tick sends what is due since the start, and a slow box shows as `skipped` only when
  // too many are still open.
  const freshStarted = Date.now();
  let freshDue = 0;
  const freshTimer =
    o.newPerSecond > 0
      ? setInterval(() => {
          const due = Math.floor(((Date.now() - freshStarted) / 1000) * o.newPerSecond);
          for (; freshDue < due; freshDue++) freshOne();
        }, 10)
      : null;
  process.send!({ type: 'ready' });

  await stopped;
  clearTimeout(cap);
  if (freshTimer) clearInterval(freshTimer);
  const freshSeconds = (Date.now() - freshStarted) / 1000;
  instance.stop();
  const result = await done;
  // Let the last new-connection requests finish (bounded: each has a 5 s timeout).
  for (let i = 0; i < 60 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const seconds = result.duration;
  const report: LoadResult = {
    keepAlive: {
      requests: result.requests.total,
      twoXx: result['2xx'],
      non2xx: result.non2xx,
      connectionErrors: result.errors,
      seconds: Math.round(seconds * 10) / 10,
      reqPerSec: Math.round(result.requests.total / seconds),
      latencyMeanMs: Math.round(result.latency.mean),
      latencyP99Ms: result.latency.p99,
    },
    newConnections: {
      ...fresh,
      perSec: Math.round((fresh.requests / Math.max(0.001, freshSeconds)) * 10) / 10,
    },
    firstFailures,
    failureKinds,
  };
  process.send!({ type: 'result', result: report }, () => process.exit(0));
}

const arg = process.argv[2];
if (!arg || !process.send) {
  process.stderr.write('bench/scale/load.ts is forked by bench/scale.ts with one JSON argument\n');
  process.exit(2);
}
await main(JSON.parse(arg) as LoadOptions);
