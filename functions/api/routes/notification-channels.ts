import * as s from '../../../core/schemas.ts';
import {
  createNotificationChannel,
  deleteNotificationChannel,
  listNotificationChannels,
  listNotificationDeliveries,
  testNotificationChannel,
} from '../../../core/notification-channels/use-cases.ts';
import { route } from '../route.ts';

export const notificationChannelRoutes = [
  route({
    method: 'post',
    path: '/api/notification-channels',
    summary:
      'Add a Slack (incoming webhook URL, stored sealed and never shown again) or e-mail channel with an event filter and a grouping window',
    tag: 'notification-channels',
    auth: true,
    permission: 'manage-notifications',
    body: s.createNotificationChannelInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) =>
      createNotificationChannel(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/notification-channels',
    summary: "The org's notification channels (a Slack URL is shown masked)",
    tag: 'notification-channels',
    auth: true,
    permission: 'manage-notifications',
    status: 200,
    handle: ({ deps, principal }) => listNotificationChannels(deps, principal),
  }),
  route({
    method: 'delete',
    path: '/api/notification-channels/{id}',
    summary: 'Delete a channel; events it still holds are dropped',
    tag: 'notification-channels',
    auth: true,
    permission: 'manage-notifications',
    status: 204,
    handle: ({ deps, principal, params, ctx }) =>
      deleteNotificationChannel(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/notification-channels/{id}/test',
    summary: 'Send a test message now and answer what came of it (delivered, error)',
    tag: 'notification-channels',
    auth: true,
    permission: 'manage-notifications',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      testNotificationChannel(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/notification-channels/{id}/deliveries',
    summary:
      "A channel's recent send attempts, tests included: event type, events grouped, attempt, delivered, error (the newest 100 are kept)",
    tag: 'notification-channels',
    auth: true,
    permission: 'manage-notifications',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      listNotificationDeliveries(deps, principal, params.id!, query),
  }),
];
