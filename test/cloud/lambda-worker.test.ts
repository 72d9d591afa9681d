/**
 * The worker and schedule Lambdas with the event payloads AWS sends them: SQS batches
 * (answered with batchItemFailures) and EventBridge scheduled events.
 */
import { ChangeMessageVisibilityCommand } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { MemoryIdempotencyLedger, SqsQueue } from '../../adapters/queue/sqs.ts';
import type { MessageHandler, QueueMessage } from '../../core/ports.ts';
import { isScheduledEvent, isSqsEvent } from '../../functions/lambda/events.ts';
import {
  handleScheduledJob,
  scheduledJobsQueue,
  type ScheduledJobMessage,
} from '../../core/queues.ts';
import { createScheduleHandler } from '../../functions/lambda/schedule-handler.ts';
import { createWorkerHandler } from '../../functions/lambda/worker-handler.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

function setup(handlers: Record<string, MessageHandler<never>>) {
  const fake = new FakeSqs();
  const queue = new SqsQueue({
    client: fake.client,
    createQueues: true,
    ledger: new MemoryIdempotencyLedger(),
  });
  const logger = new MemoryLogger();
  return { fake, queue, logger, handler: createWorkerHandler({ queue, handlers, logger }) };
}

describe('worker Lambda', () => {
  it('handles a FIFO batch in order, deletes what succeeded and reports the rest from the first failure', async () => {
    const seen: unknown[] = [];
    const { fake, queue, handler } = setup({
      'release-steps': (async (m: QueueMessage<{ n: number }>) => {
        seen.push(m.payload.n);
        if (m.payload.n === 2) throw new Error('docker unreachable');
      }) as MessageHandler<never>,
    });
    for (const n of [1, 2, 3]) await queue.send('release-steps', { n }, { group: `g${n}` });
    const event = await pollEvent(fake, queue, 'selfdevop-release-steps.fifo');
    expect(isSqsEvent(event)).toBe(true);
    expect(event.Records).toHaveLength(3);
    const out = await handler(event);
    expect(seen).toEqual([1, 2]);
    expect(out.batchItemFailures).toEqual([
      { itemIdentifier: event.Records[1]!.messageId },
      { itemIdentifier: event.Records[2]!.messageId },
    ]);
    await settle(fake, queue, 'selfdevop-release-steps.fifo', event, out);
    expect(fake.bodies('selfdevop-release-steps.fifo').map((b) => JSON.parse(b).payload.n)).toEqual(
      [2, 3],
    );
    // The failed one waits out its backoff (2 s on attempt 1), the untried one comes back at once.
    const changes = fake.mock
      .commandCalls(ChangeMessageVisibilityCommand)
      .map((c) => [c.args[0].input.ReceiptHandle, c.args[0].input.VisibilityTimeout]);
    expect(changes).toEqual([
      [event.Records[1]!.receiptHandle, 2],
      [event.Records[2]!.receiptHandle, 0],
    ]);
    const again = await pollEvent(fake, queue, 'selfdevop-release-steps.fifo');
    expect(again.Records.map((r) => JSON.parse(r.body).payload.n)).toEqual([3]);
    fake.mock.restore();
  });

  it('dead-letters a message on its last attempt and lets the batch go on', async () => {
    const { fake, queue, handler } = setup({
      'release-steps': (async () => {
        throw new Error('poison');
      }) as MessageHandler<never>,
    });
    await queue.send('release-steps', { poison: true }, { maxAttempts: 1 });
    const event = await pollEvent(fake, queue, 'selfdevop-release-steps.fifo');
    const out = await handler(event);
    expect(out).toEqual({ batchItemFailures: [] });
    await settle(fake, queue, 'selfdevop-release-steps.fifo', event, out);
    expect(fake.bodies('selfdevop-release-steps__dlq.fifo').map((b) => JSON.parse(b))).toEqual([
      { payload: { poison: true } },
    ]);
    expect(fake.bodies('selfdevop-release-steps.fifo')).toEqual([]);
    fake.mock.restore();
  });

  it('relays a due batch from the delay queue into the FIFO queue', async () => {
    const { fake, queue, handler } = setup({
      'release-retire': (async () => {}) as MessageHandler<never>,
    });
    await queue.send('release-retire', { releaseId: 'rel_1' }, { delaySeconds: 1 });
    fake.now = () => Date.now() + 2000;
    const event = await pollEvent(fake, queue, 'selfdevop-release-retire__delay');
    expect(event.Records).toHaveLength(1);
    const realNow = Date.now;
    Date.now = () => realNow() + 2000;
    try {
      expect(await handler(event)).toEqual({ batchItemFailures: [] });
    } finally {
      Date.now = realNow;
    }
    expect(fake.bodies('selfdevop-release-retire.fifo').map((b) => JSON.parse(b))).toEqual([
      { payload: { releaseId: 'rel_1' } },
    ]);
    fake.mock.restore();
  });

  it('returns a batch from a queue it has no handler for, and refuses other events', async () => {
    const { fake, queue, handler, logger } = setup({
      'release-steps': (async () => {}) as MessageHandler<never>,
    });
    await queue.send('other', { x: 1 });
    const event = await pollEvent(fake, queue, 'selfdevop-other.fifo');
    expect((await handler(event)).batchItemFailures).toHaveLength(1);
    expect(JSON.stringify(logger.entries)).toContain('no handler for this queue');
    await expect(handler({ version: '2.0', rawPath: '/' })).rejects.toThrow(
      'the worker handles SQS events and Swarm member calls only',
    );
    expect(await handler({ Records: [] })).toEqual({ batchItemFailures: [] });
    fake.mock.restore();
  });
});

/** What an EventBridge rule on a schedule delivers to its Lambda target. */
const scheduledEvent = {
  version: '0',
  id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '111122223333',
  time: '2026-03-01T10:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:111122223333:rule/selfdevop-maintenance'],
  detail: {},
};

describe('schedule Lambda', () => {
  it('queues the job named after the rule, once per EventBridge event', async () => {
    expect(isScheduledEvent(scheduledEvent)).toBe(true);
    const queue = new MemoryQueue();
    const handler = createScheduleHandler({
      queue,
      rulePrefix: 'selfdevop-',
      logger: new MemoryLogger(),
    });
    const first = await handler(scheduledEvent);
    expect(first).toEqual({ job: 'maintenance', messageId: expect.any(String) });
    expect((await handler(scheduledEvent)).messageId).toBeNull();
    expect((await handler({ ...scheduledEvent, id: 'another' })).messageId).toEqual(
      expect.any(String),
    );
    const got: ScheduledJobMessage[] = [];
    const stop = await queue.consume<ScheduledJobMessage>(
      scheduledJobsQueue,
      async (m) => void got.push(m.payload),
    );
    await new Promise((r) => setTimeout(r, 50));
    await stop();
    expect(got).toEqual([
      { job: 'maintenance', firedAt: '2026-03-01T10:00:00Z' },
      { job: 'maintenance', firedAt: '2026-03-01T10:00:00Z' },
    ]);
  });

  it('refuses an event that is not a scheduled event', async () => {
    const handler = createScheduleHandler({
      queue: new MemoryQueue(),
      rulePrefix: 'selfdevop-',
      logger: new MemoryLogger(),
    });
    await expect(handler({ Records: [] })).rejects.toThrow('EventBridge scheduled events only');
  });

  it('runs a known job on the worker and drops an unknown one with a warning', async () => {
    let runs = 0;
    const logger = new MemoryLogger();
    const run = handleScheduledJob(
      [{ name: 'maintenance', cron: '0 * * * *', run: async () => void runs++ }],
      logger,
    );
    await run({ id: '1', attempt: 1, payload: { job: 'maintenance', firedAt: 'x' } });
    await run({ id: '2', attempt: 1, payload: { job: 'unknown', firedAt: 'x' } });
    expect(runs).toBe(1);
    expect(JSON.stringify(logger.entries)).toContain('no such scheduled job');
  });
});
