/**
 * Cloud EventQueue on Amazon SQS FIFO queues. The only file that imports @aws-sdk/client-sqs.
 *
 * How the port's promises map onto SQS:
 * - each logical queue `q` is three SQS queues: `<prefix>q.fifo` (the work), its dead-letter
 *   queue `<prefix>q__dlq.fifo`, and a standard `<prefix>q__delay` queue (see delays).
 *   Characters SQS refuses in names (`.` and `/`) become `-`.
 * - groups: `MessageGroupId` is options.group, or the message's own id, so ungrouped messages
 *   run in parallel and a group's run one at a time in send order; while a group's head is
 *   in flight or waiting out a retry (invisible), SQS hands out nothing else of that group.
 * - idempotency: `MessageDeduplicationId` is a hash of the idempotency key (or the message
 *   id). SQS drops a duplicate for 5 minutes but still answers success, so it cannot say
 *   "duplicate"; an IdempotencyLedger, when given, remembers keys for good and send()
 *   returns null for a repeat, as the port promises. Without one, only SQS's window applies.
 * - delays: FIFO queues refuse per-message DelaySeconds. A delayed message goes to the
 *   standard `__delay` queue with DelaySeconds (at most 900 per hop) and is relayed into the
 *   FIFO queue when due (by the polling consumer here, or by `relayDelayed` in the worker
 *   Lambda); a longer delay takes several hops.
 * - attempts: `attempt` is SQS's ApproximateReceiveCount. A message carries its own
 *   maxAttempts; once spent, the consumer copies it to the dead-letter queue and deletes it,
 *   so its group moves on. The queue's redrive policy stays as the backstop for a worker
 *   that dies mid-message.
 * - Lambda: SQS invokes the worker with batches; `handleSqsBatch` keeps FIFO order and
 *   reports the first failure and everything after it as `batchItemFailures`.
 * - the SDK is imported on the first call to SQS, not with this file, so a cold start that
 *   sends nothing (most API requests) does not parse it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as SqsSdk from '@aws-sdk/client-sqs';
import type {
  Message,
  MessageAttributeValue,
  SQSClient,
  SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import type { EventQueue, Logger, MessageHandler, SendOptions } from '../../core/ports.ts';
import { assertName, assertSendOptions, deadLetterSuffix } from './names.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

/** Remembers idempotency keys beyond SQS's 5-minute window; claim() is true only the first time. */
export interface IdempotencyLedger {
  claim(queue: string, key: string): Promise<boolean>;
  /** Gives a claimed key back when the send it was claimed for failed, so a retry can send. */
  release(queue: string, key: string): Promise<void>;
}

/** A process-local ledger: enough for one long-lived process and for tests. */
export class MemoryIdempotencyLedger implements IdempotencyLedger {
  private readonly seen = new Set<string>();
  async claim(queue: string, key: string): Promise<boolean> {
    const k = `${queue}\u0000${key}`;
    if (this.seen.has(k)) return false;
    this.seen.add(k);
    return true;
  }
  async release(queue: string, key: string): Promise<void> {
    this.seen.delete(`${queue}\u0000${key}`);
  }
}

export interface SqsQueueOptions {
  client?: SQSClient | SQSClientConfig;
  /** Physical names are `<namePrefix><queue>.fifo` etc.; `selfdevop-` unless set (QUEUE_NAME_PREFIX). */
  namePrefix?: string;
  /** Known URLs by physical name (from the stack's outputs); others are looked up with GetQueueUrl. */
  queueUrls?: Record<string, string>;
  /** Create missing queues (local use); in the cloud the stack creates them. */
  createQueues?: boolean;
  ledger?: IdempotencyLedger;
  defaultMaxAttempts?: number;
  /** First retry delay (seconds), doubled per attempt up to retryDelayMaxSeconds; 0 retries at once. */
  retryDelaySeconds?: number;
  retryDelayMaxSeconds?: number;
  /** Long-poll wait of the polling consumer; 20 s unless set. 0 polls every pollIntervalMs. */
  waitTimeSeconds?: number;
  pollIntervalMs?: number;
  /** How long a polled message stays hidden while its handler runs; 900 s unless set. */
  visibilityTimeoutSeconds?: number;
  logger?: Logger;
}

export const defaultSqsOptions = {
  namePrefix: 'selfdevop-',
  defaultMaxAttempts: 5,
  retryDelaySeconds: 2,
  retryDelayMaxSeconds: 300,
  waitTimeSeconds: 20,
  pollIntervalMs: 1000,
  visibilityTimeoutSeconds: 900,
} as const;

/** Suffix of the standard queue that holds delayed messages until they are due. */
export const delaySuffix = '__delay';
const maxDelayHopSeconds = 900;
const maxQueueNameLength = 80;

// Message attributes selfdevop puts on every message.
const attr = { id: 'sdo-id', queue: 'sdo-queue', maxAttempts: 'sdo-max-attempts' } as const;

/** The parts of an SQS record in a Lambda event that the worker reads. */
export interface SqsRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: {
    ApproximateReceiveCount?: string;
    MessageGroupId?: string;
    [name: string]: string | undefined;
  };
  messageAttributes: Record<string, { stringValue?: string; dataType?: string } | undefined>;
  eventSource?: string;
  eventSourceARN?: string;
}

export interface SqsBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

/** What the body of a message in the FIFO queue holds: any JSON value, wrapped. */
interface Envelope {
  payload: unknown;
}

/** What the body of a message in the delay queue holds: the send to make when due. */
interface DelayedSend {
  queue: string;
  id: string;
  payload: unknown;
  groupId: string;
  dedupId: string;
  maxAttempts: number;
  /** Epoch ms. */
  dueAt: number;
}

/** The SDK's exports (TypeScript also lists a default export for a CommonJS package). */
type SqsSdkExports = Omit<typeof SqsSdk, 'default'>;
const loadSdk: () => Promise<SqsSdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-sqs').then(exportsOf),
);

function isSqsClient(c: SqsQueueOptions['client']): c is SQSClient {
  return typeof (c as SQSClient | undefined)?.send === 'function';
}

function errorName(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Error';
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

// MessageGroupId: up to 128 letters, digits and ASCII punctuation; anything else is hashed.
const groupIdPattern = /^[\x21-\x7e]{1,128}$/;
function toGroupId(group: string): string {
  return groupIdPattern.test(group) ? group : `h:${sha256(group)}`;
}

function backoffSeconds(attempt: number, first: number, max: number): number {
  if (first <= 0) return 0;
  return Math.min(max, first * 2 ** Math.max(0, attempt - 1));
}

/**
 * Runs a Lambda batch of FIFO records in order. The first record whose handler throws stops
 * the batch: it and every later record are reported, so SQS redelivers them and no group's
 * order is broken. `giveUp` (when given) may take a failed record off the queue instead
 * (dead-lettered after its last attempt): it then counts as handled and the batch goes on.
 */
export async function handleSqsBatch(
  records: SqsRecord[],
  handler: (record: SqsRecord) => Promise<void>,
  giveUp?: (record: SqsRecord, error: unknown) => Promise<boolean>,
): Promise<SqsBatchResponse> {
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    try {
      await handler(record);
    } catch (error) {
      if (giveUp && (await giveUp(record, error).catch(() => false))) continue;
      return { batchItemFailures: records.slice(i).map((r) => ({ itemIdentifier: r.messageId })) };
    }
  }
  return { batchItemFailures: [] };
}

/**
 * @example const queue = new SqsQueue({ namePrefix: env.QUEUE_NAME_PREFIX, ledger })
 */
export class SqsQueue implements EventQueue {
  private readonly clientOption: SqsQueueOptions['client'];
  private loaded: Promise<{ sqs: SqsSdkExports; client: SQSClient }> | undefined;
  private readonly o: Required<
    Omit<SqsQueueOptions, 'client' | 'ledger' | 'logger' | 'queueUrls' | 'createQueues'>
  >;
  private readonly ledger: IdempotencyLedger | undefined;
  private readonly logger: Logger | undefined;
  private readonly createQueues: boolean;
  private readonly urls = new Map<string, Promise<string>>();

  constructor(options: SqsQueueOptions = {}) {
    this.clientOption = options.client;
    const { client: _c, ledger, logger, queueUrls, createQueues, ...rest } = options;
    this.o = {
      ...defaultSqsOptions,
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    };
    if (!/^[\w-]*$/.test(this.o.namePrefix))
      throw new Error(
        `QUEUE_NAME_PREFIX may contain only letters, digits, - and _, got ${JSON.stringify(this.o.namePrefix)}`,
      );
    this.ledger = ledger;
    this.logger = logger;
    this.createQueues = createQueues ?? false;
    for (const [name, url] of Object.entries(queueUrls ?? {}))
      this.urls.set(name, Promise.resolve(url));
  }

  /** The SQS queue names behind logical queue `queue`. */
  physicalNames(queue: string): { main: string; deadLetter: string; delay: string } {
    assertName('queue', queue);
    const base = `${this.o.namePrefix}${queue.replace(/[./]/g, '-')}`;
    const names = {
      main: `${base}.fifo`,
      deadLetter: `${base}${deadLetterSuffix}.fifo`,
      delay: `${base}${delaySuffix}`,
    };
    if (names.deadLetter.length > maxQueueNameLength)
      throw new InvalidInput(
        `queue name ${JSON.stringify(queue)} is too long for SQS (at most ${maxQueueNameLength} characters with prefix and suffix)`,
      );
    return names;
  }

  async send<T>(queue: string, payload: T, options: SendOptions = {}): Promise<string | null> {
    assertSendOptions(options);
    this.physicalNames(queue);
    const key = options.idempotencyKey;
    if (key === undefined || !this.ledger) return this.sendUnclaimed(queue, payload, options);
    if (!(await this.ledger.claim(queue, key))) return null;
    try {
      return await this.sendUnclaimed(queue, payload, options);
    } catch (e) {
      await this.ledger.release(queue, key).catch(() => undefined);
      throw e;
    }
  }

  private async sendUnclaimed(
    queue: string,
    payload: unknown,
    options: SendOptions,
  ): Promise<string> {
    const names = this.physicalNames(queue);
    const id = randomUUID();
    const groupId = toGroupId(options.group ?? id);
    const dedupId =
      options.idempotencyKey === undefined ? id : sha256(`${queue}\u0000${options.idempotencyKey}`);
    const maxAttempts = options.maxAttempts ?? this.o.defaultMaxAttempts;
    const body: Envelope = { payload };
    const text = JSON.stringify(body);
    if (text === undefined) throw new InvalidInput('payload must be JSON-serialisable');
    if (options.delaySeconds && options.delaySeconds > 0) {
      const delayed: DelayedSend = {
        queue,
        id,
        payload,
        groupId,
        dedupId,
        maxAttempts,
        dueAt: Date.now() + options.delaySeconds * 1000,
      };
      await this.sendDelayed(names.delay, delayed, options.delaySeconds);
      return id;
    }
    await this.sendNow(queue, names.main, text, { id, groupId, dedupId, maxAttempts });
    return id;
  }

  private async sendNow(
    queue: string,
    physical: string,
    body: string,
    m: { id: string; groupId: string; dedupId: string; maxAttempts: number },
  ) {
    const { sqs, client } = await this.sdk();
    await client.send(
      new sqs.SendMessageCommand({
        QueueUrl: await this.urlOf(physical),
        MessageBody: body,
        MessageGroupId: m.groupId,
        MessageDeduplicationId: m.dedupId,
        MessageAttributes: {
          [attr.id]: { DataType: 'String', StringValue: m.id },
          [attr.queue]: { DataType: 'String', StringValue: queue },
          [attr.maxAttempts]: { DataType: 'Number', StringValue: String(m.maxAttempts) },
        },
      }),
    );
  }

  private async sendDelayed(physical: string, delayed: DelayedSend, delaySeconds: number) {
    const { sqs, client } = await this.sdk();
    await client.send(
      new sqs.SendMessageCommand({
        QueueUrl: await this.urlOf(physical),
        MessageBody: JSON.stringify(delayed),
        DelaySeconds: Math.min(maxDelayHopSeconds, Math.ceil(delaySeconds)),
      }),
    );
  }

  /**
   * Moves due messages of the delay queue into their FIFO queue; one not yet due takes
   * another hop. Returns the records that could not be relayed (for batchItemFailures).
   */
  async relayDelayed(records: Pick<SqsRecord, 'messageId' | 'body'>[]): Promise<SqsBatchResponse> {
    const failures: { itemIdentifier: string }[] = [];
    for (const record of records) {
      try {
        await this.relayOne(record.body);
      } catch (e) {
        this.logger?.warn(
          { err: (e as Error).message, messageId: record.messageId },
          'relaying a delayed message failed',
        );
        failures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures: failures };
  }

  private async relayOne(body: string): Promise<void> {
    const d = JSON.parse(body) as DelayedSend;
    const names = this.physicalNames(d.queue);
    const remaining = (d.dueAt - Date.now()) / 1000;
    if (remaining > 1) {
      await this.sendDelayed(names.delay, d, remaining);
      return;
    }
    const envelope: Envelope = { payload: d.payload };
    // The dedup id is kept, so a relay repeated after a crash does not deliver twice.
    await this.sendNow(d.queue, names.main, JSON.stringify(envelope), d);
  }

  async consume<T>(
    queue: string,
    handler: MessageHandler<T>,
    options: { concurrency?: number } = {},
  ): Promise<() => Promise<void>> {
    const names = this.physicalNames(queue);
    const { sqs, client } = await this.sdk();
    const mainUrl = await this.urlOf(names.main);
    const delayUrl = await this.urlOf(names.delay);
    const abort = new AbortController();
    let stopped = false;
    const loop = async (url: string, each: (m: Message) => Promise<void>) => {
      while (!stopped) {
        let messages: Message[];
        try {
          const out = await client.send(
            new sqs.ReceiveMessageCommand({
              QueueUrl: url,
              MaxNumberOfMessages: 1,
              WaitTimeSeconds: this.o.waitTimeSeconds,
              VisibilityTimeout: this.o.visibilityTimeoutSeconds,
              MessageSystemAttributeNames: ['ApproximateReceiveCount', 'MessageGroupId'],
              MessageAttributeNames: ['All'],
            }),
            { abortSignal: abort.signal },
          );
          messages = out.Messages ?? [];
        } catch (e) {
          if (stopped) return;
          this.logger?.warn(
            { err: (e as Error).message, queue },
            'receiving from SQS failed; retrying',
          );
          await sleep(this.o.pollIntervalMs);
          continue;
        }
        if (messages.length === 0) {
          if (this.o.waitTimeSeconds === 0 && !stopped) await sleep(this.o.pollIntervalMs);
          continue;
        }
        for (const m of messages) {
          try {
            await each(m);
          } catch (e) {
            // The message stays in SQS and comes back after its visibility timeout.
            this.logger?.warn(
              { err: (e as Error).message, queue },
              'settling an SQS message failed',
            );
          }
        }
      }
    };
    const slots = Math.max(1, options.concurrency ?? 1);
    const running = [
      ...Array.from({ length: slots }, () =>
        loop(mainUrl, (m) =>
          this.process(queue, mainUrl, toRecord(m), handler as MessageHandler<unknown>),
        ),
      ),
      loop(delayUrl, async (m) => {
        const r = await this.relayDelayed([toRecord(m)]);
        if (r.batchItemFailures.length === 0)
          await this.deleteMessage(delayUrl, m.ReceiptHandle ?? '');
      }),
    ];
    let stopping: Promise<void> | null = null;
    return () => {
      stopping ??= (async () => {
        stopped = true;
        // Ends long polls at once; a handler already running is awaited, not cut short.
        abort.abort();
        await Promise.allSettled(running);
      })();
      return stopping;
    };
  }

  private async process(
    queue: string,
    url: string,
    record: SqsRecord,
    handler: MessageHandler<unknown>,
  ): Promise<void> {
    const attempt = Number(record.attributes.ApproximateReceiveCount ?? '1');
    try {
      await handler(toQueueMessage(record));
    } catch {
      if (!(await this.giveUp(queue, record))) {
        const delay = backoffSeconds(
          attempt,
          this.o.retryDelaySeconds,
          this.o.retryDelayMaxSeconds,
        );
        await this.setVisibility(queue, url, record.receiptHandle, delay);
        return;
      }
    }
    await this.deleteMessage(url, record.receiptHandle);
  }

  /**
   * Handles one Lambda batch of `queue`'s FIFO queue with FIFO semantics (see handleSqsBatch);
   * a message on its last attempt is dead-lettered and removed instead of being retried.
   */
  async handleBatch<T>(
    queue: string,
    records: SqsRecord[],
    handler: MessageHandler<T>,
  ): Promise<SqsBatchResponse> {
    const names = this.physicalNames(queue);
    // Lambda (with ReportBatchItemFailures) deletes every record not reported, so a
    // dead-lettered record is left out of the report and leaves the queue with the handled ones.
    const out = await handleSqsBatch(
      records,
      (r) => handler(toQueueMessage(r) as Parameters<MessageHandler<T>>[0]),
      (r) => this.giveUp(queue, r),
    );
    if (out.batchItemFailures.length > 0)
      await this.release(queue, await this.urlOf(names.main), records, out);
    return out;
  }

  /**
   * Reported records would stay hidden for the queue's whole visibility timeout (six times
   * the worker's); the one that failed comes back after its retry backoff instead, and the
   * ones never tried come back at once (their groups stay in order: SQS hands out nothing of
   * a group while an earlier message of it is hidden).
   */
  private async release(
    queue: string,
    url: string,
    records: SqsRecord[],
    out: SqsBatchResponse,
  ): Promise<void> {
    const reported = new Set(out.batchItemFailures.map((f) => f.itemIdentifier));
    let first = true;
    for (const r of records) {
      if (!reported.has(r.messageId)) continue;
      const attempt = Number(r.attributes.ApproximateReceiveCount ?? '1');
      const delay = first
        ? backoffSeconds(attempt, this.o.retryDelaySeconds, this.o.retryDelayMaxSeconds)
        : 0;
      first = false;
      await this.setVisibility(queue, url, r.receiptHandle, delay);
    }
  }

  /** Best effort: when it fails, the message just comes back after the queue's own timeout. */
  private async setVisibility(
    queue: string,
    url: string,
    receiptHandle: string,
    seconds: number,
  ): Promise<void> {
    try {
      const { sqs, client } = await this.sdk();
      await client.send(
        new sqs.ChangeMessageVisibilityCommand({
          QueueUrl: url,
          ReceiptHandle: receiptHandle,
          VisibilityTimeout: seconds,
        }),
      );
    } catch (e) {
      this.logger?.warn(
        { err: (e as Error).message, queue },
        'changing the visibility of a message failed',
      );
    }
  }

  /** Copies a message on its last attempt to the dead-letter queue; false while attempts remain. */
  private async giveUp(queue: string, record: SqsRecord): Promise<boolean> {
    const attempt = Number(record.attributes.ApproximateReceiveCount ?? '1');
    const maxAttempts = Number(
      record.messageAttributes[attr.maxAttempts]?.stringValue ?? this.o.defaultMaxAttempts,
    );
    if (attempt < maxAttempts) return false;
    const names = this.physicalNames(queue);
    const { sqs, client } = await this.sdk();
    const id = record.messageAttributes[attr.id]?.stringValue ?? record.messageId;
    await client.send(
      new sqs.SendMessageCommand({
        QueueUrl: await this.urlOf(names.deadLetter),
        MessageBody: record.body,
        MessageGroupId: toGroupId(record.attributes.MessageGroupId ?? id),
        MessageDeduplicationId: id,
        MessageAttributes: toAttributeValues(record.messageAttributes),
      }),
    );
    this.logger?.warn(
      { queue, messageId: id, attempt },
      'message dead-lettered after its last attempt',
    );
    return true;
  }

  private async deleteMessage(url: string, receiptHandle: string): Promise<void> {
    const { sqs, client } = await this.sdk();
    await client.send(
      new sqs.DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: receiptHandle }),
    );
  }

  /** Messages waiting in `queue`, delayed ones included (SQS's approximate counts). */
  async depth(queue: string): Promise<number> {
    const names = this.physicalNames(queue);
    const { sqs, client } = await this.sdk();
    const count = async (
      physical: string,
      attributes: ('ApproximateNumberOfMessages' | 'ApproximateNumberOfMessagesDelayed')[],
    ) => {
      const out = await client.send(
        new sqs.GetQueueAttributesCommand({
          QueueUrl: await this.urlOf(physical),
          AttributeNames: attributes,
        }),
      );
      return attributes.reduce((sum, a) => sum + Number(out.Attributes?.[a] ?? 0), 0);
    };
    const [main, delayed] = await Promise.all([
      count(names.main, ['ApproximateNumberOfMessages']),
      count(names.delay, ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed']),
    ]);
    return main + delayed;
  }

  async ping(): Promise<void> {
    try {
      const { sqs, client } = await this.sdk();
      await client.send(
        new sqs.ListQueuesCommand({ QueueNamePrefix: this.o.namePrefix, MaxResults: 1 }),
      );
    } catch (e) {
      throw new Unavailable('queue', `SQS: ${errorName(e)}: ${(e as Error).message}`);
    }
  }

  /** The ARN of logical queue `queue`'s FIFO queue (targets of EventBridge schedules). */
  async arnOf(queue: string): Promise<string> {
    const url = await this.urlOf(this.physicalNames(queue).main);
    const { sqs, client } = await this.sdk();
    const out = await client.send(
      new sqs.GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
    );
    const arn = out.Attributes?.QueueArn;
    if (!arn) throw new Error(`SQS returned no ARN for ${url}`);
    return arn;
  }

  /** Closes the client's connections; a queue that never reached SQS has none to close. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  /** The SDK and the client, loaded and made on first use (the client given is used as is). */
  private sdk(): Promise<{ sqs: SqsSdkExports; client: SQSClient }> {
    this.loaded ??= loadSdk().then((sqs) => ({
      sqs,
      client: isSqsClient(this.clientOption)
        ? this.clientOption
        : new sqs.SQSClient(this.clientOption ?? {}),
    }));
    return this.loaded;
  }

  /** The URL of a physical queue, looked up once (or created, with createQueues). */
  urlOf(physical: string): Promise<string> {
    let url = this.urls.get(physical);
    if (!url) {
      url = this.lookUp(physical);
      this.urls.set(physical, url);
      url.catch(() => this.urls.delete(physical));
    }
    return url;
  }

  private async lookUp(physical: string): Promise<string> {
    const { sqs, client } = await this.sdk();
    try {
      const out = await client.send(new sqs.GetQueueUrlCommand({ QueueName: physical }));
      if (out.QueueUrl) return out.QueueUrl;
    } catch (e) {
      const missing =
        errorName(e) === 'QueueDoesNotExist' ||
        errorName(e) === 'AWS.SimpleQueueService.NonExistentQueue';
      if (!missing)
        throw new Unavailable(
          'queue',
          `SQS GetQueueUrl ${physical}: ${errorName(e)}: ${(e as Error).message}`,
        );
      if (!this.createQueues)
        throw new Error(
          `SQS queue ${physical} does not exist; the cloud stack creates it (or set createQueues for local use)`,
          { cause: e },
        );
    }
    return this.create(physical);
  }

  private async create(physical: string): Promise<string> {
    const { sqs, client } = await this.sdk();
    const fifo = physical.endsWith('.fifo');
    const attributes: Record<string, string> = {};
    if (fifo) attributes.FifoQueue = 'true';
    // Schedules send without a dedup id; selfdevop's own sends always carry one, which wins.
    if (fifo) attributes.ContentBasedDeduplication = 'true';
    if (fifo && !physical.endsWith(`${deadLetterSuffix}.fifo`)) {
      const dlq = physical.replace(/\.fifo$/, `${deadLetterSuffix}.fifo`);
      const arn = await client.send(
        new sqs.GetQueueAttributesCommand({
          QueueUrl: await this.urlOf(dlq),
          AttributeNames: ['QueueArn'],
        }),
      );
      // The backstop for workers that die mid-message; spent attempts are dead-lettered by the consumer.
      attributes.RedrivePolicy = JSON.stringify({
        deadLetterTargetArn: arn.Attributes?.QueueArn,
        maxReceiveCount: 10,
      });
    }
    const out = await client.send(
      new sqs.CreateQueueCommand({ QueueName: physical, Attributes: attributes }),
    );
    if (!out.QueueUrl) throw new Error(`SQS CreateQueue ${physical} returned no URL`);
    return out.QueueUrl;
  }
}

function toRecord(m: Message): SqsRecord {
  const messageAttributes: SqsRecord['messageAttributes'] = {};
  for (const [name, v] of Object.entries(m.MessageAttributes ?? {}))
    messageAttributes[name] = { stringValue: v.StringValue, dataType: v.DataType };
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: { ...m.Attributes },
    messageAttributes,
  };
}

function toAttributeValues(
  a: SqsRecord['messageAttributes'],
): Record<string, MessageAttributeValue> {
  const out: Record<string, MessageAttributeValue> = {};
  for (const [name, v] of Object.entries(a))
    if (v?.stringValue !== undefined)
      out[name] = { DataType: v.dataType ?? 'String', StringValue: v.stringValue };
  return out;
}

function toQueueMessage(r: SqsRecord): { id: string; payload: unknown; attempt: number } {
  const envelope = JSON.parse(r.body) as Envelope;
  return {
    id: r.messageAttributes[attr.id]?.stringValue ?? r.messageId,
    payload: envelope.payload,
    attempt: Number(r.attributes.ApproximateReceiveCount ?? '1'),
  };
}
