/**
 * Notification channels with the in-memory ports, wired by `wireSystem` as both modes wire
 * theirs: validation, sealed Slack URLs, grouping (a storm is one message per channel), the
 * delivery log, retries and giving up, links and runbooks, and other orgs' ids as 404s.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryAuth } from '../../../adapters/auth/memory.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryDnsResolver } from '../../../adapters/dns/memory.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { MemoryHttpSender } from '../../../adapters/http/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryMailer } from '../../../adapters/mail/memory.ts';
import { MemoryMetrics } from '../../../adapters/metrics/memory.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { OrgPrincipal } from '../../../core/deps.ts';
import { Forbidden, InvalidInput, NotFound } from '../../../core/errors.ts';
import type { AuditEvent } from '../../../core/models.ts';
import {
  firstMessageWaitSeconds,
  flushChannel,
  flushDelaySeconds,
  maxEventsPerMessage,
  notificationFlushesQueue,
  renderMessage,
  settleSeconds,
} from '../../../core/notification-channels/notify.ts';
import {
  createNotificationChannel,
  deleteNotificationChannel,
  listNotificationChannels,
  listNotificationDeliveries,
  testNotificationChannel,
} from '../../../core/notification-channels/use-cases.ts';
import { wireSystem, type System } from '../../../core/system.ts';
import { fanOutEvent } from '../../../core/webhooks/deliver.ts';
import type { WebhookEventMessage } from '../../../core/webhooks/events.ts';
import { anAuditEvent, anOrg } from '../../contracts/store.case.ts';

const slackUrl = 'https://hooks.slack.com/services/T000/B000/secretXYZ1234';

describe('notification channels', () => {
  let system: System;
  let http: MemoryHttpSender;
  let mailer: MemoryMailer;
  let queue: MemoryQueue;
  let clock: ManualClock;
  const ctx = { requestId: 'req_1', ip: null };
  const admin: OrgPrincipal = {
    actorType: 'user',
    actorId: 'usr_1',
    userId: 'usr_1',
    orgId: 'org_a',
    role: 'admin',
  };
  const otherAdmin: OrgPrincipal = { ...admin, actorId: 'usr_2', userId: 'usr_2', orgId: 'org_b' };

  beforeEach(async () => {
    // 12:00:05, so a 60 s window opened now closes at 12:01:00.
    clock = new ManualClock('2027-01-15T12:00:05Z');
    http = new MemoryHttpSender();
    mailer = new MemoryMailer({ refuse: ['gone@example.com'] });
    queue = new MemoryQueue({ clock });
    const store = new MemoryStore();
    system = wireSystem(
      {
        store,
        queue,
        vault: new MemoryKeyVault(),
        auth: new MemoryAuth({ clock }),
        runtime: new MemoryRuntime(),
        edge: new MemoryEdgeRouter(),
        probe: new MemoryHealthProbe(),
        dns: new MemoryDnsResolver(),
        http,
        mailer,
        clock,
        ids: new SequenceIds(),
        logger: new MemoryLogger(),
        metrics: new MemoryMetrics(),
      },
      {
        edgeDomain: 'apps.example.test',
        edgeIpv4: [],
        signupMode: 'open',
        maxBodyBytes: 1024,
        version: 'test',
        loginLimits: { perAccount: 10, perIp: 100 },
        allowPrivateWebhooks: false,
        webhooks: { maxDeliveryAttempts: 3 },
        publicUrl: 'https://sdo.example.test/',
      },
    );
    for (const orgId of ['org_a', 'org_b'])
      await store.withOrg(orgId, (r) => r.orgs.insert(anOrg({ id: orgId })));
  });

  const failed = async (n: number, type = 'release.failed'): Promise<AuditEvent> => {
    const e = anAuditEvent('org_a', {
      id: `aud_${String(n).padStart(4, '0')}`,
      action: type,
      targetType: 'release',
      targetId: `rel_${n}`,
      data: { serviceId: 'svc_1', environmentId: 'env_1' },
    });
    await system.api.store.withOrg('org_a', (r) => r.audit.append(e));
    const message: WebhookEventMessage = {
      orgId: 'org_a',
      event: {
        id: e.id,
        type: type as 'release.failed',
        createdAt: e.createdAt,
        data: e.data,
      },
      auditTarget: { targetType: e.targetType, targetId: e.targetId },
    };
    await fanOutEvent(system.webhooks, message, 1);
    return e;
  };

  it('refuses a URL that is not Slack, a private Slack look-alike, and e-mail without a mail server', async () => {
    await expect(
      createNotificationChannel(
        system.api,
        admin,
        { kind: 'slack', name: 'x', url: 'https://example.com/services/T/B/C' },
        ctx,
      ),
    ).rejects.toThrow(/must be a Slack incoming-webhook URL/);
    await expect(
      createNotificationChannel(
        system.api,
        admin,
        { kind: 'slack', name: 'x', url: 'http://hooks.slack.com/services/T/B/C' },
        ctx,
      ),
    ).rejects.toBeInstanceOf(InvalidInput);
    await expect(
      createNotificationChannel(
        system.api,
        admin,
        { kind: 'slack', name: 'x', url: 'http://127.0.0.1:9/services/T/B/C' },
        ctx,
      ),
    ).rejects.toBeInstanceOf(InvalidInput);
    const { mailer: _m, ...noMail } = system.api;
    await expect(
      createNotificationChannel(
        noMail,
        admin,
        { kind: 'email', name: 'ops', address: 'ops@example.com' },
        ctx,
      ),
    ).rejects.toThrow(/needs a mail server.*SMTP_URL/);
    const viewer = { ...admin, role: 'viewer' as const };
    await expect(
      createNotificationChannel(
        system.api,
        viewer,
        { kind: 'slack', name: 'x', url: slackUrl },
        ctx,
      ),
    ).rejects.toBeInstanceOf(Forbidden);
  });

  it('seals the Slack URL: listed masked, never in the audit trail', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'slack', name: 'alerts', url: slackUrl },
      ctx,
    );
    expect(ch).toEqual({
      id: expect.stringMatching(/^nch_/),
      orgId: 'org_a',
      kind: 'slack',
      name: 'alerts',
      address: null,
      target: 'https://hooks.slack.com/services/…1234',
      events: expect.arrayContaining(['release.failed', 'release.completed']),
      groupWindowSeconds: 60,
      createdAt: '2027-01-15T12:00:05.000Z',
    });
    const listed = await listNotificationChannels(system.api, admin);
    expect(JSON.stringify(listed)).not.toContain('secretXYZ');
    const audit = await system.api.store.withOrg('org_a', (r) => r.audit.list({ limit: 50 }));
    expect(JSON.stringify(audit)).not.toContain('secretXYZ');
    expect(audit.items.map((a) => a.action)).toContain('notification_channel.created');
  });

  it('groups a storm of 100 failures into one message per channel, linked to the dashboard and the runbook', async () => {
    const slack = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'slack', name: 'alerts', url: slackUrl, events: ['release.failed'] },
      ctx,
    );
    const email = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com', events: ['release.failed'] },
      ctx,
    );
    for (let i = 1; i <= 100; i++) await failed(i);
    // One flush per channel for the window (due at its end), however many events came in it.
    expect(await queue.depth(notificationFlushesQueue)).toBe(2);
    clock.advance(55_000);

    for (const ch of [slack, email])
      expect(
        await flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1),
      ).toEqual({
        sent: 100,
        delivered: true,
      });
    expect(http.sent).toHaveLength(1);
    expect(mailer.sent).toHaveLength(1);

    const posted = http.sent[0]!;
    expect(posted.url).toBe(slackUrl);
    expect(posted.headers['content-type']).toBe('application/json');
    const body = JSON.parse(posted.body);
    expect(body.text).toBe('selfdevop: 100 × Release failed');
    expect(body.blocks[0]).toEqual({
      type: 'section',
      text: { type: 'mrkdwn', text: '*selfdevop: 100 × Release failed*' },
    });
    expect(body.blocks[1].text.text).toContain(
      '<https://sdo.example.test/dashboard/releases/rel_1|Open in the dashboard>',
    );
    expect(body.blocks[1].text.text).toContain('docs/runbooks/app-down.md');
    expect(body.blocks.at(-1).text.text).toBe('… and 80 more');

    const mail = mailer.sent[0]!;
    expect(mail.to).toBe('ops@example.com');
    expect(mail.subject).toBe('[selfdevop] 100 × Release failed');
    expect(mail.text).toContain('Dashboard: https://sdo.example.test/dashboard/releases/rel_1');
    expect(mail.text).toContain('Runbook: docs/runbooks/app-down.md');

    // Nothing is held any more: a second flush of the window sends nothing.
    expect(
      await flushChannel(system.notifications, { orgId: 'org_a', channelId: slack.id }, 1),
    ).toEqual({ sent: 0, delivered: false });
    const log = await listNotificationDeliveries(system.api, admin, slack.id, { limit: 10 });
    expect(log.items.map((d) => [d.eventType, d.events, d.attempt, d.delivered])).toEqual([
      ['release.failed', 100, 1, true],
    ]);
  });

  it('opens the window with the first event, and sends later events in a message of their own', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com', groupWindowSeconds: 10 },
      ctx,
    );
    await failed(1);
    clock.advance(9_000);
    await failed(2);
    expect(await queue.depth(notificationFlushesQueue)).toBe(1);
    clock.advance(1_000);
    await flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1);
    expect(mailer.sent.map((m) => m.subject)).toEqual(['[selfdevop] 2 × Release failed']);
    await failed(3);
    expect(await queue.depth(notificationFlushesQueue)).toBe(2);
  });

  it('sends a quiet channel its first message after a short wait, and follow-ups once per window', async () => {
    const delays: number[] = [];
    const send = queue.send.bind(queue);
    queue.send = (q, payload, options) => {
      if (q === notificationFlushesQueue) delays.push(options?.delaySeconds ?? 0);
      return send(q, payload, options);
    };
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com' },
      ctx,
    );
    expect(ch.groupWindowSeconds).toBe(60);
    // A test message is not a message of events: the channel is still quiet.
    await testNotificationChannel(system.api, admin, ch.id, ctx);
    await failed(1);
    expect(delays).toEqual([firstMessageWaitSeconds]);
    clock.advance(firstMessageWaitSeconds * 1000);
    await flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1);
    // 20 s after that message the storm goes on: the next one closes the window it opened.
    clock.advance(20_000);
    await failed(2);
    await failed(3);
    expect(delays).toEqual([firstMessageWaitSeconds, 40]);
    clock.advance(40_000);
    await flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1);
    expect(mailer.sent.slice(-2).map((m) => m.subject)).toEqual([
      '[selfdevop] Release failed',
      '[selfdevop] 2 × Release failed',
    ]);
    // A window after the last message the channel is quiet again.
    clock.advance(61_000);
    await failed(4);
    expect(delays).toEqual([firstMessageWaitSeconds, 40, firstMessageWaitSeconds]);
  });

  it('waits for a storm still arriving when its first message is due, up to the window', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com', groupWindowSeconds: 10 },
      ctx,
    );
    const flush = () => flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1);
    await failed(1);
    clock.advance(4_500);
    await failed(2);
    clock.advance(500);
    // Due, but the storm came 0.5 s ago: the message waits for it to pause.
    expect(await flush()).toEqual({ sent: 0, delivered: false });
    expect(await queue.depth(notificationFlushesQueue)).toBe(2);
    clock.advance(1_000);
    await failed(3);
    clock.advance(2_000);
    expect(await flush()).toEqual({ sent: 3, delivered: true });
    // A storm that never pauses is still sent when the window since its first event closes.
    clock.advance(60_000);
    for (let k = 4; k < 14; k++) {
      await failed(k);
      clock.advance(1_000);
    }
    expect(await flush()).toEqual({ sent: 10, delivered: true });
    expect(mailer.sent.map((m) => m.subject)).toEqual([
      '[selfdevop] 3 × Release failed',
      '[selfdevop] 10 × Release failed',
    ]);
    expect(settleSeconds({ groupWindowSeconds: 10 }, [], new Date())).toBe(0);
  });

  it('waits no longer than the channel asks: a window of 0 sends each event alone at once', () => {
    const now = new Date('2027-01-15T12:00:00Z');
    expect(flushDelaySeconds(0, null, now)).toBe(0);
    expect(flushDelaySeconds(0, '2027-01-15T11:59:59Z', now)).toBe(0);
    expect(flushDelaySeconds(3, null, now)).toBe(3);
    expect(flushDelaySeconds(60, null, now)).toBe(firstMessageWaitSeconds);
    expect(flushDelaySeconds(60, '2027-01-15T11:59:30Z', now)).toBe(30);
    expect(flushDelaySeconds(60, '2027-01-15T11:59:58Z', now)).toBe(58);
    expect(flushDelaySeconds(60, '2027-01-15T11:58:00Z', now)).toBe(firstMessageWaitSeconds);
  });

  it('does not hold an event twice when its fan-out is retried', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com' },
      ctx,
    );
    const e = await failed(1);
    await fanOutEvent(
      system.webhooks,
      {
        orgId: 'org_a',
        event: { id: e.id, type: 'release.failed', createdAt: e.createdAt, data: e.data },
        auditTarget: { targetType: 'release', targetId: 'rel_1' },
      },
      2,
    );
    clock.advance(firstMessageWaitSeconds * 1000);
    await flushChannel(system.notifications, { orgId: 'org_a', channelId: ch.id }, 1);
    expect(mailer.sent[0]!.subject).toBe('[selfdevop] Release failed');
  });

  it('retries a refused message with the events kept, and gives them up after the last attempt', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'slack', name: 'alerts', url: slackUrl },
      ctx,
    );
    await failed(1);
    clock.advance(firstMessageWaitSeconds * 1000);
    http.respond = () => 500;
    const flush = { orgId: 'org_a', channelId: ch.id };
    await expect(flushChannel(system.notifications, flush, 1)).rejects.toThrow(/HTTP 500/);
    http.respond = () => null;
    await expect(flushChannel(system.notifications, flush, 2)).rejects.toThrow(/ECONNREFUSED/);
    // maxDeliveryAttempts is 3: the last attempt records the failure and lets the events go.
    expect(await flushChannel(system.notifications, flush, 3)).toEqual({
      sent: 1,
      delivered: false,
    });
    expect(await flushChannel(system.notifications, flush, 1)).toEqual({
      sent: 0,
      delivered: false,
    });
    const log = await listNotificationDeliveries(system.api, admin, ch.id, { limit: 10 });
    expect(log.items.map((d) => [d.attempt, d.delivered, d.error])).toEqual([
      [1, false, 'Slack answered HTTP 500'],
      [2, false, `connect ECONNREFUSED ${slackUrl}`],
      [3, false, `connect ECONNREFUSED ${slackUrl}`],
    ]);
  });

  it('sends at most one message worth of events and asks at once for the rest', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'ops', address: 'ops@example.com', groupWindowSeconds: 0 },
      ctx,
    );
    for (let i = 1; i <= maxEventsPerMessage + 2; i++) await failed(i);
    const flush = { orgId: 'org_a', channelId: ch.id };
    const before = await queue.depth(notificationFlushesQueue);
    expect((await flushChannel(system.notifications, flush, 1)).sent).toBe(maxEventsPerMessage);
    // The rest are asked for at once rather than with the next event.
    expect(await queue.depth(notificationFlushesQueue)).toBe(before + 1);
    expect((await flushChannel(system.notifications, flush, 1)).sent).toBe(2);
  });

  it('sends a test now, records it, and audits only whether it was delivered', async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'email', name: 'gone', address: 'gone@example.com' },
      ctx,
    );
    const r = await testNotificationChannel(system.api, admin, ch.id, ctx);
    expect(r).toEqual({ delivered: false, error: expect.stringContaining('550') });
    const ok = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'slack', name: 'alerts', url: slackUrl },
      ctx,
    );
    expect(await testNotificationChannel(system.api, admin, ok.id, ctx)).toEqual({
      delivered: true,
      error: null,
    });
    expect(JSON.parse(http.sent[0]!.body).text).toBe('selfdevop: Test notification');
    const audit = await system.api.store.withOrg('org_a', (r) =>
      r.audit.list({ limit: 50 }, { action: 'notification_channel.tested' }),
    );
    expect(audit.items.map((a) => a.data)).toEqual([{ delivered: false }, { delivered: true }]);
  });

  it("answers another org's channel ids with 404", async () => {
    const ch = await createNotificationChannel(
      system.api,
      admin,
      { kind: 'slack', name: 'alerts', url: slackUrl },
      ctx,
    );
    await expect(
      testNotificationChannel(system.api, otherAdmin, ch.id, ctx),
    ).rejects.toBeInstanceOf(NotFound);
    await expect(
      listNotificationDeliveries(system.api, otherAdmin, ch.id, { limit: 10 }),
    ).rejects.toBeInstanceOf(NotFound);
    await expect(
      deleteNotificationChannel(system.api, otherAdmin, ch.id, ctx),
    ).rejects.toBeInstanceOf(NotFound);
    await deleteNotificationChannel(system.api, admin, ch.id, ctx);
    expect((await listNotificationChannels(system.api, admin)).items).toEqual([]);
  });

  it('links a domain event to its service domains page, with paths when no public URL is set', () => {
    const m = renderMessage(
      [{ eventId: 'aud_1', eventType: 'domain.cert_active', data: { serviceId: 'svc_1' } }],
      undefined,
    );
    expect(m.text).toContain('Dashboard: /dashboard/services/svc_1/domains');
    expect(m.text).not.toContain('Runbook');
    expect(m.slack.blocks[1]!.text.text).toContain('Dashboard: /dashboard/services/svc_1/domains');
  });
});
