/**
 * A release's replicas as the steps, scale and drain see them, and the placement of new
 * ones from what the store and the engines say (capacity, what selfdevop placed).
 */
import { inFlightReleaseStatuses } from '../models.ts';
import type { NodeRecord, Release, Replica, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { liveReleaseStatuses } from '../edge/live-routes.ts';
import { openTarget, type ReleaseDeps } from './deps.ts';
import { addUsage, placeReplicas, PlacementUnfit, type Resources } from './placement.ts';

/** The replicas of `release`; one made of its own fields for a release from before 0020. */
export function replicasOf(release: Release): Replica[] {
  // An empty list is a stopped service (scaled to 0), not a release from before 0020.
  const listed = release.replicaSet?.replicas;
  if (listed) return listed;
  if (!release.nodeId) return [];
  return [
    {
      index: 0,
      nodeId: release.nodeId,
      containerId: release.containerId,
      upstream: release.upstream,
      health: release.containerId ? 'healthy' : 'planned',
    },
  ];
}

/** The upstreams a release serves at, in replica order. */
export const upstreamsOf = (release: Release): string[] =>
  replicasOf(release)
    .filter((r) => r.health !== 'stopped' && r.upstream !== null)
    .map((r) => r.upstream!);

/** Every node of the org (bounded: 50 pages of 200). */
export async function allNodes(repos: OrgRepos): Promise<NodeRecord[]> {
  const out: NodeRecord[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const { items, nextCursor }: { items: NodeRecord[]; nextCursor: string | null } =
      await repos.nodes.list({ limit: 200, cursor });
    out.push(...items);
    if (!nextCursor) break;
    cursor = nextCursor;
  }
  return out;
}

/**
 * Each service environment's serving release and its release in flight, if any, in the
 * order of the services and their project's environments. Two reads of releases for the
 * whole org: one per service environment (as before) made every placement, scale and node
 * check cost 2 × services queries, which with 200 services was most of a deploy's overhead.
 */
export async function activeReleases(
  repos: OrgRepos,
): Promise<{ service: Service; live: Release | null; inFlight: Release | null }[]> {
  const out: { service: Service; live: Release | null; inFlight: Release | null }[] = [];
  const key = (r: Pick<Release, 'serviceId' | 'environmentId'>) =>
    `${r.serviceId} ${r.environmentId}`;
  const byKey = (rs: Release[]) => new Map(rs.map((r) => [key(r), r]));
  const [live, inFlight] = [
    byKey(await repos.releases.latestOfEach([...liveReleaseStatuses])),
    byKey(await repos.releases.latestOfEach([...inFlightReleaseStatuses])),
  ];
  // One read per project, not per service: an org of 200 services has a few projects.
  const envsOf = new Map<string, { id: string }[]>();
  let cursor: string | null = null;
  for (let page = 0; page < 50; page++) {
    const { items, nextCursor }: { items: Service[]; nextCursor: string | null } =
      await repos.services.list({ limit: 200, cursor });
    for (const service of items) {
      let envs = envsOf.get(service.projectId);
      if (!envs) {
        envs = (await repos.environments.list({ limit: 200 }, { projectId: service.projectId }))
          .items;
        envsOf.set(service.projectId, envs);
      }
      for (const env of envs) {
        const k = key({ serviceId: service.id, environmentId: env.id });
        const l = live.get(k) ?? null;
        const f = inFlight.get(k) ?? null;
        if (l || f) out.push({ service, live: l, inFlight: f });
      }
    }
    if (!nextCursor) break;
    cursor = nextCursor;
  }
  return out;
}

/** What selfdevop's replicas take on each node: serving sets and candidates alike. */
export async function placedUsage(
  repos: OrgRepos,
  exceptReleaseId?: string,
): Promise<Record<string, Resources>> {
  const used: Record<string, Resources> = {};
  for (const { service, live, inFlight } of await activeReleases(repos)) {
    for (const r of [live, inFlight]) {
      if (!r || r.id === exceptReleaseId) continue;
      for (const replica of replicasOf(r)) {
        if (replica.health === 'stopped') continue;
        addUsage(used, replica.nodeId, service.memoryMb, service.cpus);
      }
    }
  }
  return used;
}

/**
 * Each node's engine size, asked of the engines this process reaches; a node that does not
 * answer (or a process with no engine, the cloud's API) has no known limit here, and the
 * worker's placement, which does reach it, decides.
 */
export async function engineCapacities(
  deps: Pick<ReleaseDeps, 'runtime' | 'vault'>,
  nodes: readonly NodeRecord[],
): Promise<Record<string, Resources>> {
  const out: Record<string, Resources> = {};
  if (!deps.runtime.capacity) return out;
  await Promise.all(
    nodes.map(async (n) => {
      // A lost node is not asked: a hung engine would hold the caller for its whole timeout.
      if (n.drainMode || n.reachability === 'lost') return;
      try {
        const target = await openTarget(deps, n);
        out[n.id] = await deps.runtime.capacity!(target);
      } catch {
        // Unknown, not zero: a node the API cannot reach may well be reachable by the worker.
      }
    }),
  );
  return out;
}

/** Nodes for `count` new replicas of `service`, or PlacementUnfit (409) saying what is missing. */
export function placeOrThrow(
  service: Service,
  count: number,
  nodes: readonly NodeRecord[],
  capacity: Record<string, Resources>,
  used: Record<string, Resources>,
  keep: readonly string[] = [],
  avoid: readonly string[] = [],
): string[] {
  const placed = placeReplicas({
    count,
    labels: service.placement?.labels ?? {},
    nodes: nodes.map((n) => (avoid.includes(n.id) ? { ...n, drainMode: true } : n)),
    capacity,
    used,
    memoryMb: service.memoryMb,
    cpus: service.cpus,
    keep,
  });
  if (!placed.ok) throw new PlacementUnfit(placed.code, placed.reason);
  return placed.nodeIds;
}

/** The planned replica set of a new release on `nodeIds`. */
export const plannedReplicas = (nodeIds: readonly string[]): Replica[] =>
  nodeIds.map((nodeId, index) => ({
    index,
    nodeId,
    containerId: null,
    upstream: null,
    health: 'planned' as const,
  }));
