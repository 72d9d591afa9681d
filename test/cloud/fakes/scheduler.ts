/**
 * EventBridge Scheduler behind aws-sdk-client-mock: keeps schedules per group, answers
 * Create/Update/Delete/Get/List with the service's errors, and fires the due ones on
 * demand the way the service does for an SQS target (the Input, with its execution-id
 * placeholder filled in, sent to the queue with the target's MessageGroupId).
 */
import { randomUUID } from 'node:crypto';
import {
  CreateScheduleCommand,
  DeleteScheduleCommand,
  GetScheduleCommand,
  ListSchedulesCommand,
  SchedulerClient,
  UpdateScheduleCommand,
  type CreateScheduleInput,
} from '@aws-sdk/client-scheduler';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { parseCron } from '../../../adapters/scheduler/cron.ts';

class SchedulerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

const days = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** Reads an EventBridge `cron(…)` back as a five-field cron, to decide when it is due. */
export function fromEventBridgeCron(expression: string): string {
  const m = /^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$/.exec(expression);
  if (!m)
    throw new SchedulerError('ValidationException', `Invalid Schedule Expression ${expression}.`);
  const [, minute, hour, dom, month, dow, year] = m as unknown as string[];
  if (year !== '*')
    throw new SchedulerError('ValidationException', 'this fake only fires every-year schedules');
  if ((dom === '?') === (dow === '?'))
    throw new SchedulerError('ValidationException', 'exactly one day field must be ?');
  const dowUnix =
    dow === '?'
      ? '*'
      : dow!
          .split(',')
          .map((d) => String(days.indexOf(d)))
          .join(',');
  return `${minute} ${hour} ${dom === '?' ? '*' : dom} ${month} ${dowUnix}`;
}

export class FakeScheduler {
  readonly client = new SchedulerClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  readonly mock = mockClient(this.client);
  readonly schedules = new Map<string, CreateScheduleInput>();
  private readonly sqs: SQSClient;
  private readonly urlOfArn: (arn: string) => string;

  constructor(sqs: SQSClient, urlOfArn: (arn: string) => string) {
    this.sqs = sqs;
    this.urlOfArn = urlOfArn;
    const key = (i: { GroupName?: string; Name?: string }) =>
      `${i.GroupName ?? 'default'}/${i.Name}`;
    const check = (i: CreateScheduleInput) => {
      if (!/^[0-9a-zA-Z_.-]{1,64}$/.test(i.Name ?? ''))
        throw new SchedulerError('ValidationException', `invalid name ${i.Name}`);
      fromEventBridgeCron(i.ScheduleExpression ?? '');
      if (!i.Target?.Arn || !i.Target.RoleArn || !i.FlexibleTimeWindow)
        throw new SchedulerError(
          'ValidationException',
          'Target and FlexibleTimeWindow are required',
        );
    };
    this.mock
      .on(CreateScheduleCommand)
      .callsFake((i: CreateScheduleInput) => {
        check(i);
        if (this.schedules.has(key(i)))
          throw new SchedulerError('ConflictException', `Schedule ${i.Name} already exists.`);
        this.schedules.set(key(i), structuredClone(i));
        return {
          ScheduleArn: `arn:aws:scheduler:eu-west-1:111122223333:schedule/${i.GroupName}/${i.Name}`,
        };
      })
      .on(UpdateScheduleCommand)
      .callsFake((i: CreateScheduleInput) => {
        check(i);
        if (!this.schedules.has(key(i)))
          throw new SchedulerError(
            'ResourceNotFoundException',
            `Schedule ${i.Name} does not exist.`,
          );
        this.schedules.set(key(i), structuredClone(i));
        return { ScheduleArn: 'arn' };
      })
      .on(DeleteScheduleCommand)
      .callsFake((i: { GroupName?: string; Name?: string }) => {
        if (!this.schedules.delete(key(i)))
          throw new SchedulerError(
            'ResourceNotFoundException',
            `Schedule ${i.Name} does not exist.`,
          );
        return {};
      })
      .on(GetScheduleCommand)
      .callsFake((i: { GroupName?: string; Name?: string }) => {
        const s = this.schedules.get(key(i));
        if (!s)
          throw new SchedulerError(
            'ResourceNotFoundException',
            `Schedule ${i.Name} does not exist.`,
          );
        return { ...structuredClone(s), Arn: 'arn' };
      })
      .on(ListSchedulesCommand)
      .callsFake((i: { GroupName?: string; NextToken?: string }) => {
        // Two per page, so callers must follow NextToken.
        const all = [...this.schedules.values()].filter(
          (s) => (s.GroupName ?? 'default') === (i.GroupName ?? 'default'),
        );
        const start = Number(i.NextToken ?? 0);
        const page = all.slice(start, start + 2);
        return {
          Schedules: page.map((s) => ({
            Name: s.Name,
            GroupName: s.GroupName,
            State: s.State,
            Target: { Arn: s.Target?.Arn },
          })),
          ...(start + 2 < all.length ? { NextToken: String(start + 2) } : {}),
        };
      });
  }

  /**
   * Calls of every other SchedulerClient (the one a composition root makes for itself) go to
   * this fake too, until the returned undo runs.
   */
  interceptEveryClient(): () => void {
    const own = this.client;
    const original = SchedulerClient.prototype.send;
    SchedulerClient.prototype.send = function (...args: Parameters<SchedulerClient['send']>) {
      return (own.send as (...a: unknown[]) => unknown)(...args);
    } as SchedulerClient['send'];
    return () => {
      SchedulerClient.prototype.send = original;
    };
  }

  /** Fires every schedule due in the minute of `now`; returns how many fired. */
  async fire(now = new Date()): Promise<number> {
    let fired = 0;
    for (const s of this.schedules.values()) {
      const zone = s.ScheduleExpressionTimezone ?? 'UTC';
      if (!parseCron(fromEventBridgeCron(s.ScheduleExpression ?? ''), zone).matches(now)) continue;
      const body = (s.Target?.Input ?? '').replaceAll('<aws.scheduler.execution-id>', randomUUID());
      await this.sqs.send(
        new SendMessageCommand({
          QueueUrl: this.urlOfArn(s.Target?.Arn ?? ''),
          MessageBody: body,
          MessageGroupId: s.Target?.SqsParameters?.MessageGroupId,
        }),
      );
      fired++;
    }
    return fired;
  }
}
