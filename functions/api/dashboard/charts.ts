import { html, raw } from 'hono/html';
import type { Html } from './layout.ts';

/** GET /api/{services,nodes,projects}/{id}/metrics, as the pages read them. */
export type MetricsAnswer =
  | {
      available: true;
      source: string;
      range: string;
      start: string;
      end: string;
      stepSeconds: number;
      series: { key: string; title: string; unit: string; points: [number, number][] }[];
    }
  | { available: false; range: string; reason: string };

/** One chart: one or two series of the same unit drawn together (p50 beside p95, 4xx beside 5xx). */
export interface ChartSpec {
  title: string;
  keys: string[];
}

const width = 320;
const height = 110;
const pad = { left: 46, right: 8, top: 10, bottom: 20 };
const colors = ['#1f6feb', '#d1242f', '#8250df'];

/** A value in its unit, short enough for an axis label. */
export function formatValue(v: number, unit: string): string {
  const n = (x: number, d = 2) =>
    Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(d).replace(/\.?0+$/, '');
  switch (unit) {
    case 'seconds':
      return v >= 1 ? `${n(v)} s` : `${n(v * 1000)} ms`;
    case 'bytes':
      return v >= 1 << 30
        ? `${n(v / (1 << 30))} GiB`
        : v >= 1 << 20
          ? `${n(v / (1 << 20))} MiB`
          : `${n(v / 1024)} KiB`;
    case 'ratio':
      return `${n(v * 100, 1)} %`;
    case 'cores':
      return `${n(v)} cores`;
    case 'connections':
      return n(v);
    default:
      return `${n(v)} ${unit}`;
  }
}

/**
 * The y axis's top label: 46 px wide, so the rate, core and restart units (named by the caption and
 * the legend) are left out rather than cut off.
 */
const axisValue = (v: number, unit: string) =>
  unit === 'req/s' || unit === 'cores' || unit === 'restarts'
    ? formatValue(v, '').trim()
    : formatValue(v, unit);

const clock = (t: number, range: string) => {
  const d = new Date(t * 1000).toISOString();
  return range === '1h' ? d.slice(11, 16) : `${d.slice(5, 10)} ${d.slice(11, 16)}`;
};

/**
 * An inline SVG line chart (no script, no CDN, nothing the CSP must allow): the series
 * scaled to a shared y axis from zero, the time axis from the window's start to its end,
 * the latest value of each in the legend. A series without points says "no data" instead of
 * drawing a flat line that would read as zero.
 */
export function chart(answer: Extract<MetricsAnswer, { available: true }>, spec: ChartSpec): Html {
  const series = spec.keys
    .map((k) => answer.series.find((s) => s.key === k))
    .filter((s): s is NonNullable<typeof s> => s !== undefined);
  const unit = series[0]?.unit ?? '';
  const t0 = Date.parse(answer.start) / 1000;
  const t1 = Date.parse(answer.end) / 1000;
  const max = Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v)));
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t: number) =>
    pad.left + ((t - t0) / Math.max(1, t1 - t0)) * (width - pad.left - pad.right);
  const y = (v: number) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);
  const hasData = series.some((s) => s.points.length > 0);
  const id = `chart-${spec.keys.join('-')}`;
  // A dot on each series' latest point: a series with one point so far (a service a
  // minute old, at one point a minute) would otherwise be a polyline nobody can see.
  const lines = series.map((s, i) => {
    const last = s.points.at(-1);
    if (!last) return '';
    const color = colors[i % colors.length];
    return raw(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${s.points
        .map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`)
        .join(
          ' ',
        )}" /><circle cx="${x(last[0]).toFixed(1)}" cy="${y(last[1]).toFixed(1)}" r="2.5" fill="${color}" />`,
    );
  });
  const legend = series.map((s, i) => {
    const last = s.points.at(-1);
    return html`<span class="legend"
      ><svg width="10" height="10" aria-hidden="true">
        <rect width="10" height="10" fill="${colors[i % colors.length]}" />
      </svg>
      ${s.title}: ${last ? formatValue(last[1], s.unit) : 'no data'}</span
    > `;
  });
  return html`<figure class="chart" data-chart="${spec.keys.join(',')}">
    <figcaption id="${id}">${spec.title}</figcaption>
    <svg
      role="img"
      aria-labelledby="${id}"
      viewBox="0 0 ${width} ${height}"
      width="${width}"
      height="${height}"
      xmlns="http://www.w3.org/2000/svg"
    >
      <line
        x1="${pad.left}"
        y1="${height - pad.bottom}"
        x2="${width - pad.right}"
        y2="${height - pad.bottom}"
        stroke="#8c959f"
      />
      <line
        x1="${pad.left}"
        y1="${pad.top}"
        x2="${pad.left}"
        y2="${height - pad.bottom}"
        stroke="#8c959f"
      />
      <text x="${pad.left - 4}" y="${pad.top + 8}" text-anchor="end" font-size="9" fill="#57606a">
        ${axisValue(top, unit)}
      </text>
      <text
        x="${pad.left - 4}"
        y="${height - pad.bottom}"
        text-anchor="end"
        font-size="9"
        fill="#57606a"
      >
        0
      </text>
      <text x="${pad.left}" y="${height - 6}" font-size="9" fill="#57606a">
        ${clock(t0, answer.range)}
      </text>
      <text
        x="${width - pad.right}"
        y="${height - 6}"
        text-anchor="end"
        font-size="9"
        fill="#57606a"
      >
        ${clock(t1, answer.range)}
      </text>
      ${hasData ? lines : html`<text x="${width / 2}" y="${height / 2}" text-anchor="middle" font-size="11" fill="#57606a">no data in this window</text>`}
    </svg>
    <div>${legend}</div>
  </figure>`;
}

/** The range switch and the charts, or, without a metrics backend, exactly what to install. */
export function chartsSection(
  answer: MetricsAnswer | null,
  specs: ChartSpec[],
  rangeHref: (range: string) => string,
): Html {
  const ranges = html`<nav aria-label="Time range">
    ${['1h', '1d', '1w'].map(
      (r) =>
        html`<a
          href="${rangeHref(r)}"
          class="button ${answer?.range === r ? '' : 'secondary'}"
          ${answer?.range === r ? html`aria-current="page"` : ''}
          >${{ '1h': 'Last hour', '1d': 'Last day', '1w': 'Last week' }[r]}</a
        > `,
    )}
  </nav>`;
  if (answer === null)
    return html`<section class="card" aria-labelledby="metrics-h">
      <h2 id="metrics-h">Metrics</h2>
      <p class="empty">This control plane has no metrics endpoint yet.</p>
    </section>`;
  if (!answer.available)
    return html`<section class="card" aria-labelledby="metrics-h">
      <h2 id="metrics-h">Metrics</h2>
      <p class="empty" id="metrics-unavailable">${answer.reason}</p>
    </section>`;
  return html`<section class="card" aria-labelledby="metrics-h">
    <h2 id="metrics-h">Metrics</h2>
    ${ranges}
    <div class="charts">${specs.map((s) => chart(answer, s))}</div>
    <p class="hint">From ${answer.source}, one point every ${answer.stepSeconds / 60} min.</p>
  </section>`;
}

export const serviceCharts: ChartSpec[] = [
  { title: 'Requests per second', keys: ['requests'] },
  { title: 'Latency (p50, p95)', keys: ['latency_p50', 'latency_p95'] },
  { title: 'Errors per second (4xx, 5xx)', keys: ['errors_4xx', 'errors_5xx'] },
  { title: 'Open connections (WebSockets)', keys: ['connections'] },
  { title: 'CPU', keys: ['cpu'] },
  { title: 'Memory', keys: ['memory'] },
  { title: 'Restarts in 15 min (busiest replica)', keys: ['restarts'] },
];

/** A project's: every environment of every one of its services together. */
export const projectCharts: ChartSpec[] = [
  { title: 'Requests per second', keys: ['requests'] },
  { title: '5xx responses per second', keys: ['errors_5xx'] },
  { title: 'Latency (p95)', keys: ['latency_p95'] },
  { title: 'Open connections (WebSockets)', keys: ['connections'] },
  { title: 'CPU (all replicas)', keys: ['cpu'] },
  { title: 'Memory (all replicas)', keys: ['memory'] },
];

export const nodeCharts: ChartSpec[] = [
  { title: 'CPU', keys: ['cpu'] },
  { title: 'Memory used', keys: ['memory'] },
  { title: 'Disk used', keys: ['disk'] },
];
