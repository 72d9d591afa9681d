/**
 * The node checks: every node's engine is pinged each round (core/nodes/reachability.ts
 * decides what a miss or an answer means), and a node that changes is acted on at once:
 *
 * - lost: its replicas leave the edge (the survivors' upstreams, one dynamic-upstream
 *   write, no reload), and each serving release gets a reshape to its count avoiding lost
 *   nodes (placed, started, health-gated, switched: core/releases/reshape.ts); a release
 *   that cannot be placed anywhere is named in the `node.lost` event instead.
 * - recovered: the containers of replicas replaced meanwhile are removed (never served
 *   twice), the ones still wanted are kept and join the edge again; `node.recovered`.
 *
 * Run by the self-hosted workers on a timer and by the cloud's node-checks function from an
 * EventBridge schedule (`NodeChecker.session`); the compare-and-set on the node (`recordCheck`) makes one checker
 * act on a change when several run.
 */
import { isCoreError } from '../errors.ts';
import type { NodeRecord, Release, Replica } from '../models.ts';
import type { DockerTarget, Metrics, OrgRepos } from '../ports.ts';
import { recordAudit } from '../deps.ts';
import { metricNames } from '../alerts/rules.ts';
import { upstreamOf } from './address.ts';
import { retryUnplaced } from './unplaced.ts';
import { openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { defaultHosts, planRoute, replicaContainerName, routeId } from '../releases/plan.ts';
import { planReshape, sendReshape } from '../releases/reshape.ts';
import {
  activeReleases,
  allNodes,
  engineCapacities,
  placedUsage,
  replicasOf,
} from '../releases/replicas.ts';
import {
  decideNodeCheck,
  defaultNodeCheckPolicy,
  type NodeCheckOutcome,
  type NodeCheckPolicy,
} from './reachability.ts';
import { planNodeLoss, planNodeReturn, type LossStep } from './node-loss.ts';
import { SwarmTaskFollower } from './swarm-tasks.ts';

/** The audit actor of what the node checks do. */
export const nodeChecksActor = { actorType: 'system', actorId: 'node-checks' } as const;

export interface NodeCheckDeps {
  release: ReleaseDeps;
  /** Where `selfdevop_node_up` and `selfdevop_node_last_seen_timestamp_seconds` go. */
  metrics?: Metrics;
  policy?: Partial<NodeCheckPolicy>;
}

/** How long a scheduled session of rounds runs (`NodeChecker.session`). */
export interface NodeCheckSession {
  /** Rounds when no org has a Swarm node: enough to count misses in a row. */
  rounds: number;
  /** Rounds at most with a Swarm node; the remaining time ends a session before. */
  maxRounds: number;
  /** The invocation's time kept for the last round and what it set off. */
  marginMs: number;
}

/** One node's result in a round, for logs and tests. */
export interface NodeCheckResult {
  orgId: string;
  nodeId: string;
  /** A Swarm's tasks are followed each round too: a session keeps rounds coming for them. */
  kind: NodeRecord['kind'];
  answered: boolean;
  change: 'lost' | 'recovered' | null;
}

/** The Metrics port names families `selfdevop_<name>` itself; rules.ts has the full names. */
const portName = (full: string) => full.replace(/^selfdevop_/, '');
const nodeUpMetric = portName(metricNames.nodeUp);
const nodeLastSeenMetric = portName(metricNames.nodeLastSeen);

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Checks nodes; holds the pings still in flight so that a hung engine (a frozen node: the
 * connection opens, nothing answers) is one pending ping, never one more per round, and
 * never holds up the checks of other nodes.
 */
export class NodeChecker {
  readonly policy: NodeCheckPolicy;
  private readonly deps: NodeCheckDeps;
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Losses and returns being handled: off the round, whose pace they must not set. */
  private readonly handling = new Set<Promise<void>>();
  /** A Swarm's manager answers for its members: their tasks are followed each round. */
  private readonly swarmTasks: SwarmTaskFollower;

  constructor(deps: NodeCheckDeps) {
    this.deps = deps;
    this.policy = { ...defaultNodeCheckPolicy, ...deps.policy };
    this.swarmTasks = new SwarmTaskFollower(deps.release);
  }

  /** One round over every org's nodes; an org that fails is logged, the others go on. */
  async round(): Promise<NodeCheckResult[]> {
    const { release } = this.deps;
    const orgs = await release.store.nodeLookup.orgsWithNodes();
    const results = await Promise.all(
      orgs.map((orgId) =>
        this.checkOrg(orgId).catch((e: unknown) => {
          release.logger.warn({ orgId, err: messageOf(e) }, 'node checks of an org failed');
          return [] as NodeCheckResult[];
        }),
      ),
    );
    return results.flat();
  }

  private async checkOrg(orgId: string): Promise<NodeCheckResult[]> {
    const { release } = this.deps;
    const nodes = await release.store.withOrg(orgId, allNodes);
    const outcomes = await Promise.all(nodes.map((n) => this.ping(n)));
    const out: NodeCheckResult[] = [];
    for (const [i, node] of nodes.entries()) {
      const outcome = outcomes[i]!;
      const now = release.clock.now();
      const decision = decideNodeCheck(node, outcome, now, this.policy);
      let change = decision.change;
      if (decision.record) {
        const record = decision.record;
        const moved = await release.store.withOrg(orgId, (r) =>
          r.nodes.recordCheck(node.id, node.reachability, record),
        );
        // Another checker moved it first: it acts on the change, this one does not.
        if (!moved) change = null;
      }
      // The gauge is exact; the row's time is written only every few seconds.
      const seen = outcome.answered
        ? now.toISOString()
        : (decision.record?.lastSeenAt ?? node.lastSeenAt);
      const labels = { org: orgId, node: node.id };
      this.deps.metrics?.gauge(nodeUpMetric, outcome.answered ? 1 : 0, labels);
      if (seen) this.deps.metrics?.gauge(nodeLastSeenMetric, Date.parse(seen) / 1000, labels);
      const updated: NodeRecord = { ...node, ...decision.record };
      if (change === 'lost') {
        release.logger.warn(
          { orgId, nodeId: node.id, error: outcome.answered ? null : outcome.error },
          'node lost: its replicas leave the edge and are replaced',
        );
        this.detach(handleNodeLost(release, updated), orgId, node.id, 'node loss not handled');
      } else if (change === 'recovered') {
        release.logger.info({ orgId, nodeId: node.id }, 'node answers again');
        this.detach(
          handleNodeRecovered(release, updated, node.reachabilitySince),
          orgId,
          node.id,
          'node return not handled',
        );
      }
      // A member of a Swarm dies without its manager missing a check: its tasks are
      // followed (probed, and read for where Swarm runs them now) beside the round.
      if (node.kind === 'swarm' && outcome.answered && change === null)
        this.detach(this.swarmTasks.follow(updated), orgId, node.id, 'swarm tasks not followed');
      out.push({ orgId, nodeId: node.id, kind: node.kind, answered: outcome.answered, change });
    }
    return out;
  }

  /**
   * Handling a change talks to other engines and the edge (capacity, a list, a remove), any
   * of which may be slow or hung: it runs beside the rounds, which keep their pace.
   */
  private detach(work: Promise<unknown>, orgId: string, nodeId: string, what: string): void {
    const done: Promise<void> = work.then(
      () => undefined,
      (e: unknown) => this.deps.release.logger.error({ orgId, nodeId, err: messageOf(e) }, what),
    );
    this.handling.add(done);
    void done.finally(() => this.handling.delete(done));
  }

  /** Resolves once every loss and return handled so far is done (a clean stop, tests). */
  async settled(): Promise<void> {
    while (this.handling.size > 0) await Promise.all([...this.handling]);
  }

  /**
   * Rounds every `intervalMs` until `stop` is called, which resolves after the round and
   * the handling in progress. A round is bounded by `timeoutMs` per ping, so the loop
   * keeps its pace whatever the engines do.
   */
  start(): () => Promise<void> {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake: (() => void) | undefined;
    const loop = (async () => {
      while (!stopped) {
        const began = this.deps.release.clock.now().getTime();
        await this.round().catch((e: unknown) =>
          this.deps.release.logger.warn({ err: messageOf(e) }, 'node check round failed'),
        );
        if (stopped) break;
        const wait = Math.max(
          0,
          this.policy.intervalMs - (this.deps.release.clock.now().getTime() - began),
        );
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, wait);
        });
      }
    })();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await loop;
      await this.settled();
    };
  }

  /**
   * One scheduled invocation's rounds where no timer runs them (the cloud's node-checks
   * function, fired once a minute), `intervalMs` apart. Engines alone need only
   * `session.rounds` of them: enough misses in a row to lose a node. A Swarm needs more: its
   * dead tasks are seen only by the rounds' task following (swarm-tasks.ts), so while any
   * org has a Swarm node the rounds go on until the invocation's remaining time falls below
   * `session.marginMs`, the time a last round and the losses and returns it started take
   * to finish. Sessions then follow each other minute after minute, and the cloud drops a
   * dead task within seconds as self-hosted does; when two overlap, the node's
   * compare-and-set and the following's (`recordCheck`, the edge and release read again
   * before a write) leave one checker to act on each change.
   */
  async session(
    remainingMs: () => number,
    session: NodeCheckSession,
  ): Promise<{ rounds: number; swarm: boolean }> {
    const { clock, logger } = this.deps.release;
    let rounds = 0;
    let swarm = false;
    for (;;) {
      const began = clock.now().getTime();
      const results = await this.round().catch((e: unknown) => {
        logger.warn({ err: messageOf(e) }, 'node check round failed');
        return [] as NodeCheckResult[];
      });
      rounds++;
      swarm ||= results.some((r) => r.kind === 'swarm');
      if (rounds >= (swarm ? session.maxRounds : session.rounds)) break;
      const wait = Math.max(0, this.policy.intervalMs - (clock.now().getTime() - began));
      // The next round must start, and end with its handling, before the margin is reached.
      if (remainingMs() - wait < session.marginMs) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    await this.settled();
    return { rounds, swarm };
  }

  private async ping(node: NodeRecord): Promise<NodeCheckOutcome> {
    const { release } = this.deps;
    if (this.pending.has(node.id))
      return { answered: false, error: 'the previous check has not been answered yet' };
    const ping = (async () => {
      const target = await openTarget(release, node);
      await release.runtime.ping(target);
    })();
    const tracked = ping.then(
      () => undefined,
      () => undefined,
    );
    this.pending.set(node.id, tracked);
    void tracked.finally(() => {
      if (this.pending.get(node.id) === tracked) this.pending.delete(node.id);
    });
    const timeoutMs = timeoutFor(node, this.policy);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<NodeCheckOutcome>((resolve) => {
      timer = setTimeout(
        () => resolve({ answered: false, error: `no answer within ${timeoutMs} ms` }),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([
        ping.then(
          (): NodeCheckOutcome => ({ answered: true }),
          (e: unknown): NodeCheckOutcome => {
            // Only a connection that fails or times out is a miss. An engine that refuses
            // selfdevop's certificate or key (or credentials that do not open) answered: it
            // is misconfigured, not gone, and its replicas may well serve; deploys there
            // fail naming the refusal.
            const refusedHandshake =
              isCoreError(e) &&
              (e.details as { refusedHandshake?: boolean } | undefined)?.refusedHandshake === true;
            if (isCoreError(e) && e.kind === 'unavailable' && !refusedHandshake)
              return { answered: false, error: messageOf(e) };
            release.logger.warn(
              { orgId: node.orgId, nodeId: node.id, err: messageOf(e) },
              'node check: the engine refused the connection; not counted as a miss',
            );
            return { answered: true };
          },
        ),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * How long one ping of `node` may take: a local socket answers at once; TLS adds a
 * handshake, and SSH a login and a `docker system dial-stdio` on the node for each new
 * connection (the adapter keeps it open between checks, so only the first is slow).
 */
export function timeoutFor(node: Pick<NodeRecord, 'dockerHost'>, policy: NodeCheckPolicy): number {
  if (node.dockerHost.startsWith('ssh://')) return Math.max(policy.timeoutMs, 5_000);
  if (node.dockerHost.startsWith('tcp://')) return Math.max(policy.timeoutMs, 2_000);
  return policy.timeoutMs;
}

/** Puts the route of `live` on `upstreams` (hosts as the edge has them); none: left as it is. */
async function pointEdge(
  deps: ReleaseDeps,
  repos: OrgRepos,
  live: Release,
  upstreams: string[],
): Promise<boolean> {
  if (upstreams.length === 0) return false;
  const service = await repos.services.get(live.serviceId);
  const environment = await repos.environments.get(live.environmentId);
  if (!service || !environment || service.containerPort === null) return false;
  const existing = await deps.edge.get(routeId(service.id, environment.id));
  const hosts =
    existing?.hosts ?? defaultHosts({ service, environment, edgeDomain: deps.config.edgeDomain });
  await deps.edge.put(planRoute({ service, environment, upstreams, hosts }));
  return true;
}

export interface LossOutcome extends LossStep {
  /** `replacing`: a reshape is queued; `unplaceable`: no eligible node takes them (`reason`). */
  action: 'replacing' | 'unplaceable';
  reason?: string;
  /** Whether the edge now serves the survivors only (false: none survives, the route is left). */
  edgeUpdated: boolean;
}

/** A node just became lost: its replicas leave the edge, then replacements are queued. */
export async function handleNodeLost(deps: ReleaseDeps, node: NodeRecord): Promise<LossOutcome[]> {
  const loaded = await deps.store.withOrg(node.orgId, async (repos) => ({
    nodes: await allNodes(repos),
    active: await activeReleases(repos),
    used: await placedUsage(repos),
  }));
  const lostIds = new Set(
    loaded.nodes.filter((n) => n.reachability === 'lost' || n.id === node.id).map((n) => n.id),
  );
  const nodes = loaded.nodes.map((n) =>
    lostIds.has(n.id) ? { ...n, reachability: 'lost' as const } : n,
  );
  const steps = planNodeLoss(loaded.active, node.id, lostIds);
  // The edge first, for every service at once: the replacements take a health gate each.
  const edgeUpdated = await Promise.all(
    steps.map((s) =>
      deps.store
        .withOrg(node.orgId, async (repos) => {
          const live = loaded.active.find((a) => a.live?.id === s.releaseId)!.live!;
          return pointEdge(deps, repos, live, s.survivors);
        })
        .catch((e: unknown) => {
          deps.logger.error(
            { releaseId: s.releaseId, err: messageOf(e) },
            'could not take a lost node out of the edge',
          );
          return false;
        }),
    ),
  );
  const capacity = await engineCapacities(
    deps,
    nodes.filter((n) => !lostIds.has(n.id)),
  );
  const outcomes: LossOutcome[] = [];
  for (const [i, s] of steps.entries()) {
    const { service, live } = loaded.active.find((a) => a.live?.id === s.releaseId)!;
    const full = await deps.store.withOrg(node.orgId, (r) => r.services.get(service.id));
    // Deleted meanwhile: its removal takes its containers and route.
    if (!full) continue;
    let outcome: LossOutcome;
    try {
      planReshape(full, live!, s.desired, [...lostIds], nodes, capacity, loaded.used);
      await sendReshape(deps, live!, {
        replicas: s.desired,
        avoid: [...lostIds],
        reason: `node ${node.name} lost`,
      });
      outcome = { ...s, action: 'replacing', edgeUpdated: edgeUpdated[i]! };
    } catch (e) {
      if (!isCoreError(e)) throw e;
      // No loop: nothing is retried until a node changes (core/nodes/unplaced.ts: registered,
      // undrained, or answering again).
      outcome = { ...s, action: 'unplaceable', reason: e.message, edgeUpdated: edgeUpdated[i]! };
    }
    outcomes.push(outcome);
    await deps.store.withOrg(node.orgId, (repos) =>
      repos.releaseLogs.append(s.releaseId, [
        {
          at: deps.clock.now().toISOString(),
          stream: 'system',
          line:
            `node ${node.name} lost: replica ${s.lost.join(', ')} left the edge` +
            (outcome.edgeUpdated ? '' : ' (no replica survives: the route is left as it was)') +
            (outcome.action === 'replacing'
              ? `; restoring ${s.desired} replicas on the other nodes`
              : `; not replaced: ${outcome.reason}`),
        },
      ]),
    );
  }
  await deps.store.withOrg(node.orgId, (repos) =>
    recordAudit(deps, repos, nodeChecksActor, null, {
      action: 'node.lost',
      targetType: 'node',
      targetId: node.id,
      data: {
        nodeId: node.id,
        name: node.name,
        lastSeenAt: node.lastSeenAt,
        releases: outcomes.map((o) => ({
          releaseId: o.releaseId,
          serviceId: o.serviceId,
          environmentId: o.environmentId,
          lostReplicas: o.lost,
          desired: o.desired,
          action: o.action,
          ...(o.reason ? { reason: o.reason } : {}),
        })),
      },
    }),
  );
  return outcomes;
}

export interface ReturnOutcome {
  removed: { name: string; releaseId: string; reason: string }[];
  kept: string[];
  /** Serving releases whose replicas on this node serve again. */
  rejoined: string[];
  /** Releases still short of their count (unplaced while nodes were lost), now being restored. */
  replacing: string[];
  errors: string[];
}

/**
 * A lost node answers again: stale containers (replaced meanwhile, or of releases that no
 * longer serve) are removed; replicas still wanted rejoin the edge at the address the
 * engine now publishes them on (a restarted engine may publish another port).
 */
export async function handleNodeRecovered(
  deps: ReleaseDeps,
  node: NodeRecord,
  lostSince: string | null,
): Promise<ReturnOutcome> {
  const out: ReturnOutcome = { removed: [], kept: [], rejoined: [], replacing: [], errors: [] };
  const target: DockerTarget = await openTarget(deps, node);
  const { active, nodes } = await deps.store.withOrg(node.orgId, async (repos) => ({
    active: await activeReleases(repos),
    nodes: await allNodes(repos),
  }));
  const containers = await deps.runtime.list(target, { 'selfdevop.org': node.orgId });
  const plan = planNodeReturn(node.id, containers, active);
  out.kept = plan.keep;
  for (const c of plan.remove) {
    try {
      await deps.runtime.remove(target, c.name);
      out.removed.push(c);
    } catch (e) {
      out.errors.push(`${c.name}: ${messageOf(e)}`);
    }
  }
  const lost = new Set(nodes.filter((n) => n.reachability === 'lost').map((n) => n.id));
  for (const releaseId of plan.rejoin) {
    const live = active.find((a) => a.live?.id === releaseId)!.live!;
    try {
      const rejoined = await deps.store.withOrg(node.orgId, async (repos) => {
        const service = await repos.services.get(live.serviceId);
        if (!service || service.containerPort === null) return false;
        const port = service.containerPort;
        const replicas: Replica[] = replicasOf(live).map((r) => {
          if (r.nodeId !== node.id || r.health === 'stopped') return r;
          const name = replicaContainerName(live, r.index);
          const info = containers.find((c) => c.name === name || c.name === `/${name}`);
          if (!info || info.state !== 'running') return r;
          try {
            const upstream = upstreamOf(node, info, port, {
              privateAddresses: deps.config.tenantPrivateNodes ?? false,
            });
            return { ...r, upstream };
          } catch {
            return r;
          }
        });
        const upstreams = replicas
          .filter((r) => r.health !== 'stopped' && !lost.has(r.nodeId) && r.upstream)
          .map((r) => r.upstream!);
        await repos.releases.update(live.id, {
          replicaSet: { replicas },
          updatedAt: deps.clock.now().toISOString(),
        });
        return pointEdge(deps, repos, live, upstreams);
      });
      if (rejoined) out.rejoined.push(releaseId);
    } catch (e) {
      out.errors.push(`${releaseId}: ${messageOf(e)}`);
    }
  }
  try {
    // Capacity is back: replicas that found no place while it was lost are placed now (on
    // this node or another), not at the next deploy.
    out.replacing = await retryUnplaced(deps, node.orgId, `node ${node.name} answers again`);
  } catch (e) {
    out.errors.push(`replacing unplaced replicas: ${messageOf(e)}`);
  }
  await deps.store.withOrg(node.orgId, async (repos) => {
    for (const c of out.removed)
      await repos.releaseLogs.append(c.releaseId, [
        {
          at: deps.clock.now().toISOString(),
          stream: 'system',
          line: `node ${node.name} answers again: stale container ${c.name} removed (${c.reason})`,
        },
      ]);
    await recordAudit(deps, repos, nodeChecksActor, null, {
      action: 'node.recovered',
      targetType: 'node',
      targetId: node.id,
      data: {
        nodeId: node.id,
        name: node.name,
        lostSince,
        removed: out.removed,
        kept: out.kept,
        rejoined: out.rejoined,
        replacing: out.replacing,
        ...(out.errors.length ? { errors: out.errors } : {}),
      },
    });
  });
  return out;
}
