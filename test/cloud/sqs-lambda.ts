/**
 * What Lambda's SQS event source mapping does, against the fake SQS: receives a batch and
 * shapes it as the worker's event, then deletes every record the answer did not report.
 */
import { DeleteMessageCommand } from '@aws-sdk/client-sqs';
import type { SqsQueue, SqsRecord } from '../../adapters/queue/sqs.ts';
import type { FakeSqs } from './fakes/sqs.ts';

type Received = {
  Messages: Array<{
    MessageId: string;
    ReceiptHandle: string;
    Body: string;
    Attributes: Record<string, string>;
    MessageAttributes: Record<string, { StringValue?: string; DataType?: string }>;
  }>;
};

/** Receives from the fake as Lambda's event source mapping does, and shapes an SQS event. */
export async function pollEvent(
  fake: FakeSqs,
  queue: SqsQueue,
  physical: string,
  max = 10,
  visibilityTimeout = 30,
): Promise<{ Records: SqsRecord[] }> {
  const url = await queue.urlOf(physical);
  const q = fake.byUrl(url);
  const out = (fake as unknown as { receive(i: object): Received }).receive({
    QueueUrl: url,
    MaxNumberOfMessages: max,
    VisibilityTimeout: visibilityTimeout,
  });
  return {
    Records: out.Messages.map((m) => ({
      messageId: m.MessageId,
      receiptHandle: m.ReceiptHandle,
      body: m.Body,
      attributes: {
        ApproximateFirstReceiveTimestamp: String(Date.now()),
        SenderId: 'AROAEXAMPLE',
        ...m.Attributes,
      },
      messageAttributes: Object.fromEntries(
        Object.entries(m.MessageAttributes).map(([k, v]) => [
          k,
          {
            stringValue: v.StringValue,
            stringListValues: [],
            binaryListValues: [],
            dataType: v.DataType,
          },
        ]),
      ),
      md5OfBody: 'e4e68fb7bd0e697a0ae8f1bb342846b3',
      eventSource: 'aws:sqs',
      eventSourceARN: q.arn,
      awsRegion: 'eu-west-1',
    })),
  };
}

/** What the event source mapping does with the answer: deletes every record not reported. */
export async function settle(
  fake: FakeSqs,
  queue: SqsQueue,
  physical: string,
  event: { Records: SqsRecord[] },
  out: { batchItemFailures: { itemIdentifier: string }[] },
) {
  const failed = new Set(out.batchItemFailures.map((f) => f.itemIdentifier));
  const url = await queue.urlOf(physical);
  for (const r of event.Records)
    if (!failed.has(r.messageId))
      await fake.client.send(
        new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: r.receiptHandle }),
      );
}
