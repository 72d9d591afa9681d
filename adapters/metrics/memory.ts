import type { Metrics } from '../../core/ports.ts';

/** Keeps every recorded value; `render()` writes the Prometheus text format for tests. */
export class MemoryMetrics implements Metrics {
  readonly counters = new Map<string, number>();
  readonly observations: { name: string; value: number; labels: Record<string, string> }[] = [];
  readonly gauges = new Map<string, number>();

  private static key(name: string, labels: Record<string, string>): string {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
      .join(',');
    return l ? `selfdevop_${name}{${l}}` : `selfdevop_${name}`;
  }

  count(name: string, labels: Record<string, string> = {}, by = 1): void {
    const k = MemoryMetrics.key(name, labels);
    this.counters.set(k, (this.counters.get(k) ?? 0) + by);
  }

  observe(name: string, value: number, labels: Record<string, string> = {}): void {
    this.observations.push({ name, value, labels });
  }

  gauge(name: string, value: number, labels: Record<string, string> = {}): void {
    this.gauges.set(MemoryMetrics.key(name, labels), value);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    const lines = [...this.counters, ...this.gauges].map(([k, v]) => `${k} ${v}`);
    return { contentType: 'text/plain; version=0.0.4', body: lines.join('\n') + '\n' };
  }
}
