import { describe } from 'vitest';
import { PrometheusMetricsQuery } from '../../adapters/metrics-query/prometheus.ts';
import { runMetricsQueryContract } from '../contracts/metrics-query.case.ts';
import { openMetricsOf } from '../support/openmetrics.ts';
import { startPrometheus } from '../support/prometheus.ts';
import { available } from '../support/services.ts';

describe.skipIf(!(await available('prometheus')))(
  'PrometheusMetricsQuery (real Prometheus 2.42)',
  () => {
    runMetricsQueryContract({
      async make(fixture) {
        const prometheus = await startPrometheus({ openMetrics: openMetricsOf(fixture) });
        return { query: new PrometheusMetricsQuery(prometheus.url), close: prometheus.stop };
      },
    });
  },
);
