import { alertRuleById } from '../alerts/rules.ts';
import { NotFound } from '../errors.ts';
import type { HeldNotification, NotificationChannel, NotificationDelivery } from '../models.ts';
import type {
  Clock,
  EventQueue,
  HttpSender,
  IdGenerator,
  KeyVault,
  Logger,
  Mailer,
  MessageHandler,
  Store,
} from '../ports.ts';
import type { WebhookEventMessage } from '../webhooks/events.ts';

/** Queue of "a channel's grouping window closed: send what it holds". */
export const notificationFlushesQueue = 'notification-flushes';

export interface NotificationDeps {
  store: Store;
  queue: EventQueue;
  vault: KeyVault;
  /** Posts to Slack; the same sender as webhooks, so the same addresses are refused. */
  http: HttpSender;
  /** SMTP self-hosted, SES in the cloud; absent when no mail is configured. */
  mailer?: Mailer;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  config: {
    /** Where the dashboard is, for links in messages; links are paths when unknown. */
    publicUrl?: string;
    deliveryTimeoutMs: number;
    /** Sends of one grouped message before it is given up on (recorded as failed). */
    maxDeliveryAttempts: number;
  };
}

export interface NotificationFlushMessage {
  orgId: string;
  channelId: string;
}

/** The AAD a Slack channel's URL is sealed under. */
export const channelUrlContext = (orgId: string, channelId: string) =>
  `${orgId}:notification-channel:${channelId}`;

/** Events one message carries at most; more wait for the next window (a storm is not one huge mail). */
export const maxEventsPerMessage = 500;
/** Attempts kept per channel, as for webhooks. */
export const keptNotificationDeliveries = 100;
/**
 * How long a quiet channel waits before its first message: long enough to gather the events
 * of one storm that arrive together (Alertmanager posts a storm's alerts within a second),
 * short enough that the page comes fast. A channel that delivered within its
 * `groupWindowSeconds` waits for that window instead, so a long storm is one message now and
 * at most one more per window (Alertmanager's group_wait and group_interval, per channel).
 */
export const firstMessageWaitSeconds = 5;
/**
 * A storm still arriving when its message is due (an event held this recently) is waited
 * for a little longer, until it pauses or the window since its first event closes, so a
 * storm spread over a few seconds is still one message.
 */
export const stormSettleSeconds = 2;

/** Seconds until a channel's next message: the first wait, or the rest of its window. */
export function flushDelaySeconds(
  groupWindowSeconds: number,
  lastDeliveredAt: string | null,
  now: Date,
): number {
  const first = Math.min(groupWindowSeconds, firstMessageWaitSeconds);
  if (lastDeliveredAt === null) return first;
  const rest = groupWindowSeconds - (now.getTime() - Date.parse(lastDeliveredAt)) / 1000;
  return Math.max(first, Math.ceil(rest));
}

/** The runbook (docs/runbooks/<name>.md) for each event that needs someone to act. */
export const runbookOf: Record<string, string | undefined> = {
  'release.failed': 'app-down',
  'release.rolled_back': 'app-down',
  'replica.crash_looping': 'app-down',
  'node.lost': 'node-lost',
};

/** An alert names its own runbook (the rule's, core/alerts/rules.ts). */
const runbookOfEvent = (h: Pick<HeldNotification, 'eventType' | 'data'>): string | undefined =>
  h.eventType.startsWith('alert.')
    ? alertRuleById(String(h.data.rule ?? ''))?.runbook
    : runbookOf[h.eventType];

const titles: Record<string, string> = {
  'release.started': 'Release started',
  'release.migration_succeeded': 'Release migration succeeded',
  'release.failed': 'Release failed',
  'release.completed': 'Release completed',
  'release.rolled_back': 'Release rolled back',
  'domain.dns_verified': 'Domain DNS verified',
  'domain.cert_active': 'Domain certificate active',
  'replica.crash_looping': 'Replica crash-looping',
  'alert.firing': 'Alert firing',
  'alert.resolved': 'Alert resolved',
  'node.lost': 'Node lost',
  'node.recovered': 'Node answers again',
  'node.deleted': 'Node deleted',
  'notification.test': 'Test notification',
};

/** The dashboard page that shows what the event is about. */
export function dashboardPathOf(h: Pick<HeldNotification, 'eventType' | 'data'>): string {
  const d = h.data;
  if (h.eventType.startsWith('release.') && typeof d.targetId === 'string')
    return `/dashboard/releases/${encodeURIComponent(d.targetId)}`;
  if (
    (h.eventType.startsWith('alert.') || h.eventType.startsWith('replica.')) &&
    typeof d.serviceId === 'string'
  )
    return `/dashboard/services/${encodeURIComponent(d.serviceId)}`;
  if (h.eventType.startsWith('alert.') && typeof d.nodeId === 'string')
    return `/dashboard/nodes/${encodeURIComponent(d.nodeId)}`;
  // A deleted node has no page left: its list does.
  if (h.eventType === 'node.deleted') return '/dashboard/nodes';
  if (h.eventType.startsWith('node.') && typeof d.nodeId === 'string')
    return `/dashboard/nodes/${encodeURIComponent(d.nodeId)}`;
  if (h.eventType.startsWith('domain.') && typeof d.serviceId === 'string')
    return `/dashboard/services/${encodeURIComponent(d.serviceId)}/domains`;
  return '/dashboard/notification-channels';
}

export interface RenderedMessage {
  subject: string;
  /** Plain text, for mail. */
  text: string;
  /** Slack's incoming-webhook body: `text` (the fallback) and `blocks` of mrkdwn sections. */
  slack: { text: string; blocks: { type: 'section'; text: { type: 'mrkdwn'; text: string } }[] };
}

/**
 * One message for a group of events: a headline counting them by type, then each event
 * (up to 20 listed) with its dashboard link and runbook, so one storm is one message an
 * on-call engineer can act on.
 */
export function renderMessage(
  events: Pick<HeldNotification, 'eventId' | 'eventType' | 'data'>[],
  publicUrl: string | undefined,
): RenderedMessage {
  const base = (publicUrl ?? '').replace(/\/+$/, '');
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.eventType, (counts.get(e.eventType) ?? 0) + 1);
  const headline = [...counts]
    .map(([type, n]) => (n > 1 ? `${n} × ${titles[type] ?? type}` : (titles[type] ?? type)))
    .join(', ');
  const listed = events.slice(0, 20);
  const lines = listed.map((e) => {
    const runbook = runbookOfEvent(e);
    // An alert says which rule, so "3 × Alert firing" still reads as what is wrong.
    const what =
      e.eventType.startsWith('alert.') && typeof e.data.title === 'string'
        ? `: ${e.data.title}`
        : '';
    return {
      title: `${titles[e.eventType] ?? e.eventType}${what} (${e.eventId})`,
      link: `${base}${dashboardPathOf(e)}`,
      runbook: runbook ? `docs/runbooks/${runbook}.md` : null,
    };
  });
  const more = events.length - listed.length;
  const text = [
    `selfdevop: ${headline}`,
    '',
    ...lines.map(
      (l) => `- ${l.title}\n  Dashboard: ${l.link}${l.runbook ? `\n  Runbook: ${l.runbook}` : ''}`,
    ),
    ...(more > 0 ? [`… and ${more} more`] : []),
  ].join('\n');
  const mrkdwn = (l: (typeof lines)[number]) =>
    `*${l.title}*\n${l.link.startsWith('http') ? `<${l.link}|Open in the dashboard>` : `Dashboard: ${l.link}`}${l.runbook ? `\nRunbook: \`${l.runbook}\`` : ''}`;
  return {
    subject: `[selfdevop] ${headline}`,
    text,
    slack: {
      text: `selfdevop: ${headline}`,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text: `*selfdevop: ${headline}*` } },
        ...lines.map((l) => ({
          type: 'section' as const,
          text: { type: 'mrkdwn' as const, text: mrkdwn(l) },
        })),
        ...(more > 0
          ? [
              {
                type: 'section' as const,
                text: { type: 'mrkdwn' as const, text: `… and ${more} more` },
              },
            ]
          : []),
      ],
    },
  };
}

/**
 * Holds a committed event for every channel subscribed to it. The first event a channel
 * holds opens its grouping window and asks for a flush when the window closes; events
 * arriving meanwhile only wait with it, so however many a storm brings, the channel gets
 * one message. Flushes of one channel run one at a time (a queue group), on pg-boss and
 * SQS alike, so two never send the same events.
 */
export async function holdForChannels(
  deps: NotificationDeps,
  message: WebhookEventMessage,
): Promise<number> {
  const { orgId, event, auditTarget } = message;
  const now = deps.clock.now();
  const heldAt = now.toISOString();
  const flushes: { channel: NotificationChannel; key: string; delay: number }[] = [];
  const subscribed = await deps.store.withOrg(orgId, async (repos) => {
    const channels = (await repos.notificationChannels.list()).filter((c) =>
      c.events.includes(event.type),
    );
    for (const c of channels) {
      const opens = (await repos.heldNotifications.list(c.id, 1)).length === 0;
      const id = deps.ids.newId('ntf');
      const fresh = await repos.heldNotifications.hold({
        id,
        orgId,
        channelId: c.id,
        eventId: event.id,
        eventType: event.type,
        data: { ...event.data, targetType: auditTarget.targetType, targetId: auditTarget.targetId },
        heldAt,
      });
      // A retried fan-out may have held the event and failed before asking for its flush.
      const key = fresh && opens ? `${c.id}:${id}` : !fresh ? `${c.id}:retry:${event.id}` : null;
      if (key === null) continue;
      const last = await repos.notificationDeliveries.lastDeliveredAt(c.id);
      flushes.push({ channel: c, key, delay: flushDelaySeconds(c.groupWindowSeconds, last, now) });
    }
    return channels.length;
  });
  for (const { channel, key, delay } of flushes)
    await scheduleFlush(deps, { orgId, channelId: channel.id }, key, delay);
  return subscribed;
}

function scheduleFlush(
  deps: Pick<NotificationDeps, 'queue' | 'config'>,
  message: NotificationFlushMessage,
  key: string,
  delaySeconds: number,
): Promise<string | null> {
  return deps.queue.send(notificationFlushesQueue, message, {
    idempotencyKey: key,
    group: message.channelId,
    delaySeconds,
    maxAttempts: deps.config.maxDeliveryAttempts,
  });
}

/** Sends one rendered message to one channel; what the receiver said, never a throw. */
export async function sendToChannel(
  deps: Pick<NotificationDeps, 'vault' | 'http' | 'mailer' | 'config'>,
  channel: NotificationChannel,
  message: RenderedMessage,
): Promise<{ delivered: boolean; error: string | null }> {
  try {
    if (channel.kind === 'email') {
      if (!deps.mailer) return { delivered: false, error: 'no mail server is configured' };
      await deps.mailer.send({
        to: channel.address!,
        subject: message.subject,
        text: message.text,
      });
      return { delivered: true, error: null };
    }
    const url = await deps.vault.open(
      channel.sealedUrl!,
      channelUrlContext(channel.orgId, channel.id),
    );
    const res = await deps.http.post(
      url,
      JSON.stringify(message.slack),
      { 'content-type': 'application/json', 'user-agent': 'selfdevop-notifications' },
      deps.config.deliveryTimeoutMs,
    );
    if (res.status !== null && res.status >= 200 && res.status < 300)
      return { delivered: true, error: null };
    // Slack's answer names the problem (`invalid_payload`, `no_service`); its status is enough here.
    return { delivered: false, error: res.error ?? `Slack answered HTTP ${res.status}` };
  } catch (e) {
    return { delivered: false, error: (e as Error).message };
  }
}

/** Records one attempt; like webhook deliveries, a failure to record is logged, never thrown. */
export async function recordNotificationDelivery(
  deps: Pick<NotificationDeps, 'store' | 'ids' | 'clock' | 'logger'>,
  orgId: string,
  attempt: Omit<NotificationDelivery, 'id' | 'orgId' | 'createdAt'>,
): Promise<void> {
  const delivery: NotificationDelivery = {
    id: deps.ids.newId('ndl'),
    orgId,
    ...attempt,
    createdAt: deps.clock.now().toISOString(),
  };
  try {
    await deps.store.withOrg(orgId, (repos) =>
      repos.notificationDeliveries.append(delivery, keptNotificationDeliveries),
    );
  } catch (e) {
    if (e instanceof NotFound) return;
    deps.logger.warn(
      { channelId: attempt.channelId, error: (e as Error).message },
      'notification delivery attempt not recorded',
    );
  }
}

/**
 * Sends everything a channel holds as one message. A failed send throws so the queue
 * retries with backoff, keeping the events held; the last attempt gives them up (recorded
 * as failed) so a dead receiver never makes the held table grow.
 */
export async function flushChannel(
  deps: NotificationDeps,
  message: NotificationFlushMessage,
  attempt: number,
): Promise<{ sent: number; delivered: boolean }> {
  const { orgId, channelId } = message;
  const found = await deps.store.withOrg(orgId, async (repos) => {
    const channel = (await repos.notificationChannels.list()).find((c) => c.id === channelId);
    if (!channel) return null;
    return { channel, held: await repos.heldNotifications.list(channelId, maxEventsPerMessage) };
  });
  if (!found || found.held.length === 0) return { sent: 0, delivered: false };
  const { channel, held } = found;
  const wait = settleSeconds(channel, held, deps.clock.now());
  if (wait > 0) {
    await scheduleFlush(deps, message, `${channelId}:settle:${held.at(-1)!.id}`, wait);
    return { sent: 0, delivered: false };
  }
  const rendered = renderMessage(held, deps.config.publicUrl);
  const res = await sendToChannel(deps, channel, rendered);
  await recordNotificationDelivery(deps, orgId, {
    channelId,
    eventType: held[0]!.eventType,
    events: held.length,
    firstEventId: held[0]!.eventId,
    attempt,
    delivered: res.delivered,
    error: res.error,
  });
  const log = { channelId, kind: channel.kind, events: held.length, attempt };
  const last = attempt >= deps.config.maxDeliveryAttempts;
  if (res.delivered || last) {
    await deps.store.withOrg(orgId, (repos) =>
      repos.heldNotifications.remove(held.map((h) => h.id)),
    );
  }
  if (res.delivered || last) {
    // Events that came while this message was sent (or beyond one message's worth) open
    // the next window: without this flush they would wait for the next event.
    const more = await deps.store.withOrg(orgId, (repos) =>
      repos.heldNotifications.list(channelId, 1),
    );
    if (more.length > 0)
      await scheduleFlush(
        deps,
        message,
        `${channelId}:${more[0]!.id}`,
        held.length === maxEventsPerMessage ? 0 : channel.groupWindowSeconds,
      );
  }
  if (res.delivered) {
    deps.logger.info(log, 'notification sent');
    return { sent: held.length, delivered: true };
  }
  if (last) {
    deps.logger.warn({ ...log, error: res.error }, 'notification given up after its last attempt');
    return { sent: held.length, delivered: false };
  }
  deps.logger.warn({ ...log, error: res.error }, 'notification not sent; the queue retries it');
  throw new Error(`notification channel ${channelId}: ${res.error}`);
}

/** Seconds to wait before sending `held`: 0 unless a storm is still arriving within its window. */
export function settleSeconds(
  channel: Pick<NotificationChannel, 'groupWindowSeconds'>,
  held: Pick<HeldNotification, 'heldAt'>[],
  now: Date,
): number {
  if (held.length === 0 || held.length >= maxEventsPerMessage) return 0;
  const windowLeft =
    (Date.parse(held[0]!.heldAt) + channel.groupWindowSeconds * 1000 - now.getTime()) / 1000;
  const sinceNewest = (now.getTime() - Date.parse(held.at(-1)!.heldAt)) / 1000;
  if (windowLeft <= 0 || sinceNewest >= stormSettleSeconds) return 0;
  return Math.ceil(Math.min(stormSettleSeconds, windowLeft));
}

export const handleNotificationFlush =
  (deps: NotificationDeps): MessageHandler<NotificationFlushMessage> =>
  async (m) => {
    await flushChannel(deps, m.payload, m.attempt);
  };
