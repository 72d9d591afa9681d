import { describe, expect, it } from 'vitest';
import { EmfMetrics } from '../../adapters/metrics/cloudwatch-emf.ts';

interface EmfLine {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [member: string]: unknown;
}

function emf(options: ConstructorParameters<typeof EmfMetrics>[0] = {}) {
  const written: string[] = [];
  const metrics = new EmfMetrics({
    now: () => 1_700_000_000_123,
    ...options,
    destination: { write: (l) => void written.push(l) },
  });
  const lines = () =>
    written.map((l) => {
      expect(l.endsWith('\n')).toBe(true);
      expect(l.trimEnd()).not.toContain('\n');
      return JSON.parse(l) as EmfLine;
    });
  return { metrics, written, lines };
}

/** Every metric a line declares, with its unit and dimension sets, as CloudWatch would extract them. */
function declared(line: EmfLine) {
  return line._aws.CloudWatchMetrics.flatMap((d) =>
    d.Metrics.map((m) => ({
      namespace: d.Namespace,
      name: m.Name,
      unit: m.Unit,
      dimensions: d.Dimensions,
    })),
  );
}

describe('EmfMetrics (CloudWatch embedded metric format)', () => {
  it('writes a request count and its latency as one line, each metric with its own dimension set and a total', () => {
    const { metrics, lines } = emf();
    metrics.count('http_requests_total', {
      method: 'GET',
      route: '/api/projects/:id',
      status: '200',
    });
    metrics.observe('http_request_duration_seconds', 0.0123, {
      method: 'GET',
      route: '/api/projects/:id',
    });
    metrics.flush();
    const [line, ...rest] = lines();
    expect(rest).toEqual([]);
    expect(line!._aws.Timestamp).toBe(1_700_000_000_123);
    expect(line).toMatchObject({
      method: 'GET',
      route: '/api/projects/:id',
      status: '200',
      http_requests_total: 1,
      http_request_duration_seconds: 0.0123,
    });
    expect(declared(line!)).toEqual([
      {
        namespace: 'selfdevop',
        name: 'http_requests_total',
        unit: 'Count',
        dimensions: [['method', 'route', 'status'], []],
      },
      {
        namespace: 'selfdevop',
        name: 'http_request_duration_seconds',
        unit: 'Seconds',
        dimensions: [['method', 'route'], []],
      },
    ]);
    // Every dimension a directive names is a string member of the line.
    for (const d of line!._aws.CloudWatchMetrics)
      for (const k of d.Dimensions.flat()) expect(typeof line![k]).toBe('string');
  });

  it('flushes by itself once the synchronous work that recorded is done', async () => {
    const { metrics, written } = emf();
    metrics.count('http_requests_total', { route: '/health', status: '200', method: 'GET' });
    expect(written).toEqual([]);
    await Promise.resolve();
    expect(written).toHaveLength(1);
    metrics.flush();
    expect(written).toHaveLength(1);
  });

  it('adds up counts and keeps every sample of one series, splitting lines where label values differ', () => {
    const { metrics, lines } = emf({ namespace: 'selfdevop-staging' });
    const ok = { method: 'GET', route: '/health', status: '200' };
    metrics.count('http_requests_total', ok);
    metrics.count('http_requests_total', ok, 2);
    metrics.count('http_requests_total', { ...ok, status: '503' });
    metrics.observe('http_request_duration_seconds', 0.5, { method: 'GET', route: '/health' });
    metrics.observe('http_request_duration_seconds', 1.5, { method: 'GET', route: '/health' });
    metrics.flush();
    const out = lines();
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({
      status: '200',
      http_requests_total: 3,
      http_request_duration_seconds: [0.5, 1.5],
    });
    expect(out[1]).toMatchObject({ status: '503', http_requests_total: 1 });
    expect(out[1]).not.toHaveProperty('http_request_duration_seconds');
    expect(out.flatMap(declared).map((m) => m.namespace)).toEqual(
      Array(3).fill('selfdevop-staging'),
    );
  });

  it('keeps labels it was not told are bounded out of the dimensions, as plain properties', () => {
    const { metrics, lines } = emf();
    metrics.count('webhook_deliveries_total', { route: '/x', webhookId: 'whk_123', status: '200' });
    metrics.gauge('queue_depth', 4, { queue: 'release-steps' });
    metrics.flush();
    const [line] = lines();
    expect(line).toMatchObject({
      webhookId: 'whk_123',
      queue: 'release-steps',
      webhook_deliveries_total: 1,
      queue_depth: 4,
    });
    expect(declared(line!)).toEqual([
      {
        namespace: 'selfdevop',
        name: 'webhook_deliveries_total',
        unit: 'Count',
        dimensions: [['route', 'status'], []],
      },
      { namespace: 'selfdevop', name: 'queue_depth', unit: 'None', dimensions: [[]] },
    ]);
    const { metrics: told, lines: toldLines } = emf({ dimensions: ['queue'] });
    told.gauge('queue_depth', 4, { queue: 'release-steps' });
    told.flush();
    expect(declared(toldLines()[0]!)[0]!.dimensions).toEqual([['queue'], []]);
  });

  it('never makes a dimension of a value CloudWatch would refuse, nor writes a value it would refuse', () => {
    const { metrics, lines } = emf();
    metrics.count('http_requests_total', { method: 'GET', route: 'x'.repeat(1025), status: '' });
    metrics.observe('http_request_duration_seconds', Number.NaN, { method: 'GET' });
    metrics.gauge('size_bytes', Number.POSITIVE_INFINITY);
    metrics.flush();
    const out = lines();
    expect(out).toHaveLength(1);
    expect(declared(out[0]!)).toEqual([
      {
        namespace: 'selfdevop',
        name: 'http_requests_total',
        unit: 'Count',
        dimensions: [['method'], []],
      },
    ]);
    expect(out[0]!.route).toHaveLength(1025);
  });

  it('caps a line at 100 values per metric, as the format requires', () => {
    const { metrics, lines } = emf();
    for (let i = 0; i < 150; i++)
      metrics.observe('http_request_duration_seconds', i / 1000, { route: '/health' });
    metrics.flush();
    const out = lines();
    expect(out.map((l) => (l.http_request_duration_seconds as number[]).length)).toEqual([100, 50]);
    expect(out.map((l) => declared(l)[0]!.unit)).toEqual(['Seconds', 'Seconds']);
  });

  it('does not let a label overwrite a metric value or the metadata', () => {
    const { metrics, lines } = emf();
    metrics.count('jobs_total', { jobs_total: 'x', _aws: 'y', kind: 'a' });
    metrics.count('kind', {});
    metrics.flush();
    const out = lines();
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ jobs_total: 1, kind: 'a' });
    expect(out[1]).toMatchObject({ kind: 1 });
    for (const l of out) expect(l._aws.CloudWatchMetrics[0]!.Namespace).toBe('selfdevop');
  });
});
