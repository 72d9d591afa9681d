/**
 * The Lambda event shapes selfdevop's functions receive, with small type guards to tell
 * them apart (hono's `isProxyEventV2` style): API Gateway HTTP API v2, SQS batches and
 * EventBridge scheduled events.
 */
import type { SqsRecord } from '../../adapters/queue/sqs.ts';

export interface SqsEvent {
  Records: SqsRecord[];
}

/** What an EventBridge rule on a schedule sends its target. */
export interface ScheduledEvent {
  version: string;
  id: string;
  'detail-type': 'Scheduled Event';
  source: 'aws.events';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, unknown>;
}

const isObject = (e: unknown): e is Record<string, unknown> => typeof e === 'object' && e !== null;

export function isProxyEventV2(
  e: unknown,
): e is { version: '2.0'; rawPath: string; requestContext: { http: { method: string } } } {
  return (
    isObject(e) &&
    e.version === '2.0' &&
    typeof e.rawPath === 'string' &&
    isObject(e.requestContext) &&
    isObject(e.requestContext.http)
  );
}

export function isSqsEvent(e: unknown): e is SqsEvent {
  return (
    isObject(e) &&
    Array.isArray(e.Records) &&
    e.Records.every(
      (r: unknown) =>
        isObject(r) &&
        r.eventSource === 'aws:sqs' &&
        typeof r.body === 'string' &&
        typeof r.messageId === 'string',
    )
  );
}

export function isScheduledEvent(e: unknown): e is ScheduledEvent {
  return (
    isObject(e) &&
    e.source === 'aws.events' &&
    e['detail-type'] === 'Scheduled Event' &&
    Array.isArray(e.resources) &&
    typeof e.id === 'string'
  );
}

/** The last segment of an ARN: a queue's name, or `rule/<name>` → `<name>`. */
export function nameOfArn(arn: string): string {
  return arn.split(':').at(-1)?.split('/').at(-1) ?? '';
}
