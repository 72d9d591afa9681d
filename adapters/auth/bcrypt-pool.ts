import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

type Job =
  | { op: 'hash'; password: string; cost: number }
  | { op: 'compare'; password: string; hash: string };
interface Pending {
  job: Job;
  resolve: (value: string | boolean) => void;
  reject: (e: Error) => void;
}

// Plain CommonJS, evaluated: the worker needs no loader for TypeScript.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const bcrypt = require(workerData.bcryptPath);
parentPort.on('message', (job) => {
  try {
    const value = job.op === 'hash'
      ? bcrypt.hashSync(job.password, job.cost)
      : bcrypt.compareSync(job.password, job.hash);
    parentPort.postMessage({ value });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
});`;

/**
 * bcrypt on worker threads, a fixed few at a time. On the main thread a signup flood's
 * hashes (about 250 ms each at cost 12) starve every other request, /health included; here
 * they queue for the workers and the event loop stays free.
 */
export class BcryptPool {
  private readonly size: number;
  private readonly bcryptPath = createRequire(import.meta.url).resolve('bcryptjs');
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Pending>();
  private readonly queue: Pending[] = [];
  private workers = 0;

  /** size: workers at most; one fewer than the cores (at least one) unless set. */
  constructor(size = Math.max(1, availableParallelism() - 1)) {
    this.size = size;
  }

  hash(password: string, cost: number): Promise<string> {
    return this.run({ op: 'hash', password, cost }) as Promise<string>;
  }

  compare(password: string, hash: string): Promise<boolean> {
    return this.run({ op: 'compare', password, hash }) as Promise<boolean>;
  }

  /** Jobs waiting for a worker. */
  get waiting(): number {
    return this.queue.length;
  }

  private run(job: Job): Promise<string | boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.workers < this.size ? this.spawn() : null);
      if (!worker) return;
      const next = this.queue.shift()!;
      this.busy.set(worker, next);
      worker.ref();
      worker.postMessage(next.job);
    }
  }

  private spawn(): Worker {
    const worker = new Worker(workerSource, {
      eval: true,
      workerData: { bcryptPath: this.bcryptPath },
    });
    this.workers++;
    worker.on('message', (msg: { value?: string | boolean; error?: string }) => {
      const p = this.busy.get(worker);
      this.busy.delete(worker);
      // An idle worker must not keep the process alive.
      worker.unref();
      this.idle.push(worker);
      if (p) {
        if (msg.error !== undefined) p.reject(new Error(`bcrypt: ${msg.error}`));
        else p.resolve(msg.value!);
      }
      this.pump();
    });
    const lost = (e: Error) => {
      const p = this.busy.get(worker);
      this.busy.delete(worker);
      const i = this.idle.indexOf(worker);
      if (i >= 0) this.idle.splice(i, 1);
      this.workers--;
      p?.reject(e);
      this.pump();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      if (this.busy.has(worker) || this.idle.includes(worker))
        lost(new Error(`bcrypt worker exited with code ${code}`));
    });
    return worker;
  }

  /** Stops the workers; queued jobs fail. */
  async close(): Promise<void> {
    for (const p of this.queue.splice(0)) p.reject(new Error('bcrypt pool closed'));
    const all = [...this.idle, ...this.busy.keys()];
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
