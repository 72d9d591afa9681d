import type {
  HeldNotification,
  NotificationChannel,
  NotificationDelivery,
} from '../../../core/models.ts';
import type {
  HeldNotificationRepo,
  NotificationChannelRepo,
  NotificationDeliveryRepo,
} from '../../../core/ports.ts';
import { byIdAsc, clone } from './overlay.ts';
import type { TenantView } from './tenant.ts';

export const memoryNotificationChannelRepo = (t: TenantView): NotificationChannelRepo => ({
  insert: async (c) => t.insert('notificationChannels', c),
  list: async () =>
    t
      .mine('notificationChannels')
      .sort(byIdAsc)
      .map((r) => clone(r) as unknown as NotificationChannel),
  delete: async (id) => {
    if (!t.getOwn('notificationChannels', id)) return false;
    t.view.delete('notificationChannels', id);
    // As the SQL foreign keys' on delete cascade: held events and deliveries go with it.
    for (const table of ['heldNotifications', 'notificationDeliveries'] as const)
      for (const r of t.mine(table).filter((r) => r.channelId === id))
        t.view.delete(table, String(r.id));
    return true;
  },
});

export const memoryHeldNotificationRepo = (t: TenantView): HeldNotificationRepo => ({
  hold: async (h) => {
    const held = t
      .mine('heldNotifications')
      .some((r) => r.channelId === h.channelId && r.eventId === h.eventId);
    if (held) return false;
    t.insert('heldNotifications', h);
    return true;
  },
  list: async (channelId, limit) =>
    t
      .mine('heldNotifications')
      .filter((r) => r.channelId === channelId)
      .sort(byIdAsc)
      .slice(0, limit)
      .map((r) => clone(r) as unknown as HeldNotification),
  remove: async (ids) => {
    for (const id of ids)
      if (t.getOwn('heldNotifications', id)) t.view.delete('heldNotifications', id);
  },
});

export const memoryNotificationDeliveryRepo = (t: TenantView): NotificationDeliveryRepo => ({
  append: async (d, keep) => {
    t.insert('notificationDeliveries', d);
    const older = t
      .mine('notificationDeliveries')
      .filter((r) => r.channelId === d.channelId)
      .sort(byIdAsc)
      .slice(0, -Math.max(keep, 1));
    for (const r of older) t.view.delete('notificationDeliveries', String(r.id));
  },
  list: async (channelId, page) =>
    t.page<NotificationDelivery>(
      'notificationDeliveries',
      t.mine('notificationDeliveries').filter((r) => r.channelId === channelId),
      page,
    ),
  lastDeliveredAt: async (channelId) => {
    const sent = t
      .mine('notificationDeliveries')
      .filter(
        (r) => r.channelId === channelId && r.delivered && r.eventType !== 'notification.test',
      )
      .sort(byIdAsc);
    return sent.length ? String(sent[sent.length - 1]!.createdAt) : null;
  },
});
