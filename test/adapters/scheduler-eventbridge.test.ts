import {
  CreateScheduleCommand,
  DeleteScheduleCommand,
  SchedulerClient,
  UpdateScheduleCommand,
} from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it, vi } from 'vitest';
import { MemoryIdempotencyLedger, SqsQueue } from '../../adapters/queue/sqs.ts';
import {
  EventBridgeScheduler,
  scheduleNameOf,
  toEventBridgeCron,
} from '../../adapters/scheduler/eventbridge.ts';
import { InvalidInput } from '../../core/errors.ts';
import { waitFor } from '../contracts/event-queue.case.ts';
import { runSchedulerContract } from '../contracts/scheduler.case.ts';
import { FakeScheduler } from '../cloud/fakes/scheduler.ts';
import { FakeSqs } from '../cloud/fakes/sqs.ts';

const roleArn = 'arn:aws:iam::111122223333:role/selfdevop-scheduler';

function setup() {
  const sqs = new FakeSqs();
  const queue = new SqsQueue({
    client: sqs.client,
    ledger: new MemoryIdempotencyLedger(),
    waitTimeSeconds: 0,
    pollIntervalMs: 20,
    retryDelaySeconds: 0,
    createQueues: true,
  });
  const fake = new FakeScheduler(sqs.client, (arn) => sqs.byName(arn.split(':').at(-1) ?? '').url);
  const scheduler = new EventBridgeScheduler({
    client: fake.client,
    roleArn,
    queueArn: (q) => queue.arnOf(q),
  });
  return { sqs, queue, fake, scheduler };
}

runSchedulerContract({
  make: async () => {
    const { sqs, queue, fake, scheduler } = setup();
    return {
      scheduler,
      queue,
      list: () => scheduler.list(),
      runSchedules: async () => {
        await fake.fire();
      },
      close: async () => {
        fake.mock.restore();
        sqs.mock.restore();
      },
    };
  },
  fireTimeoutMs: 3000,
  quietMs: 300,
});

describe('toEventBridgeCron', () => {
  it('writes six fields with ? in the unrestricted day field and day names', () => {
    expect(toEventBridgeCron('* * * * *')).toBe('cron(* * * * ? *)');
    expect(toEventBridgeCron('*/15 3 1,15 * *')).toBe('cron(*/15 3 1,15 * ? *)');
    expect(toEventBridgeCron('0 9 * * 1-5')).toBe('cron(0 9 ? * MON,TUE,WED,THU,FRI *)');
    expect(toEventBridgeCron('0 0 * * 0')).toBe('cron(0 0 ? * SUN *)');
    expect(toEventBridgeCron('0 0 * * 5-7')).toBe('cron(0 0 ? * SUN,FRI,SAT *)');
    expect(toEventBridgeCron('0 0 * * */2')).toBe('cron(0 0 ? * SUN,TUE,THU,SAT *)');
  });

  it('refuses what it cannot carry, or cannot read', () => {
    expect(() => toEventBridgeCron('0 0 13 * 5')).toThrow(
      /restricts both day-of-month and day-of-week/,
    );
    expect(() => toEventBridgeCron('0 0 13 * 5')).toThrow(InvalidInput);
    expect(() => toEventBridgeCron('61 * * * *')).toThrow(InvalidInput);
  });
});

describe('EventBridgeScheduler', () => {
  it('creates a UTC schedule targeting the queue with its group, role and envelope', async () => {
    const { sqs, fake, scheduler } = setup();
    await scheduler.schedule('domains-poll', '*/5 * * * *', 'domains', { job: 'poll' });
    const input = fake.mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input;
    expect(input).toEqual({
      Name: 'domains-poll',
      GroupName: 'selfdevop',
      ScheduleExpression: 'cron(*/5 * * * ? *)',
      ScheduleExpressionTimezone: 'UTC',
      FlexibleTimeWindow: { Mode: 'OFF' },
      State: 'ENABLED',
      Description: JSON.stringify({ name: 'domains-poll', cron: '*/5 * * * *', queue: 'domains' }),
      Target: {
        Arn: 'arn:aws:sqs:eu-west-1:111122223333:selfdevop-domains.fifo',
        RoleArn: roleArn,
        Input: JSON.stringify({
          payload: { job: 'poll' },
          firedBy: '<aws.scheduler.execution-id>',
        }),
        SqsParameters: { MessageGroupId: 'schedule:domains-poll' },
        RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 3600 },
      },
    });
    fake.mock.restore();
    sqs.mock.restore();
  });

  it('fires every time, even with the same payload within the deduplication window', async () => {
    const { sqs, queue, fake, scheduler } = setup();
    await scheduler.schedule('tick', '* * * * *', 'ticks', { same: true });
    await fake.fire();
    await fake.fire();
    const got: unknown[] = [];
    const stop = await queue.consume('ticks', async (m) => void got.push(m.payload));
    await waitFor(() => got.length === 2, 3000, 'two firings');
    await stop();
    expect(got).toEqual([{ same: true }, { same: true }]);
    fake.mock.restore();
    sqs.mock.restore();
  });

  it('updates on a second schedule() of the same name', async () => {
    const { sqs, fake, scheduler } = setup();
    await scheduler.schedule('n', '0 3 * * *', 'q1');
    await scheduler.schedule('n', '0 4 * * *', 'q1');
    expect(fake.mock.commandCalls(UpdateScheduleCommand)).toHaveLength(1);
    expect((await scheduler.list()).map((s) => s.cron)).toEqual(['0 4 * * *']);
    fake.mock.restore();
    sqs.mock.restore();
  });

  it('keeps names EventBridge refuses under a hash, and lists them as given, across pages', async () => {
    const { sqs, scheduler, fake } = setup();
    const names = ['backup/nightly', 'a', 'b', 'c', 'd'];
    for (const n of names) await scheduler.schedule(n, '0 3 * * *', 'jobs', { n });
    expect(scheduleNameOf('backup/nightly')).toMatch(/^h-[0-9a-f]{40}$/);
    expect((await scheduler.list()).map((s) => s.name).sort()).toEqual([...names].sort());
    fake.mock.restore();
    sqs.mock.restore();
  });

  it('makes its own client from settings on first use, and destroy() closes only a client it has', async () => {
    const mock = mockClient(SchedulerClient);
    const destroy = vi.spyOn(SchedulerClient.prototype, 'destroy');
    try {
      mock.on(DeleteScheduleCommand).resolves({});
      const scheduler = new EventBridgeScheduler({
        client: { region: 'eu-central-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } },
        roleArn,
        queueArn: async () => '',
      });
      await scheduler.destroy();
      expect(destroy).not.toHaveBeenCalled();
      await scheduler.unschedule('nightly');
      expect(mock.commandCalls(DeleteScheduleCommand)[0]?.args[0].input).toEqual({
        Name: 'nightly',
        GroupName: 'selfdevop',
      });
      expect(await (mock.call(0).thisValue as SchedulerClient).config.region()).toBe(
        'eu-central-1',
      );
      await scheduler.destroy();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
      mock.restore();
    }
  });

  it('refuses a role that is not an IAM role ARN, naming the variable', () => {
    expect(() => new EventBridgeScheduler({ roleArn: 'nope', queueArn: async () => '' })).toThrow(
      /^SCHEDULER_ROLE_ARN must be an IAM role ARN/,
    );
  });
});
