import { metricNames } from '../../core/alerts/rules.ts';
import { Unavailable } from '../../core/errors.ts';
import { crashLoopWindowSeconds } from '../../core/stats/collect.ts';
import type {
  MetricsQuery,
  Series,
  SeriesKey,
  SeriesRequest,
  SeriesScope,
} from '../../core/ports.ts';

/** A PromQL string literal: label values are ids and host names, quoted anyway. */
const lit = (v: string) => JSON.stringify(v);
const escape = (v: string) => v.replace(/[\\.^$|?*+()[\]{}]/g, '\\$&');
const hostRegex = (hosts: string[]) => lit(hosts.map(escape).join('|'));
const anyOf = (values: string[]) => lit([...new Set(values)].map(escape).join('|'));

/**
 * The PromQL of one series. The edge's series are Caddy's own, per host (`per_host`), read
 * for the hosts the service environment (or every environment of the project) answers on; a
 * replica's and a node's come from the worker's collector, labelled by org so one org never
 * reads another's. Every query is one `sum`/`max`: one series whatever the project's size.
 */
export function promqlFor(key: SeriesKey, scope: SeriesScope, rateWindow: string): string | null {
  const d = metricNames.httpDuration;
  if (scope.kind === 'node') {
    const node = `org=${lit(scope.orgId)},node=${lit(scope.nodeId)}`;
    switch (key) {
      case 'cpu':
        return `max(${metricNames.nodeCpu}{${node}})`;
      case 'memory':
        return `max(${metricNames.nodeMemory}{${node}})`;
      case 'disk':
        return `max(${metricNames.nodeDisk}{${node}})`;
      default:
        return null;
    }
  }
  // A project without services (or hosts) matches nothing rather than everything.
  const hosts = scope.hosts.length > 0 ? scope.hosts : ['-'];
  const edge = `host=~${hostRegex(hosts)}`;
  const own =
    scope.kind === 'service'
      ? `org=${lit(scope.orgId)},service=${lit(scope.serviceId)},environment=${lit(scope.environmentId)}`
      : scope.members.length > 0
        ? `org=${lit(scope.orgId)},service=~${anyOf(scope.members.map((m) => m.serviceId))},environment=~${anyOf(scope.members.map((m) => m.environmentId))}`
        : `org=${lit(scope.orgId)},service="-"`;
  const count = (code?: string) =>
    `sum(rate(${d}_count{${edge}${code ? `,code=~${lit(code)}` : ''}}[${rateWindow}]))`;
  const quantile = (q: number) =>
    `histogram_quantile(${q}, sum by (le) (rate(${d}_bucket{${edge}}[${rateWindow}])))`;
  switch (key) {
    case 'requests':
      return count();
    case 'errors_4xx':
      return count('4..');
    case 'errors_5xx':
      return count('5..');
    case 'latency_p50':
      return quantile(0.5);
    case 'latency_p95':
      return quantile(0.95);
    case 'connections':
      // Caddy's in-flight gauge: a proxied WebSocket stays in flight while it is open. Caddy
      // counts a request once, under the route's first handler (the request-id subroute, or
      // reverse_proxy on older routes), so a plain sum does not count it twice.
      return `sum(${metricNames.inFlight}{${edge}})`;
    case 'cpu':
      return `sum(rate(${metricNames.replicaCpu}{${own}}[${rateWindow}]))`;
    case 'memory':
      return `sum(${metricNames.replicaMemory}{${own}})`;
    case 'restarts':
      // The crash_loop rule's own figure: the busiest replica's restarts in its window.
      return `max(increase(${metricNames.replicaRestarts}{${own}}[${crashLoopWindowSeconds}s]))`;
    default:
      return null;
  }
}

interface RangeAnswer {
  status: 'success' | 'error';
  error?: string;
  data?: {
    resultType: string;
    result: { metric: Record<string, string>; values: [number, string][] }[];
  };
}

/**
 * Reads series from Prometheus's HTTP API (`/api/v1/query_range`), one query per series,
 * all at once. Each answer is bounded: at most `(end - start) / step` points of one series.
 */
export class PrometheusMetricsQuery implements MetricsQuery {
  readonly source: string;
  readonly #url: string;
  readonly #timeoutMs: number;

  constructor(url: string, options: { timeoutMs?: number } = {}) {
    this.#url = url.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 5_000;
    this.source = `Prometheus at ${this.#url}`;
  }

  async series(request: SeriesRequest): Promise<Series[]> {
    // rate() needs two samples in its window whatever the step: at least 2 minutes
    // (four 30 s scrapes), else two steps.
    const rateWindow = `${Math.max(120, request.stepSeconds * 2)}s`;
    return Promise.all(
      request.keys.map(async (key) => {
        const q = promqlFor(key, request.scope, rateWindow);
        return { key, points: q ? await this.#range(q, request) : [] };
      }),
    );
  }

  async #range(query: string, r: SeriesRequest): Promise<[number, number][]> {
    const body = new URLSearchParams({
      query,
      start: String(r.start.getTime() / 1000),
      end: String(r.end.getTime() / 1000),
      step: `${r.stepSeconds}s`,
    });
    let res: Response;
    try {
      res = await fetch(`${this.#url}/api/v1/query_range`, {
        method: 'POST',
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      throw new Unavailable('metrics', `${this.source} did not answer (${(e as Error).message})`);
    }
    const answer = (await res.json().catch(() => null)) as RangeAnswer | null;
    if (!res.ok || !answer || answer.status !== 'success')
      throw new Unavailable(
        'metrics',
        `${this.source} answered ${res.status}: ${answer?.error ?? 'not a Prometheus answer'}`,
      );
    const first = answer.data?.result[0];
    if (!first) return [];
    // Gaps and NaN (a quantile of no requests) are left out: the chart draws what was measured.
    return first.values
      .map(([t, v]) => [t, Number(v)] as [number, number])
      .filter(([, v]) => Number.isFinite(v));
  }
}
