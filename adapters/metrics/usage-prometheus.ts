import { renderUsage } from '../../core/stats/render.ts';
import type { UsageSink, UsageSnapshot } from '../../core/ports.ts';

/**
 * Keeps the newest usage snapshot for Prometheus to scrape. Each snapshot replaces the
 * last whole, so a replica that is gone stops being exported; one older than `maxAgeMs`
 * (a collector that stopped) is not served at all, so a chart shows a gap, not a flat line
 * of old figures.
 */
export class PrometheusUsageSink implements UsageSink {
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #last: { at: number; text: string } | null = null;

  constructor(options: { maxAgeMs: number; now?: () => number }) {
    this.#maxAgeMs = options.maxAgeMs;
    this.#now = options.now ?? Date.now;
  }

  publish(snapshot: UsageSnapshot): void {
    this.#last = { at: this.#now(), text: renderUsage(snapshot) };
  }

  /** The text exposition of the newest snapshot, or nothing when it is stale or absent. */
  render(): string {
    if (!this.#last || this.#now() - this.#last.at > this.#maxAgeMs) return '';
    return this.#last.text;
  }
}
