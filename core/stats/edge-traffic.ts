import { alertRuleById } from '../alerts/rules.ts';
import type { EdgeHostCounters, ServiceTraffic } from '../ports.ts';

/**
 * The edge's figures per service environment, from the edge's running totals read once per
 * collection: what Prometheus's `rate`, `increase` and `histogram_quantile` take from Caddy's
 * series self-hosted, computed here for the cloud, where CloudWatch never sees the histogram
 * (an alarm cannot take a percentile of buckets, nor divide one contributor's metrics).
 */

/** One host's counts between two readings. */
export interface HostDelta {
  requests: number;
  responses4xx: number;
  responses5xx: number;
  /** Cumulative per `le`, as the readings are. */
  buckets: { le: number; count: number }[];
}

/** What a service environment's hosts are, and its thresholds (overrides; defaults otherwise). */
export interface TrafficTarget {
  orgId: string;
  serviceId: string;
  environmentId: string;
  hosts: readonly string[];
  thresholds: Record<string, number>;
}

/**
 * Counts between two readings of one host. A total that went down is a restarted edge (a
 * counter reset): as Prometheus does, the new total is what happened since.
 */
export function deltaOf(before: EdgeHostCounters | undefined, now: EdgeHostCounters): HostDelta {
  const reset =
    !before ||
    now.requests < before.requests ||
    now.responses4xx < before.responses4xx ||
    now.responses5xx < before.responses5xx;
  if (reset)
    return {
      requests: now.requests,
      responses4xx: now.responses4xx,
      responses5xx: now.responses5xx,
      buckets: now.buckets.map((b) => ({ ...b })),
    };
  const was = new Map(before.buckets.map((b) => [b.le, b.count]));
  return {
    requests: now.requests - before.requests,
    responses4xx: now.responses4xx - before.responses4xx,
    responses5xx: now.responses5xx - before.responses5xx,
    buckets: now.buckets.map((b) => ({
      le: b.le,
      count: Math.max(0, b.count - (was.get(b.le) ?? 0)),
    })),
  };
}

/** Adds `b` into `a` (buckets matched by `le`; Caddy's bounds are the same for every host). */
function addInto(a: HostDelta, b: HostDelta): void {
  a.requests += b.requests;
  a.responses4xx += b.responses4xx;
  a.responses5xx += b.responses5xx;
  for (const x of b.buckets) {
    const at = a.buckets.find((y) => y.le === x.le);
    if (at) at.count += x.count;
    else a.buckets.push({ ...x });
  }
  a.buckets.sort((x, y) => x.le - y.le);
}

const empty = (): HostDelta => ({ requests: 0, responses4xx: 0, responses5xx: 0, buckets: [] });

/**
 * The q-quantile of a cumulative histogram, as PromQL's `histogram_quantile` answers it:
 * linear within the bucket the rank falls in (from 0 for the first bucket), the highest
 * finite bound when it falls in the +Inf bucket; null without observations.
 */
export function histogramQuantile(
  q: number,
  buckets: readonly { le: number; count: number }[],
): number | null {
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  const total = sorted[sorted.length - 1]?.count ?? 0;
  if (total <= 0 || sorted[sorted.length - 1]!.le !== Infinity) return null;
  const rank = q * total;
  let i = sorted.findIndex((b) => b.count >= rank);
  if (i < 0) i = sorted.length - 1;
  if (sorted[i]!.le === Infinity) return sorted.length > 1 ? sorted[sorted.length - 2]!.le : null;
  const lower = i === 0 ? 0 : sorted[i - 1]!.le;
  const below = i === 0 ? 0 : sorted[i - 1]!.count;
  const inBucket = sorted[i]!.count - below;
  if (inBucket <= 0) return sorted[i]!.le;
  return lower + (sorted[i]!.le - lower) * ((rank - below) / inBucket);
}

interface Round {
  fromMs: number;
  toMs: number;
  hosts: Map<string, HostDelta>;
}

const fiveXx = alertRuleById('http_5xx_spike')!;
const p95 = alertRuleById('latency_p95')!;
/** The longest window any edge rule reads: rounds older than it are dropped. */
const keepMs = Math.max(fiveXx.windowSeconds!, p95.windowSeconds!) * 1000;

/**
 * The edge's readings over time (one per collection), kept for the longest rule's window,
 * so each rule reads its own window from the same rounds. It lives in the collector's
 * process: a cold start begins again, and its first round only sets the baseline.
 */
export class EdgeTrafficHistory {
  #last: { atMs: number; hosts: Map<string, EdgeHostCounters> } | null = null;
  #rounds: Round[] = [];

  /** Notes one reading of the edge (the first only as the baseline); hosts gone from it are forgotten. */
  observe(hosts: readonly EdgeHostCounters[], atMs: number): void {
    const now = new Map(hosts.map((h) => [h.host.toLowerCase(), h]));
    const last = this.#last;
    this.#last = { atMs, hosts: now };
    if (!last || atMs <= last.atMs) return;
    const deltas = new Map<string, HostDelta>();
    // A host absent from the reading before had served nothing then (Caddy has a series only
    // once it counted a request): its whole total is this round's. Before the first reading
    // of this process, nothing is known, so that one only sets the baseline.
    for (const [host, counters] of now) deltas.set(host, deltaOf(last.hosts.get(host), counters));
    this.#rounds.push({ fromMs: last.atMs, toMs: atMs, hosts: deltas });
    // Keep one round older than the longest window, so it can still be covered whole.
    while (this.#rounds.length > 1 && this.#rounds[1]!.fromMs <= atMs - keepMs)
      this.#rounds.shift();
  }

  /**
   * The newest rounds covering `windowSeconds` (at least one; a round a tenth short of the
   * window is taken as covering it, so a late collection does not pull in a second minute),
   * summed per host, with the seconds they span. Null before the first round.
   */
  window(windowSeconds: number): { seconds: number; hosts: Map<string, HostDelta> } | null {
    const newest = this.#rounds[this.#rounds.length - 1];
    if (!newest) return null;
    const hosts = new Map<string, HostDelta>();
    let fromMs = newest.toMs;
    for (let i = this.#rounds.length - 1; i >= 0; i--) {
      // Rounds are contiguous (each starts at the reading before): a missed collection is
      // one longer round, and the figures per window are scaled by the seconds spanned.
      const r = this.#rounds[i]!;
      for (const [host, d] of r.hosts) {
        let sum = hosts.get(host);
        if (!sum) hosts.set(host, (sum = empty()));
        addInto(sum, d);
      }
      fromMs = r.fromMs;
      if (newest.toMs - fromMs >= windowSeconds * 1000 * 0.9) break;
    }
    return { seconds: (newest.toMs - fromMs) / 1000, hosts };
  }

  /**
   * The connections open through the given hosts at the newest reading (a gauge: its value
   * then, not a sum over rounds); a host absent from it has none.
   */
  openConnections(hosts: readonly string[]): number {
    let open = 0;
    for (const h of new Set(hosts.map((x) => x.toLowerCase())))
      open += this.#last?.hosts.get(h)?.openConnections ?? 0;
    return open;
  }
}

/** The summed delta of a service environment's hosts; null when none of them was seen. */
function sumOf(hosts: readonly string[], deltas: Map<string, HostDelta>): HostDelta | null {
  let out: HostDelta | null = null;
  for (const h of new Set(hosts.map((x) => x.toLowerCase()))) {
    const d = deltas.get(h);
    if (!d) continue;
    out ??= empty();
    addInto(out, d);
  }
  return out;
}

/**
 * Each service environment's traffic in the newest round, the connections open at its end,
 * and the edge rules' figures over their windows against the service's thresholds: the 5xx
 * share (0 below the rule's floor of errors per window, scaled to the window when the rounds
 * span more or less) and the p95.
 */
export function serviceTraffic(
  history: EdgeTrafficHistory,
  targets: readonly TrafficTarget[],
): ServiceTraffic[] {
  const round = history.window(0);
  if (!round) return [];
  const shareWindow = history.window(fiveXx.windowSeconds!)!;
  const p95Window = history.window(p95.windowSeconds!)!;
  const out: ServiceTraffic[] = [];
  for (const t of targets) {
    const now = sumOf(t.hosts, round.hosts);
    if (!now) continue;
    const share = sumOf(t.hosts, shareWindow.hosts);
    const slow = sumOf(t.hosts, p95Window.hosts);
    const ofThreshold: ServiceTraffic['ofThreshold'] = {};
    let http5xxShare: number | null = null;
    if (share && share.requests > 0) {
      http5xxShare = share.responses5xx / share.requests;
      const perWindow = (share.responses5xx * fiveXx.windowSeconds!) / shareWindow.seconds;
      ofThreshold.http_5xx_spike =
        perWindow >= (fiveXx.floor?.events ?? 1)
          ? http5xxShare / (t.thresholds[fiveXx.id] ?? fiveXx.defaultThreshold)
          : 0;
    }
    const latencyP95WindowSeconds = slow ? histogramQuantile(0.95, slow.buckets) : null;
    if (latencyP95WindowSeconds !== null)
      ofThreshold.latency_p95 =
        latencyP95WindowSeconds / (t.thresholds[p95.id] ?? p95.defaultThreshold);
    out.push({
      orgId: t.orgId,
      serviceId: t.serviceId,
      environmentId: t.environmentId,
      seconds: round.seconds,
      requests: now.requests,
      responses4xx: now.responses4xx,
      responses5xx: now.responses5xx,
      latencyP50Seconds: histogramQuantile(0.5, now.buckets),
      latencyP95Seconds: histogramQuantile(0.95, now.buckets),
      openConnections: history.openConnections(t.hosts),
      ofThreshold,
      http5xxShare,
      latencyP95WindowSeconds,
    });
  }
  return out;
}
