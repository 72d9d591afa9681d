import { InvalidInput, NotFound } from '../errors.ts';
import { isLoopbackLiteralUrl, isLoopbackOrLinkLocalUrl, isPrivateUrl } from '../schemas.ts';
import type { Webhook } from '../models.ts';
import { assertCan } from '../roles.ts';
import {
  recordAudit,
  requireOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';
import { webhookSecretContext } from './deliver.ts';
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
