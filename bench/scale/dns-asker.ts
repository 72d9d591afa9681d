/**
 * Asks the edge DNS server SRV questions the way Caddy does, from a process of its own: the
 * bench's main thread runs the release engine, and a client sharing its event loop would
 * count the engine's stalls as the server's latency, and its memory as the control plane's
 * (Caddy is another process). One question at a time, for random names of `names`, until
 * `count` answers, `maxMs`, or `stop()`. With `floor`, the same child also times a server
 * that only flips the reply bit, in a third process: what this loaded machine's scheduling
 * alone costs a UDP round trip, so the edge DNS's figure can be read against it.
 */
import { spawn } from 'node:child_process';

// Plain CommonJS, evaluated: the child needs no TypeScript loader.
const source = `
const { Resolver } = require('node:dns/promises');
const { spawn } = require('node:child_process');
const o = JSON.parse(process.argv[1]);
let stopped = false;
process.on('message', () => (stopped = true));
const echoSource = "const s = require('node:dgram').createSocket('udp4');" +
  "s.on('message', (m, r) => { const b = Buffer.from(m); b[2] |= 0x84; s.send(b, r.port, r.address); });" +
  "s.bind(0, '127.0.0.1', () => process.send(s.address().port)); process.on('disconnect', () => process.exit(0));";
async function ask(server, names, expect, timed) {
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([server]);
  const name = names[Math.floor(Math.random() * names.length)];
  const t0 = performance.now();
  try {
    const answer = await r.resolveSrv(name);
    timed.ms.push(performance.now() - t0);
    if (expect !== null && answer.length !== expect) timed.errors++;
  } catch (e) {
    if (expect === null) timed.ms.push(performance.now() - t0);
    else timed.errors++;
  }
}
(async () => {
  const dns = { ms: [], errors: 0 };
  const floor = { ms: [], errors: 0 };
  let echo = null;
  if (o.floor) {
    echo = spawn(process.execPath, ['-e', echoSource], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const port = await new Promise((res) => echo.once('message', res));
    o.echo = '127.0.0.1:' + port;
  }
  const end = Date.now() + o.maxMs;
  for (let i = 0; i < o.count && !stopped && Date.now() < end; i++) {
    await ask(o.server, o.names, o.expect, dns);
    if (echo) await ask(o.echo, o.names, null, floor);
    if (o.pauseMs > 0) await new Promise((res) => setTimeout(res, o.pauseMs));
  }
  echo?.kill();
  process.send({ ms: dns.ms, errors: dns.errors, floorMs: floor.ms }, () => process.exit(0));
})();`;

export interface DnsTimes {
  ms: number[];
  errors: number;
  /** The bit-flipping server's round trips, asked alternately with the DNS server's. */
  floorMs: number[];
}

export interface DnsAsking {
  /** Ends the asking early; resolves with what was measured. */
  stop(): Promise<DnsTimes>;
  done: Promise<DnsTimes>;
}

export function askDns(o: {
  server: string;
  names: string[];
  /** SRV records each answer must hold. */
  expect: number;
  count: number;
  pauseMs: number;
  maxMs: number;
  floor?: boolean;
}): DnsAsking {
  const child = spawn(process.execPath, ['-e', source, JSON.stringify(o)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const done = new Promise<DnsTimes>((resolve, reject) => {
    child.once('message', (m) => resolve(m as DnsTimes));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the DNS asker exited (${code})`)));
  });
  return {
    done,
    stop: () => {
      if (child.connected) child.send('stop');
      return done;
    },
  };
}
