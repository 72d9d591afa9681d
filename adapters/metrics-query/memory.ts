import type { MetricsQuery, Series, SeriesRequest, SeriesScope } from '../../core/ports.ts';

type ServiceOrNode = Exclude<SeriesScope, { kind: 'project' }>;

const scopeKey = (s: ServiceOrNode) =>
  s.kind === 'service'
    ? `${s.orgId}/service/${s.serviceId}/${s.environmentId}`
    : `${s.orgId}/node/${s.nodeId}`;

/**
 * The in-memory twin: series recorded per service environment or node and key, answered
 * between start and end. A project's series are its members' added up per timestamp, as
 * Prometheus's `sum` does; latencies, which do not add, are the slowest member's (what
 * CloudWatch answers, and at most Prometheus's merged quantile when each member's is exact).
 */
export class MemoryMetricsQuery implements MetricsQuery {
  readonly source = 'memory';
  readonly #series = new Map<string, [number, number][]>();
  /** Set to make every read fail as a backend that does not answer would. */
  failure: Error | null = null;

  record(scope: ServiceOrNode, key: Series['key'], points: [number, number][]): this {
    this.#series.set(
      `${scopeKey(scope)}#${key}`,
      [...points].sort((a, b) => a[0] - b[0]),
    );
    return this;
  }

  async series(request: SeriesRequest): Promise<Series[]> {
    if (this.failure) throw this.failure;
    const from = request.start.getTime() / 1000;
    const to = request.end.getTime() / 1000;
    const { scope } = request;
    const pointsOf = (key: Series['key']): [number, number][] => {
      if (scope.kind !== 'project') return this.#series.get(`${scopeKey(scope)}#${key}`) ?? [];
      const merged = new Map<number, number>();
      const combine = key.startsWith('latency_') ? Math.max : (a: number, b: number) => a + b;
      for (const m of scope.members)
        for (const [t, v] of this.#series.get(
          `${scope.orgId}/service/${m.serviceId}/${m.environmentId}#${key}`,
        ) ?? [])
          merged.set(t, merged.has(t) ? combine(merged.get(t)!, v) : v);
      return [...merged.entries()].sort((a, b) => a[0] - b[0]);
    };
    return request.keys.map((key) => ({
      key,
      points: pointsOf(key).filter(([t]) => t >= from && t <= to),
    }));
  }
}
