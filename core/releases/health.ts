import type { HealthPolicy } from '../models.ts';
import type { Clock, HealthProbe, HealthProbeResult } from '../ports.ts';

export interface HealthAttempt extends HealthProbeResult {
  attempt: number;
  /** Consecutive successes so far, this one included. */
  streak: number;
}

export interface HealthOutcome {
  healthy: boolean;
  /** Set when the slice ended before the deadline with no verdict: probe again later. */
  pending?: true;
  attempts: number;
  /** What the last failed probe saw: `500` or the error text; null when none failed. */
  lastError: string | null;
}

/** How a failed probe reads in a release's error: the status, else the error. */
export function describeProbe(r: HealthProbeResult): string {
  return r.status !== null ? String(r.status) : (r.error ?? 'no answer');
}

/**
 * Probes `url` until `policy.successes` consecutive probes pass or `policy.deadlineMs`
 * has passed (Kamal's healthcheck poller): no fixed sleep, the candidate gets traffic as
 * soon as it has proven itself. Each probe's timeout is cut to the time left.
 *
 * With `sliceMs`, it gives up the wait after that long (`pending`), unless a streak of
 * successes is under way, so a caller can free its worker and come back; `deadlineAt`
 * (epoch ms) then carries the deadline over from the first slice.
 */
export async function waitUntilHealthy({
  probe,
  clock,
  url,
  policy,
  signal,
  onAttempt,
  deadlineAt,
  sliceMs,
}: {
  probe: HealthProbe;
  clock: Clock;
  url: string;
  policy: HealthPolicy;
  signal?: AbortSignal;
  onAttempt?: (a: HealthAttempt) => void | Promise<void>;
  deadlineAt?: number;
  sliceMs?: number;
}): Promise<HealthOutcome> {
  const started = clock.now().getTime();
  const deadline = deadlineAt ?? started + policy.deadlineMs;
  const sliceEnd = sliceMs === undefined ? Infinity : started + sliceMs;
  const needed = Math.max(1, policy.successes);
  // Bounds the loop even when time does not move (a manual clock, a zero interval).
  const maxAttempts = Math.ceil(policy.deadlineMs / Math.max(1, policy.intervalMs)) + needed;
  let attempts = 0;
  let streak = 0;
  let lastError: string | null = null;

  while (attempts < maxAttempts) {
    signal?.throwIfAborted();
    const left = deadline - clock.now().getTime();
    if (left <= 0) break;
    attempts++;
    const timeoutMs = Math.min(policy.timeoutMs, left);
    const r = await probe.check(url, timeoutMs);
    streak = r.ok ? streak + 1 : 0;
    // A probe whose timeout was cut to the last few ms says only that time ran out; what the
    // app answered before (a 404, a 500) is what an engineer needs in the release's error.
    const cutShort = timeoutMs < policy.timeoutMs && r.status === null;
    if (!r.ok && !(cutShort && lastError !== null)) lastError = describeProbe(r);
    await onAttempt?.({ ...r, attempt: attempts, streak });
    if (streak >= needed) return { healthy: true, attempts, lastError };
    const now = clock.now().getTime();
    const remaining = deadline - now;
    if (remaining <= 0) break;
    if (streak === 0 && now >= sliceEnd)
      return { healthy: false, pending: true, attempts, lastError };
    if (policy.intervalMs > 0) await clock.sleep(Math.min(policy.intervalMs, remaining), signal);
  }
  return { healthy: false, attempts, lastError: lastError ?? 'not enough consecutive successes' };
}
