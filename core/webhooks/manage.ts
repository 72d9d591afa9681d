import { InvalidInput, NotFound, Unavailable } from '../errors.ts';
import { isLoopbackLiteralUrl, isLoopbackOrLinkLocalUrl, isPrivateUrl } from '../schemas.ts';
import type { Page, PageRequest, Webhook, WebhookDelivery } from '../models.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { deliveryHeaders, recordDelivery, webhookSecretContext } from './deliver.ts';
import { webhookEventTypes, type WebhookEventType } from './events.ts';

export type WebhookView = Omit<Webhook, 'sealedSecret'>;

const view = ({ sealedSecret: _sealed, ...rest }: Webhook): WebhookView => rest;

/** Creates a webhook; its signing secret is returned once and stored sealed. */
export async function createWebhook(
  deps: CoreDeps,
  principal: Principal,
  input: { url: string; events?: WebhookEventType[] },
  ctx: RequestContext,
): Promise<WebhookView & { secret: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-webhooks');
  // Only a test's system accepts its loopback receiver (a composition root's test override).
  const testReceiver = !!deps.config.allowLoopbackWebhooks && isLoopbackLiteralUrl(input.url);
  if (!testReceiver && isLoopbackOrLinkLocalUrl(input.url)) {
    throw new InvalidInput('url: must not point at a loopback or link-local address', {
      field: 'url',
    });
  }
  if (!testReceiver && !deps.config.allowPrivateWebhooks && isPrivateUrl(input.url)) {
    throw new InvalidInput('url: must not point at a loopback, link-local or private address', {
      field: 'url',
    });
  }
  // A name is judged by what it resolves to: `caddy:2019` is the edge's admin API.
  const refused = await deps.webhookTargets?.refusal?.(input.url);
  if (refused) throw new InvalidInput(`url: refused: ${refused}`, { field: 'url' });
  const id = deps.ids.newId('whk');
  const secret = `whsec_${deps.ids.newSecret(32)}`;
  const hook: Webhook = {
    id,
    orgId: p.orgId,
    url: input.url,
    sealedSecret: await deps.vault.seal(secret, webhookSecretContext(p.orgId, id)),
    events: [...new Set(input.events ?? webhookEventTypes)],
    createdAt: deps.clock.now().toISOString(),
  };
  await deps.store.withOrg(p.orgId, async (repos) => {
    await repos.webhooks.insert(hook);
    await recordAudit(deps, repos, p, ctx, {
      action: 'webhook.created',
      targetType: 'webhook',
      targetId: id,
      data: { url: hook.url, events: hook.events },
    });
  });
  return { ...view(hook), secret };
}

export async function listWebhooks(
  deps: CoreDeps,
  principal: Principal,
): Promise<{ items: WebhookView[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-webhooks');
  const hooks = await deps.store.withOrg(p.orgId, (repos) => repos.webhooks.list());
  return { items: hooks.map(view) };
}

export async function deleteWebhook(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-webhooks');
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.webhooks.delete(id))) throw new NotFound('webhook', id);
    await recordAudit(deps, repos, p, ctx, {
      action: 'webhook.deleted',
      targetType: 'webhook',
      targetId: id,
    });
  });
}

/** The type of the event a test sends: never a subscribable event, so no receiver mistakes it. */
export const webhookTestEventType = 'webhook.test';

/** A test waits at most this long for the receiver, like a queued delivery. */
const testTimeoutMs = 10_000;

export interface WebhookTestResult {
  /** True when the receiver answered 2xx. */
  delivered: boolean;
  /** The receiver's HTTP status, or null when it was never reached. */
  status: number | null;
  /** Why it was not reached (refused address, DNS, timeout, connection), or null. */
  error: string | null;
  eventId: string;
}

/**
 * Sends one signed `webhook.test` event to a webhook now and answers what its receiver
 * said, so its owner can check the URL and their signature check without waiting for a
 * deploy. Sent once, not queued: a person is waiting, and a retry would answer too late
 * to help them. The sender refuses the same addresses it refuses for any delivery.
 */
export async function testWebhook(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  ctx: RequestContext,
): Promise<WebhookTestResult> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-webhooks');
  const sender = deps.webhookTargets;
  const hook = await deps.store.withOrg(p.orgId, async (repos) =>
    (await repos.webhooks.list()).find((h) => h.id === id),
  );
  if (!hook) throw new NotFound('webhook', id);
  if (!sender) throw new Unavailable('webhook_test', 'this process cannot send webhooks');
  const secret = await deps.vault.open(hook.sealedSecret, webhookSecretContext(p.orgId, hook.id));
  const eventId = deps.ids.newId('evt');
  const body = JSON.stringify({
    id: eventId,
    type: webhookTestEventType,
    createdAt: deps.clock.now().toISOString(),
    data: { webhookId: hook.id, message: 'a test event from selfdevop' },
  });
  const res = await sender.post(
    hook.url,
    body,
    deliveryHeaders(secret, deps.clock, body, {
      type: webhookTestEventType,
      deliveryId: `${hook.id}:${eventId}`,
      attempt: 1,
    }),
    testTimeoutMs,
  );
  const delivered = res.status !== null && res.status >= 200 && res.status < 300;
  await recordDelivery(deps, p.orgId, {
    webhookId: hook.id,
    eventId,
    eventType: webhookTestEventType,
    attempt: 1,
    delivered,
    responseStatus: res.status,
    error: res.error,
  });
  await deps.store.withOrg(p.orgId, (repos) =>
    recordAudit(deps, repos, p, ctx, {
      action: 'webhook.tested',
      targetType: 'webhook',
      targetId: hook.id,
      // Not the error: its text may name the receiver's address, and viewers read the audit
      // trail (the deliveries list, for those who manage webhooks, has it).
      data: { eventId, delivered, status: res.status },
    }),
  );
  return { delivered, status: res.status, error: res.error, eventId };
}

/** A webhook's recent delivery attempts (the newest 100 are kept), oldest first. */
export async function listWebhookDeliveries(
  deps: CoreDeps,
  principal: Principal,
  id: string,
  page: PageRequest,
): Promise<Page<WebhookDelivery>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-webhooks');
  return deps.store.withOrg(p.orgId, async (repos) => {
    // Reads before a write run on their own; both see the same committed webhooks.
    if (!(await repos.webhooks.list()).some((h) => h.id === id)) throw new NotFound('webhook', id);
    return repos.webhookDeliveries.list(id, page);
  });
}
