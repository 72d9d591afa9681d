import { NotFound } from '../errors.ts';
import type { Webhook, WebhookDelivery } from '../models.ts';
import type {
  Clock,
  EventQueue,
  IdGenerator,
  HttpSender,
  KeyVault,
  Logger,
  MessageHandler,
  Store,
} from '../ports.ts';
import { webhookDeliveriesQueue, type WebhookEvent, type WebhookEventMessage } from './events.ts';
import { signPayload, signatureHeader } from './signature.ts';

export interface WebhookDeps {
  store: Store;
  queue: EventQueue;
  vault: KeyVault;
  http: HttpSender;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  config: { deliveryTimeoutMs: number; maxDeliveryAttempts: number };
  /**
   * Hands a committed event on to the org's notification channels (Slack, e-mail): they
   * share the webhooks' events and their commit check, so it runs here, after it.
   */
  notify?(message: WebhookEventMessage): Promise<void>;
}

export interface WebhookDeliveryMessage {
  orgId: string;
  webhookId: string;
  event: WebhookEvent;
}

/** The AAD a webhook's signing secret is sealed under. */
export const webhookSecretContext = (orgId: string, webhookId: string) =>
  `${orgId}:webhook:${webhookId}`;

/** Deliveries of an event whose audit row has not committed yet are retried this often, then dropped. */
const unconfirmedAttempts = 3;

/**
 * One event → one delivery message per subscribed webhook. The event was published from
 * inside the transaction that wrote its audit row; if that transaction rolled back, the
 * row never appears and nothing is sent.
 */
export async function fanOutEvent(
  deps: WebhookDeps,
  message: WebhookEventMessage,
  attempt: number,
): Promise<number> {
  const { orgId, event, auditTarget } = message;
  const { confirmed, hooks } = await deps.store.withOrg(orgId, async (repos) => {
    const rows = await repos.audit.list(
      { limit: 200 },
      { action: event.type, targetId: auditTarget.targetId ?? undefined },
    );
    return {
      confirmed: rows.items.some((r) => r.id === event.id),
      hooks: await repos.webhooks.list(),
    };
  });
  if (!confirmed) {
    if (attempt < unconfirmedAttempts)
      throw new Error(`audit event ${event.id} is not committed yet`);
    deps.logger.warn(
      { eventId: event.id, type: event.type },
      'event never committed; not delivered',
    );
    return 0;
  }
  await deps.notify?.(message);
  const subscribed = hooks.filter((h) => h.events.includes(event.type));
  for (const hook of subscribed) {
    const delivery: WebhookDeliveryMessage = { orgId, webhookId: hook.id, event };
    await deps.queue.send(webhookDeliveriesQueue, delivery, {
      idempotencyKey: `${hook.id}:${event.id}`,
      maxAttempts: deps.config.maxDeliveryAttempts,
    });
  }
  return subscribed.length;
}

/** Attempts kept per webhook: enough to see a receiver's recent history, never a growing table. */
export const keptDeliveries = 100;

/**
 * Records one attempt. The record is the delivery's history, not the delivery: a failure to
 * write it is logged, never thrown, or the queue would send the receiver the event again.
 * A webhook deleted while its delivery was in flight has no history to add to.
 */
export async function recordDelivery(
  deps: { store: Store; ids: IdGenerator; clock: Clock; logger: Logger },
  orgId: string,
  attempt: Omit<WebhookDelivery, 'id' | 'orgId' | 'createdAt'>,
): Promise<void> {
  const delivery: WebhookDelivery = {
    id: deps.ids.newId('dlv'),
    orgId,
    ...attempt,
    createdAt: deps.clock.now().toISOString(),
  };
  try {
    await deps.store.withOrg(orgId, (repos) =>
      repos.webhookDeliveries.append(delivery, keptDeliveries),
    );
  } catch (e) {
    if (e instanceof NotFound) return;
    deps.logger.warn(
      { webhookId: attempt.webhookId, eventId: attempt.eventId, error: (e as Error).message },
      'webhook delivery attempt not recorded',
    );
  }
}

/**
 * The headers of one delivery, signed over its body; a test event carries the same ones,
 * so a receiver's signature check is exercised by it too.
 */
export function deliveryHeaders(
  secret: string,
  clock: Clock,
  body: string,
  delivery: { type: string; deliveryId: string; attempt: number },
): Record<string, string> {
  const t = Math.floor(clock.now().getTime() / 1000);
  return {
    'content-type': 'application/json',
    'user-agent': 'selfdevop-webhooks',
    'x-selfdevop-event': delivery.type,
    'x-selfdevop-delivery': delivery.deliveryId,
    'x-selfdevop-attempt': String(delivery.attempt),
    [signatureHeader]: signPayload(secret, t, body),
  };
}

/** POSTs one event to one webhook, signed; a non-2xx answer throws so the queue retries with backoff. */
export async function deliverWebhook(
  deps: WebhookDeps,
  message: WebhookDeliveryMessage,
  attempt: number,
): Promise<{ delivered: boolean; status: number | null }> {
  const hook: Webhook | undefined = await deps.store.withOrg(message.orgId, async (repos) =>
    (await repos.webhooks.list()).find((h) => h.id === message.webhookId),
  );
  if (!hook) return { delivered: false, status: null }; // deleted since: nothing to do
  const secret = await deps.vault.open(
    hook.sealedSecret,
    webhookSecretContext(hook.orgId, hook.id),
  );
  const body = JSON.stringify(message.event);
  const res = await deps.http.post(
    hook.url,
    body,
    deliveryHeaders(secret, deps.clock, body, {
      type: message.event.type,
      deliveryId: `${hook.id}:${message.event.id}`,
      attempt,
    }),
    deps.config.deliveryTimeoutMs,
  );
  const delivered = res.status !== null && res.status >= 200 && res.status < 300;
  await recordDelivery(deps, message.orgId, {
    webhookId: hook.id,
    eventId: message.event.id,
    eventType: message.event.type,
    attempt,
    delivered,
    responseStatus: res.status,
    error: res.error,
  });
  const log = {
    webhookId: hook.id,
    eventId: message.event.id,
    type: message.event.type,
    attempt,
    status: res.status,
  };
  if (delivered) {
    deps.logger.info(log, 'webhook delivered');
    return { delivered: true, status: res.status };
  }
  deps.logger.warn({ ...log, error: res.error }, 'webhook delivery failed; the queue retries it');
  throw new Error(`webhook ${hook.id} answered ${res.status ?? res.error}`);
}

export const handleWebhookEvent =
  (deps: WebhookDeps): MessageHandler<WebhookEventMessage> =>
  async (m) => {
    await fanOutEvent(deps, m.payload, m.attempt);
  };

export const handleWebhookDelivery =
  (deps: WebhookDeps): MessageHandler<WebhookDeliveryMessage> =>
  async (m) => {
    await deliverWebhook(deps, m.payload, m.attempt);
  };
