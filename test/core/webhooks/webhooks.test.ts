import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryHttpSender } from '../../../adapters/http/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { AuditEvent } from '../../../core/models.ts';
import {
  deliverWebhook,
  fanOutEvent,
  keptDeliveries,
  webhookSecretContext,
  type WebhookDeliveryMessage,
  type WebhookDeps,
} from '../../../core/webhooks/deliver.ts';
import {
  queueEventPublisher,
  webhookDeliveriesQueue,
  webhookEventsQueue,
  type WebhookEventMessage,
} from '../../../core/webhooks/events.ts';
import { signPayload, verifySignature } from '../../../core/webhooks/signature.ts';
import {
  isLoopbackLiteralUrl,
  isLoopbackOrLinkLocalUrl,
  isPrivateUrl,
} from '../../../core/schemas.ts';
import { anAuditEvent, anOrg, aWebhook } from '../../contracts/store.case.ts';

describe('webhook signatures', () => {
  const secret = 'whsec_test';
  const body = '{"id":"aud_1","type":"release.completed"}';

  it('verifies what it signs, within the tolerance', () => {
    const header = signPayload(secret, 1_800_000_000, body);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifySignature(secret, header, body, 1_800_000_100)).toBe(true);
  });

  it('refuses a changed body, another secret, an old timestamp and garbage', () => {
    const header = signPayload(secret, 1_800_000_000, body);
    expect(verifySignature(secret, header, body + ' ', 1_800_000_000)).toBe(false);
    expect(verifySignature('whsec_other', header, body, 1_800_000_000)).toBe(false);
    expect(verifySignature(secret, header, body, 1_800_000_000 + 301)).toBe(false);
    expect(verifySignature(secret, 'nonsense', body, 1_800_000_000)).toBe(false);
  });
});

describe('webhook fan-out and delivery', () => {
  let deps: WebhookDeps & { http: MemoryHttpSender; queue: MemoryQueue };
  const orgId = 'org_a';
  const secret = 'whsec_a';
  let event: AuditEvent;

  beforeEach(async () => {
    const clock = new ManualClock('2027-01-15T12:00:00Z');
    const vault = new MemoryKeyVault();
    deps = {
      store: new MemoryStore(),
      queue: new MemoryQueue({ clock }),
      vault,
      http: new MemoryHttpSender(),
      clock,
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      config: { deliveryTimeoutMs: 1_000, maxDeliveryAttempts: 8 },
    };
    event = anAuditEvent(orgId, {
      id: 'aud_1',
      action: 'release.completed',
      targetType: 'release',
      targetId: 'rel_1',
    });
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      for (const [id, events] of [
        ['whk_all', ['release.completed', 'release.failed']],
        ['whk_other', ['domain.cert_active']],
      ] as const) {
        await r.webhooks.insert(
          aWebhook(orgId, {
            id,
            url: `http://hooks.test/${id}`,
            events: [...events],
            sealedSecret: await vault.seal(secret, webhookSecretContext(orgId, id)),
          }),
        );
      }
    });
  });

  const messageOf = (e: AuditEvent): WebhookEventMessage => ({
    orgId: e.orgId,
    event: {
      id: e.id,
      type: e.action as 'release.completed',
      createdAt: e.createdAt,
      data: e.data,
    },
    auditTarget: { targetType: e.targetType, targetId: e.targetId },
  });

  it('publishes only webhook event types, keyed by the event id', async () => {
    const sent: unknown[] = [];
    await deps.queue.consume(webhookEventsQueue, async (m) => void sent.push(m.payload));
    const publisher = queueEventPublisher(deps.queue);
    await publisher.publish(event);
    await publisher.publish(event);
    await publisher.publish({ ...event, id: 'aud_2', action: 'project.created' });
    await deps.queue.pump();
    expect(sent).toEqual([messageOf(event)]);
  });

  it('sends one delivery per subscribed webhook once the audit row is committed', async () => {
    await deps.store.withOrg(orgId, (r) => r.audit.append(event));
    const deliveries: WebhookDeliveryMessage[] = [];
    await deps.queue.consume<WebhookDeliveryMessage>(
      webhookDeliveriesQueue,
      async (m) => void deliveries.push(m.payload),
    );
    expect(await fanOutEvent(deps, messageOf(event), 1)).toBe(1);
    await deps.queue.pump();
    expect(deliveries.map((d) => d.webhookId)).toEqual(['whk_all']);
  });

  it('retries an event whose audit row is not there yet, then drops it', async () => {
    await expect(fanOutEvent(deps, messageOf(event), 1)).rejects.toThrow(/not committed/);
    expect(await fanOutEvent(deps, messageOf(event), 3)).toBe(0);
  });

  it('POSTs the event signed with the webhook secret', async () => {
    const res = await deliverWebhook(
      deps,
      { orgId, webhookId: 'whk_all', event: messageOf(event).event },
      1,
    );
    expect(res).toEqual({ delivered: true, status: 200 });
    const [sent] = deps.http.sent;
    expect(sent!.url).toBe('http://hooks.test/whk_all');
    expect(JSON.parse(sent!.body)).toEqual({
      id: 'aud_1',
      type: 'release.completed',
      createdAt: event.createdAt,
      data: event.data,
    });
    expect(sent!.headers['x-selfdevop-event']).toBe('release.completed');
    const now = Math.floor(deps.clock.now().getTime() / 1000);
    expect(verifySignature(secret, sent!.headers['x-selfdevop-signature']!, sent!.body, now)).toBe(
      true,
    );
  });

  it('throws on a non-2xx answer or no answer, so the queue retries', async () => {
    deps.http.respond = () => 500;
    await expect(
      deliverWebhook(deps, { orgId, webhookId: 'whk_all', event: messageOf(event).event }, 1),
    ).rejects.toThrow(/500/);
    deps.http.respond = () => null;
    await expect(
      deliverWebhook(deps, { orgId, webhookId: 'whk_all', event: messageOf(event).event }, 2),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it('records every attempt with what the receiver said, newest kept, gone with its webhook', async () => {
    const message = { orgId, webhookId: 'whk_all', event: messageOf(event).event };
    deps.http.respond = () => 503;
    await expect(deliverWebhook(deps, message, 1)).rejects.toThrow(/503/);
    deps.http.respond = () => null;
    await expect(deliverWebhook(deps, message, 2)).rejects.toThrow(/ECONNREFUSED/);
    deps.http.respond = () => 204;
    await deliverWebhook(deps, message, 3);
    const recorded = await deps.store.withOrg(orgId, (r) =>
      r.webhookDeliveries.list('whk_all', { limit: 10 }),
    );
    expect(
      recorded.items.map((d) => [
        d.eventId,
        d.eventType,
        d.attempt,
        d.delivered,
        d.responseStatus,
        d.error,
      ]),
    ).toEqual([
      ['aud_1', 'release.completed', 1, false, 503, null],
      [
        'aud_1',
        'release.completed',
        2,
        false,
        null,
        'connect ECONNREFUSED http://hooks.test/whk_all',
      ],
      ['aud_1', 'release.completed', 3, true, 204, null],
    ]);
    for (let i = 0; i < keptDeliveries; i++) await deliverWebhook(deps, message, 4 + i);
    const kept = await deps.store.withOrg(orgId, (r) =>
      r.webhookDeliveries.list('whk_all', { limit: 200 }),
    );
    expect(kept.items).toHaveLength(keptDeliveries);
    expect(kept.items[0]!.attempt).toBe(4);
    await deps.store.withOrg(orgId, (r) => r.webhooks.delete('whk_all'));
    expect(
      (await deps.store.withOrg(orgId, (r) => r.webhookDeliveries.list('whk_all', { limit: 10 })))
        .items,
    ).toEqual([]);
  });

  it('does not fail (and so repeat) a delivery whose record cannot be written; it logs why', async () => {
    const store = deps.store;
    const broken: typeof store = Object.create(store, {
      withOrg: {
        value: (org: string, fn: Parameters<typeof store.withOrg>[1]) =>
          store.withOrg(org, (repos) =>
            fn({
              ...repos,
              webhookDeliveries: {
                ...repos.webhookDeliveries,
                append: () => Promise.reject(new Error('connection terminated')),
              },
            }),
          ),
      },
    });
    const logger = new MemoryLogger();
    const res = await deliverWebhook(
      { ...deps, store: broken, logger },
      { orgId, webhookId: 'whk_all', event: messageOf(event).event },
      1,
    );
    expect(res).toEqual({ delivered: true, status: 200 });
    expect(logger.entries.map((e) => [e.level, e.msg, e.error])).toContainEqual([
      'warn',
      'webhook delivery attempt not recorded',
      'connection terminated',
    ]);
  });

  it('drops a delivery for a webhook deleted since', async () => {
    await deps.store.withOrg(orgId, (r) => r.webhooks.delete('whk_all'));
    expect(
      await deliverWebhook(deps, { orgId, webhookId: 'whk_all', event: messageOf(event).event }, 1),
    ).toEqual({ delivered: false, status: null });
    expect(deps.http.sent).toEqual([]);
  });
});

describe('isPrivateUrl (the check when a webhook is created)', () => {
  it.each([
    'http://localhost/h',
    'http://127.0.0.1/h',
    'http://10.0.0.5/h',
    'http://172.20.0.1/h',
    'http://192.168.0.1/h',
    'http://169.254.169.254/latest/meta-data',
    'http://100.64.0.1/h',
    'http://0.0.0.0/h',
    'http://[::1]/h',
    'http://[::]/h',
    'http://[fd12::1]/h',
    'http://[fe80::1]/h',
    'http://[::ffff:127.0.0.1]/h',
    'http://2130706433/h',
  ])('%s is private', (url) => {
    expect(isPrivateUrl(url)).toBe(true);
  });

  it.each([
    'https://hooks.example.com/h',
    'http://203.0.113.10/h',
    'http://172.32.0.1/h',
    'http://100.128.0.1/h',
    'http://[2001:db8::1]/h',
  ])('%s is not', (url) => {
    expect(isPrivateUrl(url)).toBe(false);
  });
});

describe('isLoopbackOrLinkLocalUrl (refused whatever the install allows)', () => {
  it.each([
    'http://localhost:2019/stop',
    'http://127.0.0.1:2019/stop',
    'http://127.1.2.3/h',
    'http://2130706433:2019/stop',
    'http://0.0.0.0:2019/stop',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]:2019/stop',
    'http://[::]/h',
    'http://[fe80::1]/h',
    'http://[::ffff:127.0.0.1]:2019/stop',
    'http://[::ffff:169.254.169.254]/h',
  ])('%s is', (url) => {
    expect(isLoopbackOrLinkLocalUrl(url)).toBe(true);
  });

  it.each([
    'http://10.0.0.5/h',
    'http://192.168.0.1/h',
    'https://hooks.example.com/h',
    'http://[fd12::1]/h',
  ])('%s is not', (url) => {
    expect(isLoopbackOrLinkLocalUrl(url)).toBe(false);
  });
});

describe('isLoopbackLiteralUrl (what a test system, by its test-only override, accepts)', () => {
  it.each(['http://127.0.0.1:4000/hooks', 'http://127.0.0.2/h', 'http://[::1]:4000/h'])(
    '%s is',
    (url) => expect(isLoopbackLiteralUrl(url)).toBe(true),
  );

  it.each([
    'http://localhost:2019/stop',
    'http://169.254.169.254/latest/meta-data',
    'http://0.0.0.0:2019/stop',
    'http://[::ffff:127.0.0.1]/h',
    'http://127.0.0.1.attacker.example/h',
  ])('%s is not', (url) => expect(isLoopbackLiteralUrl(url)).toBe(false));
});
