import type { MetricsQuery, Series, SeriesRequest, SeriesScope } from '../../core/ports.ts';

const scopeKey = (s: SeriesScope) =>
  s.kind === 'service'
    ? `${s.orgId}/service/${s.serviceId}/${s.environmentId}`
    : `${s.orgId}/node/${s.nodeId}`;

/** The in-memory twin: series recorded per scope and key, answered between start and end. */
export class MemoryMetricsQuery implements MetricsQuery {
  readonly source = 'memory';
  readonly #series = new Map<string, [number, number][]>();
  /** Set to make every read fail as a backend that does not answer would. */
  failure: Error | null = null;

  record(scope: SeriesScope, key: Series['key'], points: [number, number][]): this {
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
    return request.keys.map((key) => ({
      key,
      points: (this.#series.get(`${scopeKey(request.scope)}#${key}`) ?? []).filter(
        ([t]) => t >= from && t <= to,
      ),
    }));
  }
}
