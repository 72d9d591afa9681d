/**
 * Asks the edge DNS server SRV questions the way Caddy does, from a thread of its own: the
 * bench's main thread runs the release engine, and a client sharing its event loop would
 * count the engine's stalls as the server's latency (Caddy is another process). One
 * question at a time, for random names of `names`, until `count` answers or `stop()`.
 */
import { Worker } from 'node:worker_threads';

// Plain CommonJS, evaluated: the thread needs no TypeScript loader.
const source = `
const { parentPort, workerData } = require('node:worker_threads');
const { Resolver } = require('node:dns/promises');
const r = new Resolver({ timeout: 1000, tries: 1 });
r.setServers([workerData.server]);
let stopped = false;
parentPort.on('message', () => (stopped = true));
(async () => {
  const ms = [];
  let errors = 0;
  const end = Date.now() + workerData.maxMs;
  for (let i = 0; i < workerData.count && !stopped && Date.now() < end; i++) {
    const name = workerData.names[Math.floor(Math.random() * workerData.names.length)];
    const t0 = performance.now();
    try {
      const answer = await r.resolveSrv(name);
      if (answer.length !== workerData.expect) errors++;
      ms.push(performance.now() - t0);
    } catch {
      errors++;
    }
    if (workerData.pauseMs > 0) await new Promise((res) => setTimeout(res, workerData.pauseMs));
  }
  parentPort.postMessage({ ms, errors });
})();`;

export interface DnsAsking {
  /** Ends the asking early; resolves with what was measured. */
  stop(): Promise<{ ms: number[]; errors: number }>;
  done: Promise<{ ms: number[]; errors: number }>;
}

export function askDns(o: {
  server: string;
  names: string[];
  /** SRV records each answer must hold. */
  expect: number;
  count: number;
  pauseMs: number;
  maxMs: number;
}): DnsAsking {
  const worker = new Worker(source, { eval: true, workerData: o });
  const done = new Promise<{ ms: number[]; errors: number }>((resolve, reject) => {
    worker.once('message', (m: { ms: number[]; errors: number }) => {
      resolve(m);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
  return {
    done,
    stop: () => {
      worker.postMessage('stop');
      return done;
    },
  };
}
