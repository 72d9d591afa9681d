import {
  DeleteMessageCommand,
  ListQueuesCommand,
  SQSClient,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it, vi } from 'vitest';
import {
  MemoryIdempotencyLedger,
  SqsQueue,
  handleSqsBatch,
  type SqsRecord,
} from '../../adapters/queue/sqs.ts';
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import { runEventQueueContract } from '../contracts/event-queue.case.ts';
import { FakeSqs } from '../cloud/fakes/sqs.ts';

const fastPolling = {
  waitTimeSeconds: 0,
  pollIntervalMs: 20,
  retryDelaySeconds: 0,
  createQueues: true,
} as const;

function payloadsOf(fake: FakeSqs, name: string): unknown[] {
  return fake.bodies(name).map((b) => (JSON.parse(b) as { payload: unknown }).payload);
}

runEventQueueContract({
  make: async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({
      client: fake.client,
      ledger: new MemoryIdempotencyLedger(),
      ...fastPolling,
    });
    return {
      queue,
      deadLetters: async (q) => payloadsOf(fake, queue.physicalNames(q).deadLetter),
      close: async () => fake.mock.restore(),
    };
  },
  deliveryTimeoutMs: 3000,
  quietMs: 300,
});

/** An SQS record as Lambda delivers it in an SQS event (FIFO queue). */
function record(
  n: number,
  overrides: {
    receiveCount?: number;
    group?: string;
    payload?: unknown;
    maxAttempts?: number;
  } = {},
): SqsRecord {
  return {
    messageId: `059f36b4-87a3-44ab-83d2-66197${String(n).padStart(7, '0')}`,
    receiptHandle: `AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a-${n}`,
    body: JSON.stringify({ payload: overrides.payload ?? { n } }),
    attributes: {
      ApproximateReceiveCount: String(overrides.receiveCount ?? 1),
      SentTimestamp: '1545082649183',
      SequenceNumber: `1862708813000000${n}`,
      MessageGroupId: overrides.group ?? 'svc_1:env_1',
      SenderId: 'AIDAIENQZJOLO23YVJ4VO',
      MessageDeduplicationId: `dedup-${n}`,
      ApproximateFirstReceiveTimestamp: '1545082649185',
    },
    messageAttributes: {
      'sdo-id': {
        stringValue: `id-${n}`,
        stringListValues: [],
        binaryListValues: [],
        dataType: 'String',
      } as SqsRecord['messageAttributes'][string],
      'sdo-queue': { stringValue: 'release-steps', dataType: 'String' },
      'sdo-max-attempts': { stringValue: String(overrides.maxAttempts ?? 5), dataType: 'Number' },
    },
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:eu-west-1:111122223333:selfdevop-release-steps.fifo',
  } as SqsRecord;
}

describe('handleSqsBatch (FIFO batch semantics)', () => {
  it('reports nothing when every record is handled, in order', async () => {
    const seen: number[] = [];
    const out = await handleSqsBatch([record(1), record(2), record(3)], async (r) => {
      seen.push((JSON.parse(r.body) as { payload: { n: number } }).payload.n);
    });
    expect(out).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual([1, 2, 3]);
  });

  it('stops at the first failure and reports it with every later record', async () => {
    const seen: string[] = [];
    const records = [record(1), record(2), record(3, { group: 'other' }), record(4)];
    const out = await handleSqsBatch(records, async (r) => {
      seen.push(r.messageId);
      if (r === records[1]) throw new Error('boom');
    });
    expect(seen).toEqual([records[0]!.messageId, records[1]!.messageId]);
    expect(out.batchItemFailures).toEqual(
      records.slice(1).map((r) => ({ itemIdentifier: r.messageId })),
    );
  });

  it('reports the whole batch when the first record fails', async () => {
    const records = [record(1), record(2)];
    const out = await handleSqsBatch(records, async () => {
      throw new Error('down');
    });
    expect(out.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(
      records.map((r) => r.messageId),
    );
  });

  it('goes on past a failure that giveUp takes off the queue', async () => {
    const records = [record(1), record(2), record(3)];
    const out = await handleSqsBatch(
      records,
      async (r) => {
        if (r !== records[2]) throw new Error('poison');
      },
      async (r) => r === records[0],
    );
    expect(out.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([
      records[1]!.messageId,
      records[2]!.messageId,
    ]);
  });

  it('reports an empty batch as fully handled', async () => {
    expect(await handleSqsBatch([], async () => {})).toEqual({ batchItemFailures: [] });
  });
});

describe('SqsQueue', () => {
  it('sends to the FIFO queue with the group, a hashed dedup id and its own attributes', async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({ client: fake.client, createQueues: true });
    const id = await queue.send(
      'release-steps',
      { releaseId: 'rel_1' },
      { group: 'svc_1:env_1', idempotencyKey: 'rel_1:queued', maxAttempts: 7 },
    );
    const input = fake.mock.commandCalls(SendMessageCommand).at(-1)?.args[0].input;
    expect(input).toMatchObject({
      QueueUrl: 'https://sqs.eu-west-1.amazonaws.com/111122223333/selfdevop-release-steps.fifo',
      MessageBody: JSON.stringify({ payload: { releaseId: 'rel_1' } }),
      MessageGroupId: 'svc_1:env_1',
      MessageDeduplicationId: expect.stringMatching(/^[0-9a-f]{64}$/),
      MessageAttributes: {
        'sdo-id': { DataType: 'String', StringValue: id },
        'sdo-queue': { DataType: 'String', StringValue: 'release-steps' },
        'sdo-max-attempts': { DataType: 'Number', StringValue: '7' },
      },
    });
    expect(input?.DelaySeconds).toBeUndefined();
    fake.mock.restore();
  });

  it('gives an ungrouped message a group of its own', async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({ client: fake.client, createQueues: true });
    const id = await queue.send('jobs', { a: 1 });
    expect(fake.mock.commandCalls(SendMessageCommand).at(-1)?.args[0].input.MessageGroupId).toBe(
      id,
    );
    fake.mock.restore();
  });

  it('relies on SQS deduplication when no ledger is given (5-minute window)', async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({ client: fake.client, createQueues: true });
    await queue.send('jobs', { v: 1 }, { idempotencyKey: 'k' });
    await queue.send('jobs', { v: 2 }, { idempotencyKey: 'k' });
    expect(payloadsOf(fake, 'selfdevop-jobs.fifo')).toEqual([{ v: 1 }]);
    fake.mock.restore();
  });

  it('gives the idempotency key back when the send fails, so a retry is sent', async () => {
    const ledger = new MemoryIdempotencyLedger();
    const down = new FakeSqs();
    down.mock
      .on(SendMessageCommand)
      .rejects(Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable' }));
    const failing = new SqsQueue({ client: down.client, createQueues: true, ledger });
    await expect(failing.send('jobs', { v: 1 }, { idempotencyKey: 'k' })).rejects.toThrow(
      'Service Unavailable',
    );
    down.mock.restore();
    const up = new FakeSqs();
    const retry = new SqsQueue({ client: up.client, createQueues: true, ledger });
    expect(await retry.send('jobs', { v: 1 }, { idempotencyKey: 'k' })).toEqual(expect.any(String));
    expect(await retry.send('jobs', { v: 1 }, { idempotencyKey: 'k' })).toBeNull();
    up.mock.restore();
  });

  it('sends delayed messages through the standard delay queue, one 900 s hop at a time', async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({ client: fake.client, createQueues: true });
    await queue.send('release-retire', { releaseId: 'rel_1' }, { delaySeconds: 3600, group: 'g' });
    const input = fake.mock.commandCalls(SendMessageCommand).at(-1)?.args[0].input;
    expect(input?.QueueUrl).toMatch(/selfdevop-release-retire__delay$/);
    expect(input?.DelaySeconds).toBe(900);
    expect(input?.MessageGroupId).toBeUndefined();
    expect(await queue.depth('release-retire')).toBe(1);
    // Relayed before it is due: it takes another hop rather than reaching the FIFO queue.
    const body = fake.bodies('selfdevop-release-retire__delay')[0]!;
    expect(await queue.relayDelayed([{ messageId: 'm1', body }])).toEqual({
      batchItemFailures: [],
    });
    expect(fake.bodies('selfdevop-release-retire.fifo')).toEqual([]);
    expect(fake.mock.commandCalls(SendMessageCommand).at(-1)?.args[0].input.DelaySeconds).toBe(900);
    // Once due, it lands in the FIFO queue in its group.
    const due = JSON.stringify({ ...JSON.parse(body), dueAt: Date.now() - 1 });
    await queue.relayDelayed([{ messageId: 'm2', body: due }]);
    expect(payloadsOf(fake, 'selfdevop-release-retire.fifo')).toEqual([{ releaseId: 'rel_1' }]);
    expect(fake.mock.commandCalls(SendMessageCommand).at(-1)?.args[0].input.MessageGroupId).toBe(
      'g',
    );
    expect(await queue.relayDelayed([{ messageId: 'bad', body: 'not json' }])).toEqual({
      batchItemFailures: [{ itemIdentifier: 'bad' }],
    });
    fake.mock.restore();
  });

  it('handles a Lambda batch: retries keep FIFO order, a spent message is dead-lettered and removed', async () => {
    const fake = new FakeSqs();
    // No backoff: the reported head is visible again at once.
    const queue = new SqsQueue({ client: fake.client, createQueues: true, retryDelaySeconds: 0 });
    await queue.send('release-steps', { n: 1 }, { group: 'g', maxAttempts: 2 });
    await queue.send('release-steps', { n: 2 }, { group: 'g' });
    const url = await queue.urlOf('selfdevop-release-steps.fifo');
    const receive = async () => {
      const m = (
        fake as unknown as { receive(i: object): { Messages: Array<Record<string, unknown>> } }
      ).receive({ QueueUrl: url, MaxNumberOfMessages: 10, VisibilityTimeout: 0 });
      return m.Messages.map(
        (x) =>
          ({
            messageId: x.MessageId,
            receiptHandle: x.ReceiptHandle,
            body: x.Body,
            attributes: x.Attributes,
            messageAttributes: Object.fromEntries(
              Object.entries(
                x.MessageAttributes as Record<string, { StringValue: string; DataType: string }>,
              ).map(([k, v]) => [k, { stringValue: v.StringValue, dataType: v.DataType }]),
            ),
          }) as SqsRecord,
      );
    };
    const handler = async (m: { payload: unknown; attempt: number }) => {
      if ((m.payload as { n: number }).n === 1) throw new Error('poison');
    };
    const first = await receive();
    expect(first).toHaveLength(1); // one per group in flight
    const out1 = await queue.handleBatch('release-steps', first, handler);
    expect(out1.batchItemFailures).toEqual([{ itemIdentifier: first[0]!.messageId }]);
    const second = await receive();
    expect(second[0]?.attributes.ApproximateReceiveCount).toBe('2');
    const out2 = await queue.handleBatch('release-steps', second, handler);
    expect(out2).toEqual({ batchItemFailures: [] });
    // As the event source mapping does: records not reported are deleted.
    for (const r of second)
      await fake.client.send(
        new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: r.receiptHandle }),
      );
    expect(payloadsOf(fake, 'selfdevop-release-steps__dlq.fifo')).toEqual([{ n: 1 }]);
    expect(payloadsOf(fake, 'selfdevop-release-steps.fifo')).toEqual([{ n: 2 }]);
    fake.mock.restore();
  });

  it('says so when a queue the stack should have made is missing', async () => {
    const fake = new FakeSqs();
    const queue = new SqsQueue({ client: fake.client });
    await expect(queue.send('release-steps', {})).rejects.toThrow(
      'SQS queue selfdevop-release-steps.fifo does not exist; the cloud stack creates it (or set createQueues for local use)',
    );
    fake.mock.restore();
  });

  it('uses queue URLs it was given without looking them up', async () => {
    const fake = new FakeSqs();
    const q = fake.create('selfdevop-jobs.fifo', { FifoQueue: 'true' });
    const queue = new SqsQueue({
      client: fake.client,
      queueUrls: { 'selfdevop-jobs.fifo': q.url },
    });
    await queue.send('jobs', { a: 1 });
    expect(fake.mock.commandCalls(SendMessageCommand)).toHaveLength(1);
    expect(fake.bodies('selfdevop-jobs.fifo')).toHaveLength(1);
    fake.mock.restore();
  });

  it('maps names SQS refuses and refuses names too long for it', () => {
    const queue = new SqsQueue({ client: new FakeSqs().client, namePrefix: 'sdo-' });
    expect(queue.physicalNames('deploy/eu.1')).toEqual({
      main: 'sdo-deploy-eu-1.fifo',
      deadLetter: 'sdo-deploy-eu-1__dlq.fifo',
      delay: 'sdo-deploy-eu-1__delay',
    });
    expect(() => queue.physicalNames('x'.repeat(80))).toThrow(InvalidInput);
    expect(() => new SqsQueue({ namePrefix: 'bad.prefix', client: new FakeSqs().client })).toThrow(
      /^QUEUE_NAME_PREFIX may contain only/,
    );
  });

  it('makes its own client from settings on first use, and destroy() closes only a client it has', async () => {
    const mock = mockClient(SQSClient);
    const destroy = vi.spyOn(SQSClient.prototype, 'destroy');
    try {
      mock.on(ListQueuesCommand).resolves({ QueueUrls: [] });
      const queue = new SqsQueue({
        client: { region: 'eu-central-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } },
        namePrefix: 'sdo-',
      });
      await queue.destroy();
      expect(destroy).not.toHaveBeenCalled();
      await queue.ping();
      expect(mock.commandCalls(ListQueuesCommand)[0]?.args[0].input).toEqual({
        QueueNamePrefix: 'sdo-',
        MaxResults: 1,
      });
      expect(await (mock.call(0).thisValue as SQSClient).config.region()).toBe('eu-central-1');
      await queue.destroy();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
      mock.restore();
    }
  });

  it('answers ping with Unavailable when SQS does not', async () => {
    const fake = new FakeSqs();
    fake.mock.rejects(Object.assign(new Error('connect ECONNREFUSED'), { name: 'TimeoutError' }));
    await expect(new SqsQueue({ client: fake.client }).ping()).rejects.toBeInstanceOf(Unavailable);
    fake.mock.restore();
  });
});
