import type { Clock } from '../ports.ts';

/**
 * Protects the CA's rate limits under on-demand TLS. Caddy asks before every issuance
 * attempt, so gating the ask gates the orders: a host without a certificate yet gets its
 * first ask at once (and any ask within 2 s of it: one attempt), then waits `baseBackoffSeconds · 2^k` between asks, and at most
 * `perHostPerHour` asks an hour. A host that is `active` always passes (renewals).
 * State is per process and bounded to `maxHosts` hosts (oldest forgotten first).
 */
const burstMs = 2_000;

export class AskGate {
  readonly #clock: Clock;
  readonly #perHour: number;
  readonly #baseMs: number;
  readonly #maxHosts: number;
  readonly #hosts = new Map<string, { asks: number[]; nextAt: number }>();

  constructor(
    clock: Clock,
    options: { perHostPerHour: number; baseBackoffSeconds: number; maxHosts?: number },
  ) {
    this.#clock = clock;
    this.#perHour = options.perHostPerHour;
    this.#baseMs = options.baseBackoffSeconds * 1000;
    this.#maxHosts = options.maxHosts ?? 50_000;
  }

  /** True when Caddy may try to obtain a certificate for `hostname` now; records the attempt. */
  allow(hostname: string, active: boolean): boolean {
    if (active) return true;
    const now = this.#clock.now().getTime();
    const state = this.#hosts.get(hostname) ?? { asks: [], nextAt: 0 };
    // Caddy may ask more than once for one attempt (handshake, then the order itself), within
    // milliseconds; anything later is a new attempt and counts.
    const last = state.asks.at(-1);
    if (last !== undefined && now - last < burstMs) return true;
    state.asks = state.asks.filter((t) => t > now - 3_600_000);
    if (now < state.nextAt || state.asks.length >= this.#perHour) {
      this.#remember(hostname, state);
      return false;
    }
    state.asks.push(now);
    state.nextAt = now + this.#baseMs * 2 ** (state.asks.length - 1);
    this.#remember(hostname, state);
    return true;
  }

  /** Forgets a host (its domain was deleted or re-verified): its next ask passes at once. */
  reset(hostname: string): void {
    this.#hosts.delete(hostname);
  }

  #remember(hostname: string, state: { asks: number[]; nextAt: number }): void {
    this.#hosts.delete(hostname);
    if (this.#hosts.size >= this.#maxHosts) this.#hosts.delete(this.#hosts.keys().next().value!);
    this.#hosts.set(hostname, state);
  }
}
