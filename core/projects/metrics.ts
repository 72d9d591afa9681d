import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';
import type { Page, PageRequest } from '../models.ts';
import { projectSeriesKeys, type SeriesScope } from '../ports.ts';
import { defaultHosts } from '../releases/plan.ts';
import { assertCan } from '../roles.ts';
import { readSeries, type MetricsAnswer, type MetricsRange } from '../services/metrics.ts';
import { findProject } from './use-cases.ts';

/**
 * Every row of a list, page by page. Bounded: 10 pages of 200 is more services or domains
 * than one project holds; past that the chart covers the first 2,000.
 */
async function all<T>(list: (page: PageRequest) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 10; i++) {
    const page: Page<T> = await list({ limit: 200, cursor });
    out.push(...page.items);
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return out;
}

/**
 * Request rate, 5xx rate, p95 latency, open connections, CPU and memory of a whole project:
 * every environment of every one of its services together, read inside the caller's org (a
 * project of another org is a 404 before any series is asked for).
 */
export async function getProjectMetrics(
  deps: CoreDeps,
  principal: Principal,
  projectId: string,
  query: { range: MetricsRange },
): Promise<MetricsAnswer & { projectId: string; services: number; environments: number }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  const { scope, services, environments } = await deps.store.withOrg(p.orgId, async (repos) => {
    await findProject(repos, projectId);
    const envs = await all((page) => repos.environments.list(page, { projectId }));
    const svcs = await all((page) => repos.services.list(page, { projectId }));
    const domains = await all((page) => repos.domains.list(page, { projectId }));
    const members = svcs.flatMap((service) =>
      envs.map((env) => ({ serviceId: service.id, environmentId: env.id })),
    );
    const hosts = [
      ...svcs.flatMap((service) =>
        envs.flatMap((environment) =>
          defaultHosts({ service, environment, edgeDomain: deps.config.edgeDomain }),
        ),
      ),
      ...domains.map((d) => d.hostname.toLowerCase()),
    ];
    const scope: SeriesScope = {
      kind: 'project',
      orgId: p.orgId,
      projectId,
      members,
      hosts: [...new Set(hosts)],
    };
    return { scope, services: svcs.length, environments: envs.length };
  });
  const answer = await readSeries(deps, scope, projectSeriesKeys, query.range);
  return { projectId, services, environments, ...answer };
}
