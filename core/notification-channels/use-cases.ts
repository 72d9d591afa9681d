import { InvalidInput, NotFound, Unavailable } from '../errors.ts';
import type { NotificationChannel, NotificationDelivery, Page, PageRequest } from '../models.ts';
import { assertCan } from '../roles.ts';
import { isLoopbackLiteralUrl, isLoopbackOrLinkLocalUrl, isPrivateUrl } from '../schemas.ts';
import type { CreateNotificationChannelInput } from '../schemas.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { webhookEventTypes } from '../webhooks/events.ts';
import {
  channelUrlContext,
  recordNotificationDelivery,
  renderMessage,
  sendToChannel,
} from './notify.ts';

export type NotificationChannelView = Omit<NotificationChannel, 'sealedUrl'>;

const view = ({ sealedUrl: _sealed, ...rest }: NotificationChannel): NotificationChannelView =>
  rest;

/** Events within a minute go out as one message unless the channel says otherwise. */
export const defaultGroupWindowSeconds = 60;

/** The hosts Slack serves incoming webhooks from. */
const slackHosts = new Set(['hooks.slack.com', 'hooks.slack-gov.com']);

/**
 * A Slack channel's URL must be Slack's incoming webhook (`https://hooks.slack.com/services/…`):
 * any other URL belongs on a signed webhook. Tests' loopback sinks pass by the composition
 * root's test override only, as for webhooks.
 */
function checkSlackUrl(deps: CoreDeps, url: string): void {
  if (deps.config.allowLoopbackWebhooks && isLoopbackLiteralUrl(url)) return;
  const u = new URL(url);
  if (
    u.protocol !== 'https:' ||
    !slackHosts.has(u.hostname) ||
    !u.pathname.startsWith('/services/')
  )
    throw new InvalidInput(
      'url: must be a Slack incoming-webhook URL (https://hooks.slack.com/services/…); for any other receiver make a webhook (/api/webhooks)',
      { field: 'url' },
    );
  if (isLoopbackOrLinkLocalUrl(url) || (!deps.config.allowPrivateWebhooks && isPrivateUrl(url)))
    throw new InvalidInput('url: must not point at a loopback, link-local or private address', {
      field: 'url',
    });
}

/** The URL shown instead of the secret one: its origin and the last four characters. */
export const maskSlackUrl = (url: string): string => {
  const u = new URL(url);
  return `${u.origin}/services/…${u.pathname.slice(-4)}`;
};

/** Creates a channel; a Slack URL is sealed and never shown again (it lets anyone post). */
export async function createNotificationChannel(
  deps: CoreDeps,
  principal: Principal,
  input: CreateNotificationChannelInput,
  ctx: RequestContext,
): Promise<NotificationChannelView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-notifications');
  const id = deps.ids.newId('nch');
  let target: { address: string | null; sealedUrl: string | null; target: string };
  if (input.kind === 'slack') {
    checkSlackUrl(deps, input.url);
    // A name is judged by what it resolves to, as for webhooks.
    const refused = await deps.webhookTargets?.refusal?.(input.url);
    if (refused) throw new InvalidInput(`url: refused: ${refused}`, { field: 'url' });
    target = {
      address: null,
      sealedUrl: await deps.vault.seal(input.url, channelUrlContext(p.orgId, id)),
      target: maskSlackUrl(input.url),
    };
  } else {
    if (!deps.mailer)
      throw new InvalidInput(
        'kind: email needs a mail server and none is configured (self-hosted: set SMTP_URL and MAIL_FROM)',
        { field: 'kind' },
      );
    target = { address: input.address, sealedUrl: null, target: input.address };
  }
  const channel: NotificationChannel = {
    id,
    orgId: p.orgId,
    kind: input.kind,
    name: input.name,
    ...target,
    events: [...new Set(input.events ?? webhookEventTypes)],
    groupWindowSeconds: input.groupWindowSeconds ?? defaultGroupWindowSeconds,
    createdAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.notificationChannels.insert(channel);
    await recordAudit(deps, repos, p, ctx, {
      action: 'notification_channel.created',
      targetType: 'notification_channel',
      targetId: id,
      data: { kind: channel.kind, name: channel.name, events: channel.events },
    });
  });
  return view(channel);
}

export async function listNotificationChannels(
  deps: CoreDeps,
  principal: Principal,
): Promise<{ items: NotificationChannelView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-notifications');
  const channels = await deps.store.withOrg(p.orgId, (repos) => repos.notificationChannels.list());
  return { items: channels.map(view) };
}

export async function deleteNotificationChannel(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-notifications');
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.notificationChannels.delete(id)))
      throw new NotFound('notification_channel', id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'notification_channel.deleted',
      targetType: 'notification_channel',
      targetId: id,
    });
  });
}

export interface NotificationTestResult {
  delivered: boolean;
  /** Why not (Slack's status, a refused address, the mail server's answer), or null. */
  error: string | null;
}

/**
 * Sends a test message now and answers what came of it, so the owner sees a wrong URL or
 * address at once rather than at the next failed deploy. Not queued: a person is waiting.
 */
export async function testNotificationChannel(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<NotificationTestResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-notifications');
  const channel = await deps.store.withOrg(p.orgId, async (repos) =>
    (await repos.notificationChannels.list()).find((c) => c.id === id),
  );
  if (!channel) throw new NotFound('notification_channel', id);
  const http = deps.webhookTargets;
  if (!http) throw new Unavailable('notification_test', 'this process cannot send notifications');
  const eventId = deps.ids.newId('evt');
  const rendered = renderMessage(
    [{ eventId, eventType: 'notification.test', data: {} }],
    deps.config.publicUrl,
  );
  const res = await sendToChannel(
    {
      vault: deps.vault,
      http,
      mailer: deps.mailer,
      config: { deliveryTimeoutMs: 10_000, maxDeliveryAttempts: 1 },
    },
    channel,
    rendered,
  );
  await recordNotificationDelivery(deps, p.orgId, {
    channelId: id,
    eventType: 'notification.test',
    events: 1,
    firstEventId: eventId,
    attempt: 1,
    delivered: res.delivered,
    error: res.error,
  });
  await deps.store.withOrg(p.orgId, (repos) =>
    recordAudit(deps, repos, p, ctx, {
      action: 'notification_channel.tested',
      targetType: 'notification_channel',
      targetId: id,
      // Not the error: it may name the receiver, and viewers read the audit trail.
      data: { delivered: res.delivered },
    }),
  );
  return res;
}

/** A channel's recent send attempts (the newest 100 are kept), oldest first. */
export async function listNotificationDeliveries(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  page: PageRequest,
): Promise<Page<NotificationDelivery>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-notifications');
  return deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.notificationChannels.list()).some((c) => c.id === id))
      throw new NotFound('notification_channel', id);
    return repos.notificationDeliveries.list(id, page);
  });
}
