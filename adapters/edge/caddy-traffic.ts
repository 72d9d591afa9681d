import type { EdgeHostCounters } from '../../core/ports.ts';

/**
 * Caddy's per-host request counters (`metrics.per_host` in the base config) from its admin
 * API's `GET /metrics`, Prometheus text, as the running totals the core takes deltas of.
 *
 * Summed over handlers, methods and codes, as the Prometheus rules sum them: Caddy 2.11
 * counts each request once, under its route's first handler (`handler="subroute"`, the
 * request id, for the edge's routes), with the status the client got; the test against a
 * real Caddy holds the sum to the requests sent. The in-flight gauge is read the same way,
 * summed over handlers (a request is in flight under its route's first handler only, a
 * proxied WebSocket for as long as it stays open): the host's open connections now.
 */
const family = 'caddy_http_request_duration_seconds';
const inFlight = 'caddy_http_requests_in_flight';

/** `a="x",b="y"` → {a: 'x', b: 'y'}, with the format's escapes (\\, \", \n). */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m; m = re.exec(text))
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  return out;
}

/**
 * One label's value on a series line (Caddy writes `name="value"` after `{` or `,`); labels
 * with an escape are read by `parseLabels`, the rare slow path.
 */
function labelOf(line: string, name: string): string | undefined {
  for (let at = line.indexOf(`${name}="`); at > 0; at = line.indexOf(`${name}="`, at + 1)) {
    const before = line.charCodeAt(at - 1);
    if (before !== 123 /* { */ && before !== 44 /* , */) continue;
    const from = at + name.length + 2;
    const to = line.indexOf('"', from);
    if (to < 0) return undefined;
    const value = line.slice(from, to);
    return value.includes('\\') ? parseLabels(line.slice(line.indexOf('{') + 1))[name] : value;
  }
  return undefined;
}

/**
 * The counters of every host `server` served, from one `/metrics` answer. The answer holds
 * four histograms per host, code and method (tens of MB for a thousand hosts): the scan
 * jumps from one duration series line to the next with `indexOf` and never splits the rest.
 */
export function caddyTrafficFromMetrics(text: string, server: string): EdgeHostCounters[] {
  const hosts = new Map<string, EdgeHostCounters & { le: Map<number, number> }>();
  const hostOf = (name: string) => {
    let h = hosts.get(name);
    if (!h) {
      h = {
        host: name,
        requests: 0,
        responses4xx: 0,
        responses5xx: 0,
        buckets: [],
        openConnections: 0,
        le: new Map(),
      };
      hosts.set(name, h);
    }
    return h;
  };
  const needle = `\n${family}_`;
  for (let at = text.startsWith(`${family}_`) ? -1 : text.indexOf(needle); at !== -1;) {
    const start = at + 1;
    const end = text.indexOf('\n', start);
    const line = end === -1 ? text.slice(start) : text.slice(start, end);
    at = end === -1 ? -1 : text.indexOf(needle, end);
    const open = line.indexOf('{');
    const close = line.lastIndexOf('}');
    if (open < 0 || close < open) continue;
    const suffix = line.slice(family.length, open);
    if (suffix !== '_bucket' && suffix !== '_count') continue;
    if (labelOf(line, 'server') !== server) continue;
    const host = labelOf(line, 'host');
    if (!host) continue;
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(' ')[0],
    );
    if (!Number.isFinite(value)) continue;
    const h = hostOf(host.toLowerCase());
    if (suffix === '_count') {
      h.requests += value;
      const code = labelOf(line, 'code');
      if (code?.startsWith('4')) h.responses4xx += value;
      if (code?.startsWith('5')) h.responses5xx += value;
    } else {
      const raw = labelOf(line, 'le');
      const le = raw === '+Inf' ? Infinity : Number(raw);
      if (raw !== undefined && !Number.isNaN(le)) h.le.set(le, (h.le.get(le) ?? 0) + value);
    }
  }
  // A few lines per host (one per handler): read apart, after the histograms' tens of MB.
  const gauge = `\n${inFlight}{`;
  for (let at = text.startsWith(`${inFlight}{`) ? -1 : text.indexOf(gauge); at !== -1;) {
    const start = at + 1;
    const end = text.indexOf('\n', start);
    const line = end === -1 ? text.slice(start) : text.slice(start, end);
    at = end === -1 ? -1 : text.indexOf(gauge, end);
    const close = line.lastIndexOf('}');
    if (close < 0 || labelOf(line, 'server') !== server) continue;
    const host = labelOf(line, 'host');
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(' ')[0],
    );
    // A host whose first request is still in flight has no histogram yet: it is seen here.
    if (host && Number.isFinite(value)) hostOf(host.toLowerCase()).openConnections += value;
  }
  return [...hosts.values()].map(({ le, ...h }) => ({
    ...h,
    buckets: [...le.entries()].sort((a, b) => a[0] - b[0]).map(([l, count]) => ({ le: l, count })),
  }));
}
