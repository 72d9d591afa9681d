/**
 * An in-memory SQS behind aws-sdk-client-mock, with the behaviours selfdevop relies on:
 * FIFO groups (nothing more of a group while one of its messages is in flight), 5-minute
 * deduplication that still answers success, per-message DelaySeconds on standard queues
 * only, visibility timeouts, receive counts, redrive to a dead-letter queue, and the
 * errors SQS gives for a missing queue or a FIFO send without a group.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
  type MessageAttributeValue,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';

class SqsError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface FakeMessage {
  messageId: string;
  body: string;
  groupId: string | undefined;
  dedupId: string | undefined;
  attributes: Record<string, MessageAttributeValue>;
  sentAt: number;
  visibleAt: number;
  receiveCount: number;
  receiptHandle: string | null;
}

interface FakeQueue {
  name: string;
  url: string;
  arn: string;
  fifo: boolean;
  contentBasedDeduplication: boolean;
  visibilityTimeoutSeconds: number;
  redrive: { deadLetterTargetArn: string; maxReceiveCount: number } | null;
  messages: FakeMessage[];
  dedup: Map<string, { at: number; messageId: string }>;
}

const account = '111122223333';
const region = 'eu-west-1';
const dedupWindowMs = 5 * 60_000;

export class FakeSqs {
  readonly queues = new Map<string, FakeQueue>();
  readonly client = new SQSClient({
    region,
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  readonly mock = mockClient(this.client);
  now: () => number = () => Date.now();

  constructor() {
    this.mock
      .on(CreateQueueCommand)
      .callsFake((i: CreateQueueCommand['input']) => ({
        QueueUrl: this.create(i.QueueName ?? '', i.Attributes ?? {}).url,
      }))
      .on(GetQueueUrlCommand)
      .callsFake((i: GetQueueUrlCommand['input']) => ({
        QueueUrl: this.byName(i.QueueName ?? '').url,
      }))
      .on(SendMessageCommand)
      .callsFake((i: SendMessageCommand['input']) => this.sendMessage(i))
      .on(ReceiveMessageCommand)
      .callsFake((i: ReceiveMessageCommand['input']) => this.receive(i))
      .on(DeleteMessageCommand)
      .callsFake((i: DeleteMessageCommand['input']) =>
        this.delete(i.QueueUrl ?? '', i.ReceiptHandle ?? ''),
      )
      .on(ChangeMessageVisibilityCommand)
      .callsFake((i: ChangeMessageVisibilityCommand['input']) => this.changeVisibility(i))
      .on(GetQueueAttributesCommand)
      .callsFake((i: GetQueueAttributesCommand['input']) => this.attributes(i.QueueUrl ?? ''))
      .on(ListQueuesCommand)
      .callsFake((i: ListQueuesCommand['input']) => ({
        QueueUrls: [...this.queues.values()]
          .filter((q) => q.name.startsWith(i.QueueNamePrefix ?? ''))
          .map((q) => q.url),
      }));
  }

  /**
   * What the CDK stack creates for one worker queue: the FIFO queue with its redrive to a
   * FIFO dead-letter queue, and its standard delay queue (attributes as in infra-cdk).
   */
  createWorkerQueue(names: { main: string; delay: string; deadLetter: string }): void {
    const dlq = this.create(names.deadLetter, { FifoQueue: 'true' });
    this.create(names.main, {
      FifoQueue: 'true',
      ContentBasedDeduplication: 'true',
      VisibilityTimeout: '720',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: 10 }),
    });
    this.create(names.delay, { VisibilityTimeout: '720' });
  }

  create(name: string, attributes: Record<string, string>): FakeQueue {
    const existing = this.queues.get(name);
    if (existing) return existing;
    const fifo = attributes.FifoQueue === 'true';
    if (fifo !== name.endsWith('.fifo'))
      throw new SqsError(
        'InvalidParameterValue',
        `queue ${name}: FIFO queues must end in .fifo, and only FIFO queues may`,
      );
    if (!/^[\w-]{1,75}(\.fifo)?$/.test(name))
      throw new SqsError('InvalidParameterValue', `queue name ${name} is not valid`);
    const q: FakeQueue = {
      name,
      url: `https://sqs.${region}.amazonaws.com/${account}/${name}`,
      arn: `arn:aws:sqs:${region}:${account}:${name}`,
      fifo,
      contentBasedDeduplication: attributes.ContentBasedDeduplication === 'true',
      visibilityTimeoutSeconds: Number(attributes.VisibilityTimeout ?? 30),
      redrive: attributes.RedrivePolicy
        ? (JSON.parse(attributes.RedrivePolicy) as FakeQueue['redrive'])
        : null,
      messages: [],
      dedup: new Map(),
    };
    this.queues.set(name, q);
    return q;
  }

  byName(name: string): FakeQueue {
    const q = this.queues.get(name);
    if (!q) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.');
    return q;
  }

  byUrl(url: string): FakeQueue {
    const q = [...this.queues.values()].find((x) => x.url === url);
    if (!q) throw new SqsError('QueueDoesNotExist', 'The specified queue does not exist.');
    return q;
  }

  /**
   * Sends of every other SQSClient (the one a composition root makes for itself) go to this
   * fake too, until the returned undo runs.
   */
  interceptEveryClient(): () => void {
    const own = this.client;
    const original = SQSClient.prototype.send;
    SQSClient.prototype.send = function (...args: Parameters<SQSClient['send']>) {
      return (own.send as (...a: unknown[]) => unknown)(...args);
    } as SQSClient['send'];
    return () => {
      SQSClient.prototype.send = original;
    };
  }

  /** Bodies of the messages held by the named queue, in order. */
  bodies(name: string): string[] {
    return (this.queues.get(name)?.messages ?? []).map((m) => m.body);
  }

  private sendMessage(i: SendMessageCommand['input']) {
    const q = this.byUrl(i.QueueUrl ?? '');
    const now = this.now();
    if (q.fifo) {
      if (!i.MessageGroupId)
        throw new SqsError(
          'MissingParameter',
          'The request must contain the parameter MessageGroupId.',
        );
      if (i.DelaySeconds)
        throw new SqsError(
          'InvalidParameterValue',
          'Value for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.',
        );
      if (!i.MessageDeduplicationId && q.contentBasedDeduplication)
        i = {
          ...i,
          MessageDeduplicationId: createHash('sha256')
            .update(i.MessageBody ?? '')
            .digest('hex'),
        };
      if (!i.MessageDeduplicationId)
        throw new SqsError(
          'InvalidParameterValue',
          'The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly',
        );
      const seen = q.dedup.get(i.MessageDeduplicationId ?? '');
      // A duplicate inside the window is accepted and answered as a success, and dropped.
      if (seen && now - seen.at < dedupWindowMs) return { MessageId: seen.messageId };
    } else if (i.MessageGroupId) {
      throw new SqsError(
        'InvalidParameterValue',
        'MessageGroupId is not valid for a standard queue in this fake',
      );
    }
    if (i.DelaySeconds !== undefined && (i.DelaySeconds < 0 || i.DelaySeconds > 900))
      throw new SqsError('InvalidParameterValue', 'DelaySeconds must be between 0 and 900');
    const m: FakeMessage = {
      messageId: randomUUID(),
      body: i.MessageBody ?? '',
      groupId: i.MessageGroupId,
      dedupId: i.MessageDeduplicationId,
      attributes: i.MessageAttributes ?? {},
      sentAt: now,
      visibleAt: now + (i.DelaySeconds ?? 0) * 1000,
      receiveCount: 0,
      receiptHandle: null,
    };
    if (q.fifo && m.dedupId) q.dedup.set(m.dedupId, { at: now, messageId: m.messageId });
    q.messages.push(m);
    return { MessageId: m.messageId };
  }

  private receive(i: ReceiveMessageCommand['input']) {
    const q = this.byUrl(i.QueueUrl ?? '');
    const now = this.now();
    const max = i.MaxNumberOfMessages ?? 1;
    const inFlight = (m: FakeMessage) => m.receiptHandle !== null && m.visibleAt > now;
    const blocked = new Set(q.fifo ? q.messages.filter(inFlight).map((m) => m.groupId) : []);
    const picked: FakeMessage[] = [];
    for (const m of [...q.messages]) {
      if (picked.length >= max) break;
      if (m.visibleAt > now) {
        if (q.fifo) blocked.add(m.groupId);
        continue;
      }
      if (q.fifo && blocked.has(m.groupId)) continue;
      if (q.redrive && m.receiveCount >= q.redrive.maxReceiveCount) {
        this.moveToDeadLetter(q, m);
        continue;
      }
      m.receiveCount++;
      m.receiptHandle = randomUUID();
      m.visibleAt = now + (i.VisibilityTimeout ?? q.visibilityTimeoutSeconds) * 1000;
      if (q.fifo) blocked.add(m.groupId);
      picked.push(m);
    }
    return {
      Messages: picked.map((m) => ({
        MessageId: m.messageId,
        ReceiptHandle: m.receiptHandle ?? '',
        Body: m.body,
        Attributes: {
          ApproximateReceiveCount: String(m.receiveCount),
          SentTimestamp: String(m.sentAt),
          ...(m.groupId ? { MessageGroupId: m.groupId } : {}),
        },
        MessageAttributes: m.attributes,
      })),
    };
  }

  private moveToDeadLetter(q: FakeQueue, m: FakeMessage) {
    const target = [...this.queues.values()].find((x) => x.arn === q.redrive?.deadLetterTargetArn);
    q.messages = q.messages.filter((x) => x !== m);
    target?.messages.push({ ...m, receiptHandle: null, visibleAt: this.now() });
  }

  private delete(url: string, receiptHandle: string) {
    const q = this.byUrl(url);
    const m = q.messages.find((x) => x.receiptHandle === receiptHandle);
    if (!m)
      throw new SqsError(
        'ReceiptHandleIsInvalid',
        `The input receipt handle "${receiptHandle}" is not a valid receipt handle.`,
      );
    q.messages = q.messages.filter((x) => x !== m);
    return {};
  }

  private changeVisibility(i: ChangeMessageVisibilityCommand['input']) {
    const q = this.byUrl(i.QueueUrl ?? '');
    const m = q.messages.find((x) => x.receiptHandle === i.ReceiptHandle);
    if (!m) throw new SqsError('ReceiptHandleIsInvalid', 'not a valid receipt handle');
    m.visibleAt = this.now() + (i.VisibilityTimeout ?? 0) * 1000;
    return {};
  }

  private attributes(url: string) {
    const q = this.byUrl(url);
    const now = this.now();
    const visible = q.messages.filter((m) => m.visibleAt <= now).length;
    const delayed = q.messages.filter((m) => m.receiptHandle === null && m.visibleAt > now).length;
    return {
      Attributes: {
        QueueArn: q.arn,
        ApproximateNumberOfMessages: String(visible),
        ApproximateNumberOfMessagesDelayed: String(delayed),
        ApproximateNumberOfMessagesNotVisible: String(q.messages.length - visible - delayed),
      },
    };
  }
}
