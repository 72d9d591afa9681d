import client from 'prom-client';
import type { Metrics } from '../../core/ports.ts';

const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Prometheus metrics on a private registry (so two apps in one test process do not clash),
 * with the process's own metrics (memory, event loop lag) registered once per registry.
 * Metric families are created on first use, named `selfdevop_<name>`.
 */
export class PrometheusMetrics implements Metrics {
  readonly registry = new client.Registry();
  private readonly counters = new Map<string, client.Counter<string>>();
  private readonly histograms = new Map<string, client.Histogram<string>>();
  private readonly gauges = new Map<string, client.Gauge<string>>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true)
      client.collectDefaultMetrics({ register: this.registry, prefix: 'selfdevop_' });
  }

  count(name: string, labels: Record<string, string> = {}, by = 1): void {
    let c = this.counters.get(name);
    if (!c) {
      c = new client.Counter({
        name: `selfdevop_${name}`,
        help: name,
        labelNames: Object.keys(labels),
        registers: [this.registry],
      });
      this.counters.set(name, c);
    }
    c.inc(labels, by);
  }

  observe(name: string, value: number, labels: Record<string, string> = {}): void {
    let h = this.histograms.get(name);
    if (!h) {
      h = new client.Histogram({
        name: `selfdevop_${name}`,
        help: name,
        labelNames: Object.keys(labels),
        buckets: latencyBuckets,
        registers: [this.registry],
      });
      this.histograms.set(name, h);
    }
    h.observe(labels, value);
  }

  gauge(name: string, value: number, labels: Record<string, string> = {}): void {
    let g = this.gauges.get(name);
    if (!g) {
      g = new client.Gauge({
        name: `selfdevop_${name}`,
        help: name,
        labelNames: Object.keys(labels),
        registers: [this.registry],
      });
      this.gauges.set(name, g);
    }
    g.set(labels, value);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
