import { CoreError, NotFound } from '../errors.ts';
import { defaultHosts } from '../releases/plan.ts';
import {
  nodeSeriesKeys,
  serviceSeriesKeys,
  type Series,
  type SeriesKey,
  type SeriesScope,
} from '../ports.ts';
import { assertCan } from '../roles.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';

export const metricsRanges = ['1h', '1d', '1w'] as const;
export type MetricsRange = (typeof metricsRanges)[number];

/** Each range's span and step: about 60 to 170 points, enough for a chart, cheap to read. */
export const rangeWindows: Record<MetricsRange, { seconds: number; stepSeconds: number }> = {
  '1h': { seconds: 3_600, stepSeconds: 60 },
  '1d': { seconds: 86_400, stepSeconds: 600 },
  '1w': { seconds: 604_800, stepSeconds: 3_600 },
};

export const seriesInfo: Record<
  SeriesKey,
  {
    title: string;
    unit: 'req/s' | 'seconds' | 'cores' | 'bytes' | 'ratio' | 'connections' | 'restarts';
  }
> = {
  requests: { title: 'Requests', unit: 'req/s' },
  errors_4xx: { title: '4xx responses', unit: 'req/s' },
  errors_5xx: { title: '5xx responses', unit: 'req/s' },
  latency_p50: { title: 'Latency p50', unit: 'seconds' },
  latency_p95: { title: 'Latency p95', unit: 'seconds' },
  cpu: { title: 'CPU', unit: 'cores' },
  memory: { title: 'Memory', unit: 'bytes' },
  connections: { title: 'Open connections', unit: 'connections' },
  restarts: { title: 'Restarts in 15 min', unit: 'restarts' },
  disk: { title: 'Disk used', unit: 'ratio' },
};

/**
 * What to do when no metrics backend is configured: said on the page instead of an empty
 * or broken chart.
 */
export const metricsInstallHint =
  'No Prometheus is configured. Install it (Debian/Ubuntu: apt-get install prometheus prometheus-alertmanager) and set PROMETHEUS_URL (npm start uses http://127.0.0.1:9090 when it answers); the Compose stack ships one.';

export type MetricsAnswer =
  | {
      available: true;
      source: string;
      range: MetricsRange;
      start: string;
      end: string;
      stepSeconds: number;
      series: (Series & { title: string; unit: string })[];
    }
  | { available: false; range: MetricsRange; reason: string };

/** The window of a range ending now, aligned to its step so two reads a second apart agree. */
export function windowOf(range: MetricsRange, now: Date): { start: Date; end: Date; step: number } {
  const { seconds, stepSeconds } = rangeWindows[range];
  const end = Math.floor(now.getTime() / 1000 / stepSeconds) * stepSeconds;
  return { start: new Date((end - seconds) * 1000), end: new Date(end * 1000), step: stepSeconds };
}

/** Reads one scope's series over a range, or says why there are none (never throws Unavailable). */
export async function readSeries(
  deps: CoreDeps,
  scope: SeriesScope,
  keys: readonly SeriesKey[],
  range: MetricsRange,
): Promise<MetricsAnswer> {
  const q = deps.metricsQuery;
  if (!q) return { available: false, range, reason: metricsInstallHint };
  const w = windowOf(range, deps.clock.now());
  try {
    const series = await q.series({
      scope,
      keys,
      start: w.start,
      end: w.end,
      stepSeconds: w.step,
    });
    return {
      available: true,
      source: q.source,
      range,
      start: w.start.toISOString(),
      end: w.end.toISOString(),
      stepSeconds: w.step,
      series: series.map((s) => ({ ...s, ...seriesInfo[s.key] })),
    };
  } catch (e) {
    // A backend that does not answer is a fact for the page, not a 500: the rest of the
    // page (health, releases) is what someone at 3 a.m. needs next.
    if (e instanceof CoreError)
      return { available: false, range, reason: `${e.message}. ${metricsInstallHint}` };
    throw e;
  }
}

/** Request rate, latency, errors, open connections, CPU, memory and restarts of one service environment. */
export async function getServiceMetrics(
  deps: CoreDeps,
  principal: Principal,
  serviceId: string,
  query: { environment: string; range: MetricsRange },
): Promise<MetricsAnswer & { serviceId: string; environment: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const scope = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    if (!service) throw new NotFound('service', serviceId);
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    const env = envs.items.find((e) => e.name === query.environment);
    if (!env) throw new NotFound('environment', query.environment);
    const domains = await repos.domains.list({ limit: 200 }, { serviceId: service.id });
    const hosts = [
      ...defaultHosts({ service, environment: env, edgeDomain: deps.config.edgeDomain }),
      ...domains.items
        .filter((d) => d.environmentId === env.id)
        .map((d) => d.hostname.toLowerCase()),
    ];
    return {
      kind: 'service' as const,
      orgId: p.orgId,
      serviceId: service.id,
      environmentId: env.id,
      hosts,
    };
  });
  const answer = await readSeries(deps, scope, serviceSeriesKeys, query.range);
  return { serviceId, environment: query.environment, ...answer };
}

/** CPU, memory and disk of one node. */
export async function getNodeMetrics(
  deps: CoreDeps,
  principal: Principal,
  nodeId: string,
  query: { range: MetricsRange },
): Promise<MetricsAnswer & { nodeId: string }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.nodes.get(nodeId))) throw new NotFound('node', nodeId);
  });
  const answer = await readSeries(
    deps,
    { kind: 'node', orgId: p.orgId, nodeId },
    nodeSeriesKeys,
    query.range,
  );
  return { nodeId, ...answer };
}
