import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidInput } from '../../core/errors.ts';
import type { EventQueue, QueueMessage } from '../../core/ports.ts';

export interface EventQueueUnderTest {
  queue: EventQueue;
  /** Payloads given up on in `queue`. */
  deadLetters(queue: string): Promise<unknown[]>;
  close(): Promise<void>;
}

export interface EventQueueContractOptions {
  make(): Promise<EventQueueUnderTest>;
  /** How long to wait for a delivery that should happen (polling implementations need more). */
  deliveryTimeoutMs?: number;
  /** How long to watch for a delivery that must not happen. */
  quietMs?: number;
}

export function uniqueQueue(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
}

/** The EventQueue port's contract: every implementation (memory, pg-boss, SQS) passes it. */
export function runEventQueueContract({
  make,
  deliveryTimeoutMs = 8000,
  quietMs = 1500,
}: EventQueueContractOptions): void {
  describe('EventQueue contract', () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of cleanups.splice(0).reverse()) await c();
    });

    async function setup(): Promise<EventQueueUnderTest> {
      const q = await make();
      cleanups.push(() => q.close());
      return q;
    }

    async function collect<T>(
      sut: EventQueueUnderTest,
      queue: string,
      handler?: (m: QueueMessage<T>) => Promise<void>,
      concurrency = 1,
    ) {
      const got: QueueMessage<T>[] = [];
      const stop = await sut.queue.consume<T>(
        queue,
        async (m) => {
          got.push(m);
          if (handler) await handler(m);
        },
        { concurrency },
      );
      cleanups.push(stop);
      return { got, stop };
    }

    it('delivers what was sent, with its id and attempt 1', async () => {
      const sut = await setup();
      const queue = uniqueQueue('roundtrip');
      const payload = {
        releaseId: 'rel_1',
        steps: ['build', 'migrate'],
        meta: { n: 1, ok: true, none: null },
      };
      const id = await sut.queue.send(queue, payload);
      const text = await sut.queue.send(queue, 'plain text');
      expect(id).toEqual(expect.any(String));
      const { got } = await collect(sut, queue);
      await waitFor(() => got.length === 2, deliveryTimeoutMs, 'two deliveries');
      const first = got.find((m) => m.id === id);
      expect(first).toEqual({ id, payload, attempt: 1 });
      expect(got.find((m) => m.id === text)?.payload).toBe('plain text');
    });

    it('redelivers a message whose handler threw, with attempt 2', async () => {
      const sut = await setup();
      const queue = uniqueQueue('retry');
      await sut.queue.send(queue, { n: 1 }, { maxAttempts: 3 });
      const { got } = await collect(sut, queue, async (m) => {
        if (m.attempt === 1) throw new Error('transient');
      });
      await waitFor(() => got.length === 2, deliveryTimeoutMs, 'the retry');
      expect(got.map((m) => m.attempt)).toEqual([1, 2]);
      expect(got[1]?.id).toBe(got[0]?.id);
      expect(got[1]?.payload).toEqual({ n: 1 });
      await sleep(quietMs);
      expect(got).toHaveLength(2);
    });

    it('gives up after maxAttempts and dead-letters the message', async () => {
      const sut = await setup();
      const queue = uniqueQueue('exhaust');
      await sut.queue.send(queue, { poison: true }, { maxAttempts: 2 });
      const { got } = await collect(sut, queue, async () => {
        throw new Error('always fails');
      });
      await waitFor(() => got.length === 2, deliveryTimeoutMs, 'two attempts');
      await waitFor(
        async () => (await sut.deadLetters(queue)).length === 1,
        deliveryTimeoutMs,
        'the dead letter',
      );
      await sleep(quietMs);
      expect(got.map((m) => m.attempt)).toEqual([1, 2]);
      expect(await sut.deadLetters(queue)).toEqual([{ poison: true }]);
    });

    it('delivers a message once per idempotency key', async () => {
      const sut = await setup();
      const queue = uniqueQueue('idem');
      const first = await sut.queue.send(queue, { v: 1 }, { idempotencyKey: 'release-1:build' });
      const again = await sut.queue.send(queue, { v: 2 }, { idempotencyKey: 'release-1:build' });
      const other = await sut.queue.send(queue, { v: 3 }, { idempotencyKey: 'release-1:migrate' });
      expect(first).toEqual(expect.any(String));
      expect(again).toBeNull();
      expect(other).toEqual(expect.any(String));
      const { got } = await collect(sut, queue);
      await waitFor(() => got.length === 2, deliveryTimeoutMs, 'two deliveries');
      // Still refused after the first one was handled.
      expect(
        await sut.queue.send(queue, { v: 4 }, { idempotencyKey: 'release-1:build' }),
      ).toBeNull();
      await sleep(quietMs);
      expect(
        got.map((m) => m.payload).sort((a, b) => (a as { v: number }).v - (b as { v: number }).v),
      ).toEqual([{ v: 1 }, { v: 3 }]);
    });

    it('does not deliver a delayed message before its delay', async () => {
      const sut = await setup();
      const queue = uniqueQueue('delay');
      const { got } = await collect(sut, queue);
      const sentAt = Date.now();
      await sut.queue.send(queue, { late: true }, { delaySeconds: 3 });
      await sut.queue.send(queue, { now: true });
      await waitFor(() => got.length === 1, deliveryTimeoutMs, 'the undelayed message');
      expect(got[0]?.payload).toEqual({ now: true });
      await waitFor(() => got.length === 2, deliveryTimeoutMs + 3000, 'the delayed message');
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(2900);
      expect(got[1]?.payload).toEqual({ late: true });
    });

    it('runs the messages of one group in order, one at a time, across concurrent handlers', async () => {
      const sut = await setup();
      const queue = uniqueQueue('group');
      for (let i = 0; i < 5; i++) await sut.queue.send(queue, { i }, { group: 'svc-1/production' });
      let active = 0;
      let maxActive = 0;
      const order: number[] = [];
      const { got } = await collect<{ i: number }>(
        sut,
        queue,
        async (m) => {
          active++;
          maxActive = Math.max(maxActive, active);
          order.push(m.payload.i);
          await sleep(60);
          active--;
        },
        4,
      );
      await waitFor(() => got.length === 5, deliveryTimeoutMs * 2, 'five deliveries');
      expect(order).toEqual([0, 1, 2, 3, 4]);
      expect(maxActive).toBe(1);
    });

    it('holds a group while its head is being retried', async () => {
      const sut = await setup();
      const queue = uniqueQueue('group-retry');
      await sut.queue.send(queue, { i: 0 }, { group: 'g', maxAttempts: 3 });
      await sut.queue.send(queue, { i: 1 }, { group: 'g' });
      const seen: string[] = [];
      const { got } = await collect<{ i: number }>(
        sut,
        queue,
        async (m) => {
          seen.push(`${m.payload.i}@${m.attempt}`);
          if (m.payload.i === 0 && m.attempt === 1) throw new Error('transient');
        },
        2,
      );
      await waitFor(() => got.length === 3, deliveryTimeoutMs * 2, 'three deliveries');
      expect(seen).toEqual(['0@1', '0@2', '1@1']);
    });

    it('runs ungrouped messages concurrently up to the concurrency asked for', async () => {
      const sut = await setup();
      const queue = uniqueQueue('parallel');
      for (let i = 0; i < 3; i++) await sut.queue.send(queue, { i });
      let active = 0;
      let maxActive = 0;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const { got } = await collect(
        sut,
        queue,
        async () => {
          active++;
          maxActive = Math.max(maxActive, active);
          await gate;
          active--;
        },
        3,
      );
      await waitFor(() => got.length === 3, deliveryTimeoutMs * 2, 'three concurrent deliveries');
      release();
      expect(maxActive).toBe(3);
    });

    it('stop() waits for the handler in flight and ends delivery', async () => {
      const sut = await setup();
      const queue = uniqueQueue('stop');
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let finished = false;
      const { got, stop } = await collect(sut, queue, async () => {
        await gate;
        finished = true;
      });
      await sut.queue.send(queue, { first: true });
      await waitFor(() => got.length === 1, deliveryTimeoutMs, 'the first delivery');
      let stopResolved = false;
      const stopping = stop().then(() => {
        stopResolved = true;
      });
      await sleep(300);
      expect(stopResolved).toBe(false);
      release();
      await stopping;
      expect(finished).toBe(true);
      await sut.queue.send(queue, { second: true });
      await sleep(quietMs);
      expect(got).toHaveLength(1);
    });

    it('counts waiting messages', async () => {
      const sut = await setup();
      const queue = uniqueQueue('depth');
      expect(sut.queue.depth).toBeTypeOf('function');
      for (let i = 0; i < 3; i++) await sut.queue.send(queue, { i });
      await waitFor(
        async () => (await sut.queue.depth!(queue)) === 3,
        deliveryTimeoutMs,
        'depth 3',
      );
    });

    it('refuses bad names and options with InvalidInput', async () => {
      const sut = await setup();
      await expect(sut.queue.send('has space', {})).rejects.toBeInstanceOf(InvalidInput);
      await expect(
        sut.queue.send(uniqueQueue('opts'), {}, { maxAttempts: 0 }),
      ).rejects.toBeInstanceOf(InvalidInput);
      await expect(
        sut.queue.send(uniqueQueue('opts'), {}, { delaySeconds: -1 }),
      ).rejects.toBeInstanceOf(InvalidInput);
      await expect(sut.queue.consume('bad;name', async () => {})).rejects.toBeInstanceOf(
        InvalidInput,
      );
    });

    it('answers ping', async () => {
      const sut = await setup();
      await expect(sut.queue.ping()).resolves.toBeUndefined();
    });
  });
}
