import { InvalidInput } from '../../core/errors.ts';
import type { SendOptions } from '../../core/ports.ts';

// pg-boss refuses other characters in queue and schedule names; every EventQueue and
// Scheduler applies the same rule so a name that works in tests works in production.
const namePattern = /^[\w.\-/]+$/;

/** Suffix of the queue that holds messages given up on (`deploy` → `deploy__dlq`). */
export const deadLetterSuffix = '__dlq';

/** Throws InvalidInput unless `name` is a usable queue or schedule name. */
export function assertName(what: 'queue' | 'schedule', name: string): void {
  if (typeof name !== 'string' || !namePattern.test(name)) {
    throw new InvalidInput(
      `${what} name ${JSON.stringify(name)} may contain only letters, digits, _ . - and /`,
    );
  }
}

/** Throws InvalidInput when send options are out of range. */
export function assertSendOptions(options: SendOptions | undefined): void {
  if (!options) return;
  const { maxAttempts, delaySeconds, idempotencyKey, group } = options;
  if (maxAttempts !== undefined && (!Number.isInteger(maxAttempts) || maxAttempts < 1)) {
    throw new InvalidInput(`maxAttempts must be an integer of at least 1, got ${maxAttempts}`);
  }
  if (delaySeconds !== undefined && (!Number.isFinite(delaySeconds) || delaySeconds < 0)) {
    throw new InvalidInput(`delaySeconds must be a number of at least 0, got ${delaySeconds}`);
  }
  if (idempotencyKey !== undefined && idempotencyKey.length === 0) {
    throw new InvalidInput('idempotencyKey must not be empty');
  }
  if (group !== undefined && group.length === 0) {
    throw new InvalidInput('group must not be empty');
  }
}
