import * as s from '../../../core/schemas.ts';
import {
  createWebhook,
  deleteWebhook,
  listWebhookDeliveries,
  listWebhooks,
  testWebhook,
} from '../../../core/webhooks/manage.ts';
import { route } from '../route.ts';

export const webhookRoutes = [
  route({
    method: 'post',
    path: '/api/webhooks',
    summary: 'Subscribe a URL to release and domain events; the signing secret is shown once',
    tag: 'webhooks',
    auth: true,
    permission: 'manage-webhooks',
    body: s.createWebhookInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createWebhook(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/webhooks',
    summary: "The org's webhooks (never their secrets)",
    tag: 'webhooks',
    auth: true,
    permission: 'manage-webhooks',
    status: 200,
    handle: ({ deps, principal }) => listWebhooks(deps, principal),
  }),
  route({
    method: 'delete',
    path: '/api/webhooks/{id}',
    summary: 'Delete a webhook; deliveries still queued for it are dropped',
    tag: 'webhooks',
    auth: true,
    permission: 'manage-webhooks',
    status: 204,
    handle: ({ deps, principal, params, ctx }) => deleteWebhook(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/webhooks/{id}/test',
    summary:
      'Send a signed webhook.test event now and answer what the receiver said (delivered, status, error)',
    tag: 'webhooks',
    auth: true,
    permission: 'manage-webhooks',
    status: 200,
    handle: ({ deps, principal, params, ctx }) => testWebhook(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/webhooks/{id}/deliveries',
    summary:
      "A webhook's recent delivery attempts, test events included: event, attempt, delivered, the receiver's status or the error (the newest 100 are kept)",
    tag: 'webhooks',
    auth: true,
    permission: 'manage-webhooks',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      listWebhookDeliveries(deps, principal, params.id!, query),
  }),
];
