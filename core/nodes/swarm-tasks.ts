/**
 * Following a Swarm's tasks (issue 17): the node checks ping a Swarm's manager, which keeps
 * answering when one of its members dies, so a member's loss is seen here instead, replica
 * by replica, once per check round:
 *
 * - each serving replica's task is probed at its upstream (its health path, a short
 *   timeout): one that does not answer leaves the edge at once. Swarm's own view is too
 *   slow for this: a manager marks a member down only after missing its heartbeats (three
 *   periods of 5 s by default), and until then it lists the dead member's tasks `running`
 *   and sends no event; a probe sees the dead task within a round and its timeout.
 * - each replica's service is read from the manager: once Swarm runs its task somewhere
 *   else (rescheduled off a dead member, or restarted on another port), the new address
 *   is probed and, answering, becomes the replica's upstream and joins the edge.
 *
 * A replica that answers again (a member back, a task restarted in place) rejoins the same
 * way. The edge is only written when its set differs, only from a set this release's
 * replicas make up (a switch in progress owns the route, and is not undone), and never
 * emptied (nothing better to serve). Each change is a line in the release's log (the
 * release page) and an `edge.tasks_changed` audit row.
 */
import type { NodeRecord, Release, Replica, Service } from '../models.ts';
import type { ContainerInfo, HealthProbeResult } from '../ports.ts';
import { recordAudit } from '../deps.ts';
import { upstreamOf } from './address.ts';
import { openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { defaultHosts, planRoute, replicaContainerName, routeId } from '../releases/plan.ts';
import { activeReleases, replicasOf } from '../releases/replicas.ts';

/** The audit actor of the task following. */
export const swarmTasksActor = { actorType: 'system', actorId: 'swarm-tasks' } as const;

/** What one round saw of one replica on a Swarm. */
export interface TaskSighting {
  index: number;
  /** The probe of the replica's recorded upstream answered. */
  answered: boolean;
  /** Swarm runs the replica's task at another upstream now, which answered its probe. */
  movedTo: string | null;
}

export interface SwarmEdgePlan {
  /** The replicas with moved upstreams (write when `moved` is not empty). */
  replicas: Replica[];
  /** The upstreams the edge should serve, in replica order. */
  edge: string[];
  /** Replicas whose task stopped answering: out of the edge. */
  left: number[];
  /** Replicas back in the edge (answering again, or at their new address). */
  joined: number[];
  moved: { index: number; from: string | null; to: string }[];
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x) => b.includes(x));

/**
 * What the edge and the replica set of `live` become after a round's sightings (pure).
 * Null when nothing changes, or when the edge holds an upstream none of the release's
 * replicas has (another writer owns the route: a switch, a rollback) or the edge would be
 * left empty.
 */
export function planSwarmEdge(
  live: Release,
  sightings: readonly TaskSighting[],
  edgeNow: readonly string[],
): SwarmEdgePlan | null {
  const seen = new Map(sightings.map((s) => [s.index, s]));
  const all = replicasOf(live);
  const known = new Set<string>();
  for (const r of all) if (r.upstream) known.add(r.upstream);
  for (const s of sightings) if (s.movedTo) known.add(s.movedTo);
  if (!edgeNow.every((u) => known.has(u))) return null;
  const moved: SwarmEdgePlan['moved'] = [];
  const edge: string[] = [];
  const left: number[] = [];
  const joined: number[] = [];
  const replicas = all.map((r) => {
    if (r.health === 'stopped' || r.upstream === null) return r;
    const s = seen.get(r.index);
    if (s?.movedTo && s.movedTo !== r.upstream) {
      moved.push({ index: r.index, from: r.upstream, to: s.movedTo });
      edge.push(s.movedTo);
      joined.push(r.index);
      return { ...r, upstream: s.movedTo };
    }
    if (!s || s.answered) {
      if (!edgeNow.includes(r.upstream)) joined.push(r.index);
      edge.push(r.upstream);
    } else if (edgeNow.includes(r.upstream)) left.push(r.index);
    return r;
  });
  if (edge.length === 0) return null;
  if (moved.length === 0 && sameSet(edge, edgeNow)) return null;
  return { replicas, edge, left, joined, moved };
}

export interface SwarmTasksOptions {
  /** The longest a task's probe may take; the service's own timeout when shorter. */
  probeTimeoutMs?: number;
}

/** The host of an upstream (`10.0.0.7:31000`, `[fd00::7]:31000`). */
export const hostOf = (upstream: string) =>
  upstream.slice(0, upstream.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Follows the tasks of one org's Swarm node for a round; one round per node at a time. */
export class SwarmTaskFollower {
  private readonly busy = new Set<string>();
  private readonly probeTimeoutMs: number;
  private readonly deps: ReleaseDeps;

  constructor(deps: ReleaseDeps, options: SwarmTasksOptions = {}) {
    this.deps = deps;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 1000;
  }

  /** One round on `node` (a Swarm); skipped while the previous one is still out. */
  async follow(node: NodeRecord): Promise<SwarmEdgePlan[]> {
    if (node.kind !== 'swarm' || this.busy.has(node.id)) return [];
    this.busy.add(node.id);
    try {
      return await this.round(node);
    } finally {
      this.busy.delete(node.id);
    }
  }

  private async round(node: NodeRecord): Promise<SwarmEdgePlan[]> {
    const { deps } = this;
    const active = await deps.store.withOrg(node.orgId, activeReleases);
    const serving = active.filter(
      (a) =>
        a.live?.status === 'completed' &&
        a.service.containerPort !== null &&
        replicasOf(a.live).some((r) => r.nodeId === node.id && r.health !== 'stopped'),
    );
    if (serving.length === 0) return [];
    const target = await openTarget(deps, node);
    const out: SwarmEdgePlan[] = [];
    await Promise.all(
      serving.map(async ({ service, live }) => {
        try {
          const plan = await this.followRelease(node, target, service, live!);
          if (plan) out.push(plan);
        } catch (e) {
          deps.logger.warn(
            { orgId: node.orgId, nodeId: node.id, releaseId: live!.id, err: messageOf(e) },
            'swarm tasks: a round of a release failed',
          );
        }
      }),
    );
    return out;
  }

  /**
   * The addresses of the members being emptied (availability `drain`, or `pause`: the first
   * step of selfdevop's drain, and a member that takes no new task is on its way out): their
   * tasks leave the edge, and a task Swarm runs there is not followed to.
   */
  private async leavingAddresses(
    target: Awaited<ReturnType<typeof openTarget>>,
  ): Promise<Set<string>> {
    if (!this.deps.runtime.clusterMembers) return new Set();
    try {
      const members = await this.deps.runtime.clusterMembers(target);
      return new Set(members.filter((m) => m.availability !== 'active').map((m) => m.address));
    } catch {
      // The manager did not answer this read: the probes decide alone, as before.
      return new Set();
    }
  }

  private async followRelease(
    node: NodeRecord,
    target: Awaited<ReturnType<typeof openTarget>>,
    service: Service,
    live: Release,
  ): Promise<SwarmEdgePlan | null> {
    const { deps } = this;
    const port = service.containerPort!;
    const timeoutMs = Math.min(this.probeTimeoutMs, service.health.timeoutMs);
    const probe = (upstream: string): Promise<HealthProbeResult> =>
      deps.probe
        .check(`http://${upstream}${service.healthcheckPath}`, timeoutMs)
        .catch((e: unknown) => ({ ok: false, status: null, error: messageOf(e) }));
    const mine = replicasOf(live).filter(
      (r) => r.nodeId === node.id && r.health !== 'stopped' && r.upstream !== null,
    );
    const sightings = await Promise.all(
      mine.map(async (r): Promise<TaskSighting> => {
        const [answer, info] = await Promise.all([
          probe(r.upstream!),
          deps.runtime
            .inspect(target, replicaContainerName(live, r.index))
            .catch((): ContainerInfo | null => null),
        ]);
        let movedTo: string | null = null;
        if (info?.state === 'running') {
          try {
            const now = upstreamOf(node, info, port, {
              privateAddresses: deps.config.tenantPrivateNodes ?? false,
            });
            // Where Swarm runs it now; joins only once it answers, as a candidate would.
            if (now !== r.upstream && (await probe(now)).ok) movedTo = now;
          } catch {
            // An address the node may not send traffic to: not followed (the deploy's rule).
          }
        }
        return { index: r.index, answered: answer.ok, movedTo };
      }),
    );
    const route = routeId(service.id, live.environmentId);
    const existing = await deps.edge.get(route);
    // Read after the edge: a drain pauses its member before it takes the member's tasks out
    // of the edge, so a round that saw the edge without them also sees the member leaving,
    // and does not put them back (a round that read the edge earlier writes nothing).
    const leaving = await this.leavingAddresses(target);
    const drained = new Set<number>();
    for (const s of sightings) {
      const r = mine.find((x) => x.index === s.index)!;
      if (leaving.has(hostOf(r.upstream!))) {
        s.answered = false;
        drained.add(s.index);
      }
      if (s.movedTo && leaving.has(hostOf(s.movedTo))) s.movedTo = null;
    }
    const plan = planSwarmEdge(live, sightings, existing?.upstreams ?? []);
    if (!plan) return null;
    const written = await deps.store.withOrg(node.orgId, async (repos) => {
      // Still the serving release, unchanged since the round read it: else the next round.
      const fresh = await repos.releases.get(live.id);
      if (fresh?.status !== 'completed' || fresh.updatedAt !== live.updatedAt) return false;
      const again = await deps.edge.get(route);
      if (!sameSet(again?.upstreams ?? [], existing?.upstreams ?? [])) return false;
      if (plan.moved.length > 0)
        await repos.releases.update(live.id, {
          replicaSet: { replicas: plan.replicas },
          updatedAt: deps.clock.now().toISOString(),
        });
      const environment = await repos.environments.get(live.environmentId);
      if (!environment) return false;
      const hosts =
        existing?.hosts ??
        defaultHosts({ service, environment, edgeDomain: deps.config.edgeDomain });
      await deps.edge.put(planRoute({ service, environment, upstreams: plan.edge, hosts }));
      const at = deps.clock.now().toISOString();
      const lines = [
        ...plan.left.map((i) =>
          drained.has(i)
            ? `swarm member of replica ${i} is draining: left the edge`
            : `swarm task of replica ${i} does not answer: left the edge`,
        ),
        ...plan.moved.map(
          (m) => `swarm runs replica ${m.index} at ${m.to} now (was ${m.from}): joined the edge`,
        ),
        ...plan.joined
          .filter((i) => !plan.moved.some((m) => m.index === i))
          .map((i) => `swarm task of replica ${i} answers again: joined the edge`),
      ];
      await repos.releaseLogs.append(
        live.id,
        lines.map((line) => ({ at, stream: 'system' as const, line })),
      );
      await recordAudit(deps, repos, swarmTasksActor, null, {
        action: 'edge.tasks_changed',
        targetType: 'release',
        targetId: live.id,
        data: {
          nodeId: node.id,
          serviceId: service.id,
          environmentId: live.environmentId,
          left: plan.left,
          joined: plan.joined,
          moved: plan.moved,
          upstreams: plan.edge,
        },
      });
      return true;
    });
    if (!written) return null;
    deps.logger.info(
      { orgId: node.orgId, releaseId: live.id, left: plan.left, moved: plan.moved },
      'swarm tasks: the edge follows',
    );
    return plan;
  }
}
