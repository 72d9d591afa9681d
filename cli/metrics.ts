import { CliError } from './config.ts';
import type { Output } from './output.ts';
import { table } from './output.ts';

/** GET /api/services/{id}/metrics, /api/nodes/{id}/metrics and /api/projects/{id}/metrics. */
export type MetricsAnswer =
  | {
      available: true;
      source: string;
      range: string;
      stepSeconds: number;
      series: { key: string; title: string; unit: string; points: [number, number][] }[];
    }
  | { available: false; range: string; reason: string };

const bars = '▁▂▃▄▅▆▇█';

/** A terminal chart: one block per point, scaled from zero to the series' maximum. */
export function sparkline(values: number[], width = 40): string {
  if (values.length === 0) return '';
  const step = Math.max(1, Math.ceil(values.length / width));
  const sampled: number[] = [];
  for (let i = 0; i < values.length; i += step)
    sampled.push(Math.max(...values.slice(i, i + step)));
  const max = Math.max(...sampled);
  return sampled.map((v) => bars[max > 0 ? Math.round((v / max) * (bars.length - 1)) : 0]).join('');
}

export function formatValue(v: number, unit: string): string {
  const n = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : String(Number(x.toFixed(3))));
  if (unit === 'seconds') return v >= 1 ? `${n(v)}s` : `${n(v * 1000)}ms`;
  if (unit === 'bytes') return `${n(v / (1 << 20))}MiB`;
  if (unit === 'ratio') return `${n(v * 100)}%`;
  return `${n(v)} ${unit}`;
}

export const rangeOf = (v: string | undefined): string => {
  const r = v ?? '1h';
  if (!['1h', '1d', '1w'].includes(r))
    throw new CliError(`--range must be 1h, 1d or 1w, got ${r}`, 2);
  return r;
};

/** Prints the series as a table of latest / max and a sparkline; exit 1 when there is no backend. */
export function printMetrics(o: Output, m: MetricsAnswer): number {
  if (!m.available) {
    o.err(m.reason);
    return 1;
  }
  table(
    o,
    ['SERIES', 'LATEST', 'MAX', `LAST ${m.range.toUpperCase()}`],
    m.series.map((s) => {
      const values = s.points.map(([, v]) => v);
      return [
        s.title,
        values.length ? formatValue(values.at(-1)!, s.unit) : 'no data',
        values.length ? formatValue(Math.max(...values), s.unit) : '',
        sparkline(values),
      ];
    }),
    'no series',
  );
  o.out(`from ${m.source}, one point every ${m.stepSeconds / 60} min`);
  return 0;
}
