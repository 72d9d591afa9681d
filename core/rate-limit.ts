import type { AuthGuardRepo, Clock } from './ports.ts';

/**
 * Fixed-window counters per key, held in memory. Enough for one API process; the cloud
 * mode's many Lambda instances each hold their own window, which still caps a brute
 * force per instance, and API Gateway throttling bounds the rest.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly clock: Clock;

  constructor(limit: number, windowMs: number, clock: Clock) {
    this.limit = limit;
    this.windowMs = windowMs;
    this.clock = clock;
  }

  /** Counts one attempt; returns seconds to wait when over the limit, else 0. */
  hit(key: string): number {
    const now = this.clock.now().getTime();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 100_000) this.sweep(now);
    }
    w.count++;
    if (w.count <= this.limit) return 0;
    return Math.max(1, Math.ceil((w.start + this.windowMs - now) / 1000));
  }

  reset(key: string): void {
    this.windows.delete(key);
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
  }
}

/** Counts attempts under a key; hit answers seconds to wait when over the limit, else 0. */
export interface Limiter {
  hit(key: string): Promise<number>;
  reset(key: string): Promise<void>;
}

/**
 * Fixed-window counters in the Store's shared storage (PostgreSQL when self-hosted), so
 * that every API process counts the same attempts.
 */
export class AttemptLimiter implements Limiter {
  private readonly guards: AuthGuardRepo;
  private readonly name: string;
  private readonly limit: number;
  private readonly windowMs: number;
  private readonly clock: Clock;

  constructor(
    guards: AuthGuardRepo,
    name: string,
    policy: { limit: number; windowMs: number },
    clock: Clock,
  ) {
    this.guards = guards;
    this.name = name;
    this.limit = policy.limit;
    this.windowMs = policy.windowMs;
    this.clock = clock;
  }

  async hit(key: string): Promise<number> {
    const now = this.clock.now();
    const w = await this.guards.countAttempt(`${this.name}:${key}`, this.windowMs, now);
    if (w.count <= this.limit) return 0;
    return Math.max(1, Math.ceil((w.windowStart.getTime() + this.windowMs - now.getTime()) / 1000));
  }

  async reset(key: string): Promise<void> {
    await this.guards.clearAttempts(`${this.name}:${key}`);
  }
}
