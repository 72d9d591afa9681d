/**
 * Cloud Scheduler on Amazon EventBridge Scheduler: one schedule per name, in selfdevop's
 * schedule group, whose target is the named queue's SQS FIFO queue, read in the time zone
 * given (UTC unless set; cron jobs pass theirs). The only file that
 * imports @aws-sdk/client-scheduler, and only on the first call, so a cold start does not
 * parse it.
 *
 * - The five-field UTC cron the port takes becomes EventBridge's six-field
 *   `cron(min hour day-of-month month day-of-week year)`: day-of-week numbers become names
 *   (EventBridge counts 1 = Sunday), and the unrestricted day field becomes `?`, since
 *   EventBridge refuses both; a cron restricting both day fields cannot be expressed and
 *   is refused.
 * - The message body is the queue's usual envelope `{ payload }`, plus the execution id
 *   EventBridge substitutes at each firing, so the FIFO queue's content-based
 *   deduplication never drops a later firing. Its group is `schedule:<name>`, so firings
 *   of one schedule never overlap.
 * - The port's name, cron and queue are kept in the schedule's Description (JSON), so
 *   list() returns them as given; names EventBridge refuses are stored under a hash.
 */
import { createHash } from 'node:crypto';
import type * as SchedulerSdk from '@aws-sdk/client-scheduler';
import type {
  CreateScheduleInput,
  SchedulerClient,
  SchedulerClientConfig,
} from '@aws-sdk/client-scheduler';
import { InvalidInput } from '../../core/errors.ts';
import type { ScheduleOptions, Scheduler } from '../../core/ports.ts';
import { validateTimeZone } from '../../core/jobs/cron.ts';
import { assertName } from '../queue/names.ts';
import { parseCron } from './cron.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

export interface EventBridgeSchedulerOptions {
  client?: SchedulerClient | SchedulerClientConfig;
  /** The schedule group the stack made (SCHEDULE_GROUP); `selfdevop` unless set. */
  groupName?: string;
  /** The role EventBridge Scheduler assumes to send to SQS (SCHEDULER_ROLE_ARN). */
  roleArn: string;
  /** The ARN of a logical queue's FIFO queue (SqsQueue.arnOf). */
  queueArn: (queue: string) => Promise<string>;
  /** Bound on ListSchedules pages; 100 unless set. */
  maxPages?: number;
}

const dayNames = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'] as const;
const scheduleNamePattern = /^[0-9a-zA-Z_.-]{1,64}$/;
/** Replaced by EventBridge Scheduler with the id of each execution. */
export const executionIdPlaceholder = '<aws.scheduler.execution-id>';

interface Description {
  name: string;
  cron: string;
  queue: string;
  /** Absent for UTC (schedules made before time zones). */
  timeZone?: string;
}

/** The SDK's exports (TypeScript also lists a default export for a CommonJS package). */
type SchedulerSdkExports = Omit<typeof SchedulerSdk, 'default'>;
const loadSdk: () => Promise<SchedulerSdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-scheduler').then(exportsOf),
);

function isSchedulerClient(c: EventBridgeSchedulerOptions['client']): c is SchedulerClient {
  return typeof (c as SchedulerClient | undefined)?.send === 'function';
}

function errorName(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : 'Error';
}

/** Expands a validated day-of-week field (0–7, 0 and 7 Sunday) into EventBridge day names. */
function dayOfWeekNames(field: string): string {
  const days = new Set<number>();
  for (const part of field.split(',')) {
    const [range = '', stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo = 0;
    let hi = 7;
    if (range !== '*') {
      const [a = '', b] = range.split('-');
      lo = Number(a);
      hi = b === undefined ? (stepText === undefined ? lo : 7) : Number(b);
    }
    for (let d = lo; d <= hi; d += step) days.add(d % 7);
  }
  return [...days]
    .sort((x, y) => x - y)
    .map((d) => dayNames[d])
    .join(',');
}

/**
 * The EventBridge expression for a five-field UTC cron, e.g. `0 3 * * 1-5` →
 * `cron(0 3 ? * MON,TUE,WED,THU,FRI *)`. Throws InvalidInput for a cron it cannot carry.
 */
export function toEventBridgeCron(cron: string): string {
  parseCron(cron);
  const [minute, hour, dom, month, dow] = cron.trim().split(/\s+/) as [
    string,
    string,
    string,
    string,
    string,
  ];
  if (dow === '*') return `cron(${minute} ${hour} ${dom} ${month} ? *)`;
  if (dom === '*') return `cron(${minute} ${hour} ? ${month} ${dayOfWeekNames(dow)} *)`;
  throw new InvalidInput(
    `cron ${JSON.stringify(cron)} restricts both day-of-month and day-of-week, which EventBridge Scheduler cannot express; use one of them`,
  );
}

/** The EventBridge schedule name for a port name: itself when EventBridge accepts it. */
export function scheduleNameOf(name: string): string {
  return scheduleNamePattern.test(name)
    ? name
    : `h-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

/**
 * @example new EventBridgeScheduler({ roleArn: env.SCHEDULER_ROLE_ARN, queueArn: (q) => queue.arnOf(q) })
 */
export class EventBridgeScheduler implements Scheduler {
  readonly groupName: string;
  private readonly clientOption: EventBridgeSchedulerOptions['client'];
  private loaded: Promise<{ scheduler: SchedulerSdkExports; client: SchedulerClient }> | undefined;
  private readonly roleArn: string;
  private readonly queueArn: (queue: string) => Promise<string>;
  private readonly maxPages: number;

  constructor(options: EventBridgeSchedulerOptions) {
    if (!/^arn:aws[\w-]*:iam::\d{12}:role\/.+$/.test(options.roleArn ?? ''))
      throw new Error(
        `SCHEDULER_ROLE_ARN must be an IAM role ARN, got ${JSON.stringify(options.roleArn)}`,
      );
    this.clientOption = options.client;
    this.groupName = options.groupName ?? 'selfdevop';
    this.roleArn = options.roleArn;
    this.queueArn = options.queueArn;
    this.maxPages = options.maxPages ?? 100;
  }

  async schedule(
    name: string,
    cron: string,
    queue: string,
    payload?: unknown,
    options?: ScheduleOptions,
  ): Promise<void> {
    assertName('schedule', name);
    assertName('queue', queue);
    const expression = toEventBridgeCron(cron);
    const timeZone = validateTimeZone(options?.timeZone ?? 'UTC');
    const { scheduler, client } = await this.sdk();
    const description: Description = {
      name,
      cron,
      queue,
      ...(timeZone !== 'UTC' ? { timeZone } : {}),
    };
    const input: CreateScheduleInput = {
      Name: scheduleNameOf(name),
      GroupName: this.groupName,
      ScheduleExpression: expression,
      // EventBridge Scheduler reads the cron in this zone, daylight saving included.
      ScheduleExpressionTimezone: timeZone,
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Description: JSON.stringify(description),
      Target: {
        Arn: await this.queueArn(queue),
        RoleArn: this.roleArn,
        Input: JSON.stringify({ payload: payload ?? null, firedBy: executionIdPlaceholder }),
        SqsParameters: { MessageGroupId: `schedule:${scheduleNameOf(name)}` },
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
      },
    };
    try {
      await client.send(new scheduler.CreateScheduleCommand(input));
    } catch (e) {
      // Same name: replace it (cron, queue and payload), as the port asks.
      if (errorName(e) !== 'ConflictException') throw e;
      await client.send(new scheduler.UpdateScheduleCommand(input));
    }
  }

  async unschedule(name: string): Promise<void> {
    assertName('schedule', name);
    const { scheduler, client } = await this.sdk();
    try {
      await client.send(
        new scheduler.DeleteScheduleCommand({
          Name: scheduleNameOf(name),
          GroupName: this.groupName,
        }),
      );
    } catch (e) {
      if (errorName(e) !== 'ResourceNotFoundException') throw e;
    }
  }

  /** Schedules of the group as the port knows them: name, cron, queue and payload. */
  async list(): Promise<
    { name: string; cron: string; queue: string; payload: unknown; timeZone?: string }[]
  > {
    const { scheduler, client } = await this.sdk();
    const names: string[] = [];
    let token: string | undefined;
    for (let page = 0; page < this.maxPages; page++) {
      const out = await client.send(
        new scheduler.ListSchedulesCommand({
          GroupName: this.groupName,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const s of out.Schedules ?? []) if (s.Name) names.push(s.Name);
      token = out.NextToken;
      if (!token) break;
    }
    const result = [];
    for (const scheduleName of names) {
      const s = await client.send(
        new scheduler.GetScheduleCommand({ Name: scheduleName, GroupName: this.groupName }),
      );
      let d: Description;
      try {
        d = JSON.parse(s.Description ?? '') as Description;
      } catch {
        continue; // not made by selfdevop
      }
      const input = JSON.parse(s.Target?.Input ?? '{}') as { payload?: unknown };
      result.push({
        name: d.name,
        cron: d.cron,
        queue: d.queue,
        payload: input.payload ?? null,
        ...(d.timeZone ? { timeZone: d.timeZone } : {}),
      });
    }
    return result;
  }

  /** Closes the client's connections; a scheduler that never reached EventBridge has none to close. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  /** The SDK and the client, loaded and made on first use (the client given is used as is). */
  private sdk(): Promise<{ scheduler: SchedulerSdkExports; client: SchedulerClient }> {
    this.loaded ??= loadSdk().then((scheduler) => ({
      scheduler,
      client: isSchedulerClient(this.clientOption)
        ? this.clientOption
        : new scheduler.SchedulerClient(this.clientOption ?? {}),
    }));
    return this.loaded;
  }
}
