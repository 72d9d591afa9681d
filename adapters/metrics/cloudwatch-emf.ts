import type { Metrics } from '../../core/ports.ts';

/** The CloudWatch units selfdevop's metric names imply (Prometheus-style unit suffixes). */
type Unit = 'Count' | 'Seconds' | 'Bytes' | 'None';

// Limits from the EMF specification: metrics per line, values per metric, and what a
// dimension value may be (ASCII, at most 1,024 characters).
const maxMetricsPerLine = 100;
const maxValuesPerMetric = 100;
const dimensionValue = /^[\x20-\x7E]{1,1024}$/;

interface MetricDirective {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit: Unit }[];
}

/** One log line being assembled: the labels at its root, and each metric's value(s). */
interface Document {
  labels: Map<string, string>;
  /** metric name → the labels key it was recorded under, its values, its directive. */
  metrics: Map<
    string,
    { labelsKey: string; kind: 'count' | 'sample'; values: number[]; directive: MetricDirective }
  >;
}

function unitOf(name: string, kind: 'count' | 'sample'): Unit {
  if (kind === 'count') return 'Count';
  if (name.endsWith('_seconds')) return 'Seconds';
  if (name.endsWith('_bytes')) return 'Bytes';
  return 'None';
}

/**
 * Metrics as CloudWatch Embedded Metric Format: JSON log lines that CloudWatch Logs turns
 * into metrics, so a Lambda needs no SDK, no agent and no /metrics endpoint (each container
 * would only show its own). Metric names are the app's (`http_requests_total`, …) under one
 * namespace; each metric is also published without dimensions, the total an alarm watches.
 *
 * Only the labels named in `dimensions` become CloudWatch dimensions, since every distinct
 * combination is a metric billed monthly; any other label is written as a plain property,
 * searchable in Logs Insights but not a metric of its own.
 *
 * Calls made in one synchronous stretch (a request's count and its latency) are written as
 * one line on a microtask, merged where their labels agree; `flush()` writes them at once.
 */
export class EmfMetrics implements Metrics {
  private readonly namespace: string;
  private readonly dimensions: ReadonlySet<string>;
  private readonly write: (line: string) => void;
  private readonly now: () => number;
  private pending: Document[] = [];
  private scheduled = false;

  constructor(
    options: {
      /** CloudWatch namespace; `selfdevop` unless set. */
      namespace?: string;
      /** Labels whose values are few and known (route patterns, status codes) and so may be dimensions. */
      dimensions?: readonly string[];
      /** Where lines go; stdout (CloudWatch Logs, on Lambda) unless set. */
      destination?: { write(line: string): void };
      now?: () => number;
    } = {},
  ) {
    this.namespace = options.namespace ?? 'selfdevop';
    this.dimensions = new Set(options.dimensions ?? ['method', 'route', 'status']);
    const destination = options.destination ?? process.stdout;
    this.write = (line) => destination.write(line);
    this.now = options.now ?? Date.now;
  }

  count(name: string, labels: Record<string, string> = {}, by = 1): void {
    this.record(name, 'count', by, labels);
  }

  observe(name: string, value: number, labels: Record<string, string> = {}): void {
    this.record(name, 'sample', value, labels);
  }

  gauge(name: string, value: number, labels: Record<string, string> = {}): void {
    this.record(name, 'sample', value, labels);
  }

  /** Writes what was recorded and not yet written, one line per document. */
  flush(): void {
    const documents = this.pending;
    this.pending = [];
    this.scheduled = false;
    if (!documents.length) return;
    const timestamp = this.now();
    for (const d of documents) {
      const line: Record<string, unknown> = Object.fromEntries(d.labels);
      const directives: MetricDirective[] = [];
      for (const [name, m] of d.metrics) {
        line[name] = m.values.length === 1 ? m.values[0] : m.values;
        if (!directives.includes(m.directive)) directives.push(m.directive);
      }
      line._aws = { Timestamp: timestamp, CloudWatchMetrics: directives };
      this.write(JSON.stringify(line) + '\n');
    }
  }

  private record(
    name: string,
    kind: 'count' | 'sample',
    value: number,
    labels: Record<string, string>,
  ): void {
    // CloudWatch refuses NaN and infinities; one bad value must not lose the whole line.
    if (!Number.isFinite(value)) return;
    // A label may not take the place of the metric's own value or of the EMF metadata.
    const entries = Object.entries(labels).filter(([k]) => k !== name && k !== '_aws');
    const labelsKey = JSON.stringify(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
    const fits = (d: Document) => {
      if (d.labels.has(name)) return false;
      for (const [k, v] of entries)
        if (d.metrics.has(k) || (d.labels.has(k) && d.labels.get(k) !== v)) return false;
      const m = d.metrics.get(name);
      if (!m) return d.metrics.size < maxMetricsPerLine;
      return (
        m.labelsKey === labelsKey &&
        m.kind === kind &&
        (kind === 'count' || m.values.length < maxValuesPerMetric)
      );
    };
    let document = this.pending.find(fits);
    if (!document) {
      document = { labels: new Map(), metrics: new Map() };
      this.pending.push(document);
    }
    for (const [k, v] of entries) document.labels.set(k, v);
    const existing = document.metrics.get(name);
    if (existing) {
      // Counts add up (Sum is what a counter means); samples keep every value for percentiles.
      if (kind === 'count') existing.values[0] = existing.values[0]! + value;
      else existing.values.push(value);
    } else {
      const dimensionKeys = entries
        .filter(([k, v]) => this.dimensions.has(k) && dimensionValue.test(v))
        .map(([k]) => k);
      const directive = this.directiveFor(document, dimensionKeys);
      directive.Metrics.push({ Name: name, Unit: unitOf(name, kind) });
      document.metrics.set(name, { labelsKey, kind, values: [value], directive });
    }
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Metrics of one document that share dimension keys share a directive. */
  private directiveFor(document: Document, dimensionKeys: string[]): MetricDirective {
    const key = JSON.stringify(dimensionKeys);
    for (const m of document.metrics.values()) {
      if (JSON.stringify(m.directive.Dimensions[0]) === key) return m.directive;
    }
    return {
      Namespace: this.namespace,
      Dimensions: dimensionKeys.length ? [dimensionKeys, []] : [[]],
      Metrics: [],
    };
  }
}
