import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { runEventQueueContract, waitFor } from '../contracts/event-queue.case.ts';

runEventQueueContract({
  make: async () => {
    const queue = new MemoryQueue({ retryDelaySeconds: 0 });
    return { queue, deadLetters: (q) => queue.deadLetters(q), close: async () => {} };
  },
  deliveryTimeoutMs: 2000,
  quietMs: 200,
});

describe('MemoryQueue with a manual clock', () => {
  it('holds delayed messages and retry backoff until the clock passes them', async () => {
    const clock = new ManualClock();
    const queue = new MemoryQueue({ clock, retryDelaySeconds: 10 });
    const got: string[] = [];
    const stop = await queue.consume<string>('q', async (m) => {
      got.push(`${m.payload}@${m.attempt}`);
      if (m.payload === 'flaky' && m.attempt === 1) throw new Error('transient');
    });
    await queue.send('q', 'later', { delaySeconds: 60 });
    await queue.send('q', 'flaky');
    await waitFor(() => got.length === 1, 1000, 'flaky first attempt');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual(['flaky@1']);
    clock.advance(10_000);
    await waitFor(() => got.length === 2, 1000, 'the retry after backoff');
    expect(got).toEqual(['flaky@1', 'flaky@2']);
    clock.advance(50_000);
    await waitFor(() => got.length === 3, 1000, 'the delayed message');
    expect(got[2]).toBe('later@1');
    await stop();
  });

  it('copies payloads so handlers never share the sender’s objects', async () => {
    const queue = new MemoryQueue();
    const payload = { list: [1] };
    let received: { list: number[] } | undefined;
    const stop = await queue.consume<{ list: number[] }>('q', async (m) => {
      received = m.payload;
    });
    await queue.send('q', payload);
    payload.list.push(2);
    await waitFor(() => received !== undefined, 1000, 'delivery');
    expect(received).toEqual({ list: [1] });
    await stop();
  });
});
