import type { AuditEvent } from '../models.ts';
import type { EventQueue } from '../ports.ts';

/** The events an org can subscribe webhooks to (API.md); everything else stays in the audit trail. */
export const webhookEventTypes = [
  'release.started',
  'release.migration_succeeded',
  'release.failed',
  'release.completed',
  'release.rolled_back',
  'domain.dns_verified',
  'domain.cert_active',
  'member.added',
  'member.removed',
  'member.role_changed',
  'invite.created',
  'invite.revoked',
  'data_service.created',
  'data_service.ready',
  'data_service.failed',
  'data_service.deleted',
  'alert.firing',
  'alert.resolved',
  'data_service.restored',
  'data_service.restore_failed',
  'backup.completed',
  'backup.failed',
  'drill.passed',
  'drill.failed',
  'replica.crash_looping',
  'node.lost',
  'node.recovered',
  'node.deleted',
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

export const isWebhookEventType = (action: string): action is WebhookEventType =>
  (webhookEventTypes as readonly string[]).includes(action);

/** Queue of events to fan out to an org's webhooks, and queue of single deliveries. */
export const webhookEventsQueue = 'webhook-events';
export const webhookDeliveriesQueue = 'webhook-deliveries';

/** The body POSTed to a webhook: `{id, type, createdAt, data}`. */
export interface WebhookEvent {
  id: string;
  type: WebhookEventType;
  createdAt: string;
  data: Record<string, unknown>;
}

export interface WebhookEventMessage {
  orgId: string;
  event: WebhookEvent;
  /** The audit row the event came from, checked before delivery (see fanOutEvent). */
  auditTarget: { targetType: string; targetId: string | null };
}

/** Hands an audit event that is also a webhook event to the queue; others are ignored. */
export interface EventPublisher {
  publish(event: AuditEvent): Promise<void>;
}

/**
 * Publishes through the queue, keyed by the event id so a retried step that writes the
 * same audit row again does not notify twice.
 */
export function queueEventPublisher(queue: EventQueue): EventPublisher {
  return {
    async publish(e) {
      if (!isWebhookEventType(e.action)) return;
      const message: WebhookEventMessage = {
        orgId: e.orgId,
        event: { id: e.id, type: e.action, createdAt: e.createdAt, data: e.data },
        auditTarget: { targetType: e.targetType, targetId: e.targetId },
      };
      await queue.send(webhookEventsQueue, message, { idempotencyKey: e.id, maxAttempts: 5 });
    },
  };
}
