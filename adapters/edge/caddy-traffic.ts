import type { EdgeHostCounters } from '../../core/ports.ts';

/**
 * Caddy's per-host request counters (`metrics.per_host` in the base config) from its admin
 * API's `GET /metrics`, Prometheus text, as the running totals the core takes deltas of.
 *
 * Summed over handlers, methods and codes, as the Prometheus rules sum them: Caddy 2.11
 * counts each request once, under its route's first handler (`handler="subroute"`, the
 * request id, for the edge's routes), with the status the client got; the test against a
 * real Caddy holds the sum to the requests sent.
 */
const family = 'caddy_http_request_duration_seconds';

/** `a="x",b="y"` → {a: 'x', b: 'y'}, with the format's escapes (\\, \", \n). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text))
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return out;
}

/** The counters of every host `server` served, from one `/metrics` answer. */
export function caddyTrafficFromMetrics(text: string, server: string): EdgeHostCounters[] {
  const hosts = new Map<string, EdgeHostCounters & { le: Map<number, number> }>();
  const hostOf = (name: string) => {
    let h = hosts.get(name);
    if (!h) {
      h = { host: name, requests: 0, responses4xx: 0, responses5xx: 0, buckets: [], le: new Map() };
      hosts.set(name, h);
    }
    return h;
  };
  for (const line of text.split('\n')) {
    if (!line.startsWith(family)) continue;
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    if (open < 0 || close < open) continue;
    const suffix = line.slice(family.length, open);
    if (suffix !== '_bucket' && suffix !== '_count') continue;
    const labels = parseLabels(line.slice(open + 1, close));
    if (labels.server !== server || !labels.host) continue;
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(' ')[0],
    );
    if (!Number.isFinite(value)) continue;
    const h = hostOf(labels.host.toLowerCase());
    if (suffix === '_count') {
      h.requests += value;
      if (labels.code?.startsWith('4')) h.responses4xx += value;
      if (labels.code?.startsWith('5')) h.responses5xx += value;
    } else {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      if (!Number.isNaN(le)) h.le.set(le, (h.le.get(le) ?? 0) + value);
    }
  }
  return [...hosts.values()].map(({ le, ...h }) => ({
    ...h,
    buckets: [...le.entries()].sort((a, b) => a[0] - b[0]).map(([l, count]) => ({ le: l, count })),
  }));
}
