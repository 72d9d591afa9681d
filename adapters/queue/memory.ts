import { randomUUID } from 'node:crypto';
import type { Clock, EventQueue, MessageHandler, SendOptions } from '../../core/ports.ts';
import { SystemClock } from '../clock/system.ts';
import { assertName, assertSendOptions } from './names.ts';

export interface MemoryQueueOptions {
  /** Delays and retry backoff are measured against this clock (a ManualClock in unit tests). */
  clock?: Clock;
  defaultMaxAttempts?: number;
  /** First retry delay, doubled per attempt; 0 retries at once (as pg-boss with retryDelay 0). */
  retryDelaySeconds?: number;
  /** How often idle consumers look again; real time, whatever the clock. */
  pollIntervalMs?: number;
}

interface StoredMessage {
  id: string;
  seq: number;
  payload: unknown;
  group: string | undefined;
  maxAttempts: number;
  /** Deliveries so far. */
  attempts: number;
  availableAt: number;
  state: 'ready' | 'active' | 'done' | 'dead';
}

interface Consumer {
  queue: string;
  handler: MessageHandler<unknown>;
  concurrency: number;
  active: Set<Promise<void>>;
  stopped: boolean;
}

/**
 * An in-process EventQueue with the pg-boss adapter's semantics: idempotency keys are
 * remembered for the queue's life, a group's messages run one at a time in send order
 * (a retrying message holds its group), failed messages are retried with attempt numbers and dead-lettered after maxAttempts.
 * Payloads are copied (structuredClone) so a handler never shares objects with the sender.
 */
export class MemoryQueue implements EventQueue {
  private readonly clock: Clock;
  private readonly defaultMaxAttempts: number;
  private readonly retryDelaySeconds: number;
  private readonly pollIntervalMs: number;
  private readonly messages = new Map<string, StoredMessage[]>();
  private readonly keys = new Map<string, Set<string>>();
  private readonly consumers = new Set<Consumer>();
  private seq = 0;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(options: MemoryQueueOptions = {}) {
    this.clock = options.clock ?? new SystemClock();
    this.defaultMaxAttempts = options.defaultMaxAttempts ?? 5;
    this.retryDelaySeconds = options.retryDelaySeconds ?? 2;
    this.pollIntervalMs = options.pollIntervalMs ?? 10;
  }

  async send<T>(queue: string, payload: T, options: SendOptions = {}): Promise<string | null> {
    assertName('queue', queue);
    assertSendOptions(options);
    if (options.idempotencyKey !== undefined) {
      const seen = this.keys.get(queue) ?? new Set<string>();
      this.keys.set(queue, seen);
      if (seen.has(options.idempotencyKey)) return null;
      seen.add(options.idempotencyKey);
    }
    const message: StoredMessage = {
      id: randomUUID(),
      seq: this.seq++,
      payload: structuredClone(payload),
      group: options.group,
      maxAttempts: options.maxAttempts ?? this.defaultMaxAttempts,
      attempts: 0,
      availableAt: this.clock.now().getTime() + (options.delaySeconds ?? 0) * 1000,
      state: 'ready',
    };
    const list = this.messages.get(queue) ?? [];
    list.push(message);
    this.messages.set(queue, list);
    queueMicrotask(() => this.pump());
    return message.id;
  }

  async consume<T>(
    queue: string,
    handler: MessageHandler<T>,
    options: { concurrency?: number } = {},
  ): Promise<() => Promise<void>> {
    assertName('queue', queue);
    const consumer: Consumer = {
      queue,
      handler: handler as MessageHandler<unknown>,
      concurrency: Math.max(1, options.concurrency ?? 1),
      active: new Set(),
      stopped: false,
    };
    this.consumers.add(consumer);
    this.timer ??= setInterval(() => this.pump(), this.pollIntervalMs);
    queueMicrotask(() => this.pump());
    return async () => {
      consumer.stopped = true;
      this.consumers.delete(consumer);
      if (this.consumers.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
      while (consumer.active.size > 0) await Promise.allSettled([...consumer.active]);
    };
  }

  async depth(queue: string): Promise<number> {
    assertName('queue', queue);
    return (this.messages.get(queue) ?? []).filter((m) => m.state === 'ready').length;
  }

  /** Payloads of the messages given up on in `queue`, oldest first. */
  async deadLetters(queue: string): Promise<unknown[]> {
    return (this.messages.get(queue) ?? [])
      .filter((m) => m.state === 'dead')
      .map((m) => structuredClone(m.payload));
  }

  async ping(): Promise<void> {}

  /** Delivers what is due now; tests using a ManualClock call it after advancing the clock. */
  pump(): void {
    for (const consumer of this.consumers) {
      while (!consumer.stopped && consumer.active.size < consumer.concurrency) {
        const next = this.nextFor(consumer.queue);
        if (!next) break;
        this.deliver(consumer, next);
      }
    }
  }

  private nextFor(queue: string): StoredMessage | undefined {
    const now = this.clock.now().getTime();
    const list = this.messages.get(queue) ?? [];
    // A group is held by a message that is running or waiting out a retry delay, so its
    // messages run one at a time and in send order, retries included (pg-boss key_strict_fifo).
    const holders = new Map<string, StoredMessage>();
    for (const m of list) {
      const holding = m.state === 'active' || (m.state === 'ready' && m.attempts > 0);
      if (holding && m.group !== undefined && !holders.has(m.group)) holders.set(m.group, m);
    }
    return list.find((m) => {
      if (m.state !== 'ready' || m.availableAt > now) return false;
      const holder = m.group === undefined ? undefined : holders.get(m.group);
      return holder === undefined || holder === m;
    });
  }

  private deliver(consumer: Consumer, message: StoredMessage): void {
    message.state = 'active';
    message.attempts += 1;
    const run = (async () => {
      try {
        await consumer.handler({
          id: message.id,
          payload: structuredClone(message.payload),
          attempt: message.attempts,
        });
        message.state = 'done';
        // Forgotten once handled (its idempotency key stays): a long-lived queue would
        // otherwise hold every payload it ever carried and scan them on each delivery.
        const list = this.messages.get(consumer.queue);
        const at = list?.indexOf(message) ?? -1;
        if (at >= 0) list!.splice(at, 1);
      } catch {
        if (message.attempts >= message.maxAttempts) {
          message.state = 'dead';
        } else {
          const delay = this.retryDelaySeconds * 2 ** (message.attempts - 1);
          message.availableAt = this.clock.now().getTime() + delay * 1000;
          message.state = 'ready';
        }
      }
    })();
    consumer.active.add(run);
    void run.finally(() => {
      consumer.active.delete(run);
      this.pump();
    });
  }
}
