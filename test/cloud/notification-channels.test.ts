/**
 * Notification channels in cloud mode: the cloud system (fromCloud) on a real PostgreSQL
 * database, its worker Lambda handler fed SQS-shaped events as the event source mappings
 * would, e-mail through the SES mailer (mocked at the SDK boundary) and Slack through the
 * cloud's HTTP sender to a loopback sink (the composition root's test-only override). A
 * burst of failed releases travels webhook-events → notification-flushes (FIFO, grouped by
 * channel) and reaches each channel as one message.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import type { Principal } from '../../core/deps.ts';
import {
  createNotificationChannel,
  listNotificationDeliveries,
} from '../../core/notification-channels/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { anAuditEvent } from '../contracts/store/builders.ts';
import { createTestDatabase } from '../support/db.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready = await available('postgres');
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe.skipIf(!ready)('notification channels in cloud mode', () => {
  let sink: http.Server;
  let sinkUrl: string;
  const posted: { text: string }[] = [];

  beforeAll(async () => {
    sink = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        posted.push(JSON.parse(body));
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/services/T/B/cloud`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => (sink ? sink.close(() => r()) : r()));
  });

  it('groups a burst of failed releases into one Slack post and one SES mail', async () => {
    const db = await createTestDatabase('cloud_notify');
    await migrate(db.url);
    const fake = new FakeSqs();
    const undoSqs = fake.interceptEveryClient();
    const kms = fakeKmsForEveryClient(keyArn);
    const ses = mockClient(SESv2Client);
    const mails: { to: string[]; subject: string; text: string }[] = [];
    ses.on(SendEmailCommand).callsFake((input: SendEmailCommand['input']) => {
      mails.push({
        to: input.Destination?.ToAddresses ?? [],
        subject: input.Content?.Simple?.Subject?.Data ?? '',
        text: input.Content?.Simple?.Body?.Text?.Data ?? '',
      });
      return { MessageId: `ses-${mails.length}` };
    });
    let system: CloudSystem | undefined;
    try {
      system = await fromCloud(
        fromCloudEnv({
          AWS_REGION: 'eu-west-1',
          DATABASE_URL: db.url,
          COGNITO_USER_POOL_ID: 'eu-west-1_AbC123',
          COGNITO_CLIENT_ID: 'abc123client',
          COGNITO_DOMAIN: 'selfdevop-test.auth.eu-west-1.amazoncognito.com',
          DASHBOARD_URL: 'https://console.example.com',
          SECRETS_KMS_KEY_ID: keyArn,
          OBJECTS_BUCKET: 'selfdevop-objects-111122223333',
          SCHEDULER_ROLE_ARN: 'arn:aws:iam::111122223333:role/selfdevop-scheduler',
          MAIL_FROM: 'noreply@example.com',
          EDGE_DOMAIN: 'localhost',
          CADDY_ADMIN_URL: 'http://127.0.0.1:1',
          LOG_LEVEL: 'silent',
        }),
        { webhooksToLoopback: true },
      );
      const cloud = system;
      const handlers = sqsWorkerHandlers(cloud);
      for (const q of Object.keys(handlers)) fake.createWorkerQueue(cloud.queue.physicalNames(q));
      const handler = createWorkerHandler({
        queue: cloud.queue,
        handlers,
        logger: new MemoryLogger(),
      });
      const pump = async (queue: string) => {
        for (const name of [cloud.queue.physicalNames(queue).main]) {
          for (let i = 0; i < 20; i++) {
            const event = await pollEvent(fake, cloud.queue, name);
            if (event.Records.length === 0) break;
            await settle(fake, cloud.queue, name, event, await handler(event));
          }
        }
      };

      const api = cloud.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-notify@example.com',
        passwordHash: 'unused',
        createdAt: api.clock.now().toISOString(),
      });
      const user: Principal = {
        actorType: 'user',
        actorId: userId,
        userId,
        orgId: null,
        role: null,
      };
      const org = await createOrg(api, user, { name: 'noisy' }, ctx);
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      // Window 0: the flush is due at once (no delay queue); the burst is held before it runs.
      const slack = await createNotificationChannel(
        api,
        owner,
        {
          kind: 'slack',
          name: 'alerts',
          url: sinkUrl,
          events: ['release.failed'],
          groupWindowSeconds: 0,
        },
        ctx,
      );
      const email = await createNotificationChannel(
        api,
        owner,
        {
          kind: 'email',
          name: 'ops',
          address: 'ops@example.com',
          events: ['release.failed'],
          groupWindowSeconds: 0,
        },
        ctx,
      );
      for (let i = 0; i < 5; i++) {
        const e = anAuditEvent(org.id, {
          actorType: 'system',
          actorId: 'worker',
          action: 'release.failed',
          targetType: 'release',
          targetId: `rel_cloud_${i}`,
          data: { serviceId: 'svc_c', environmentId: 'env_c' },
        });
        await api.store.withOrg(org.id, async (r) => {
          await r.audit.append(e);
          await cloud.release.events!.publish(e);
        });
      }
      await pump('webhook-events');
      await pump('notification-flushes');

      expect(posted.map((p) => p.text)).toEqual(['selfdevop: 5 × Release failed']);
      expect(mails).toEqual([
        {
          to: ['ops@example.com'],
          subject: '[selfdevop] 5 × Release failed',
          text: expect.stringContaining(
            'Dashboard: https://console.example.com/dashboard/releases/rel_cloud_0',
          ),
        },
      ]);
      for (const ch of [slack, email]) {
        const log = await listNotificationDeliveries(api, owner, ch.id, { limit: 10 });
        expect(log.items.map((d) => [d.events, d.delivered])).toEqual([[5, true]]);
      }
    } finally {
      await system?.close();
      undoSqs();
      kms.restore();
      ses.restore();
      fake.mock.restore();
      await db.drop();
    }
  }, 60_000);
});
