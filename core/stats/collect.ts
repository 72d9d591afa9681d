import { alertRuleById } from '../alerts/rules.ts';
import { recordAudit } from '../deps.ts';
import { defaultHosts } from '../releases/plan.ts';
import { openNodeTarget } from '../nodes/credentials.ts';
import { allNodes } from '../releases/replicas.ts';
import type {
  AlertTarget,
  BackupHealth,
  CertificateExpiry,
  Clock,
  ContainerInfo,
  ContainerRuntime,
  DockerTarget,
  EdgeRouter,
  EventQueue,
  IdGenerator,
  KeyVault,
  Logger,
  NodeUsage,
  OrgRepos,
  ReplicaUsage,
  ServiceTraffic,
  Store,
  UsageSink,
  UsageSnapshot,
} from '../ports.ts';
import type {
  AuditEvent,
  DataService,
  DataServiceBackup,
  Domain,
  NodeRecord,
  Page,
} from '../models.ts';
import type { EventPublisher } from '../webhooks/events.ts';
import { RestartHistory } from './crash-loop.ts';
import { EdgeTrafficHistory, serviceTraffic } from './edge-traffic.ts';
import { cpuRatioBetween, parseNodeProbe, planNodeProbe, type CpuCounters } from './node-probe.ts';

export interface UsageConfig {
  /** The node probe's image (with `sh`, `head`, `grep`, `df`); it must be on each node, never pulled. */
  nodeProbeImage: string;
  /** A node is probed at most this often: each probe is a one-off container on it. */
  nodeProbeEverySeconds: number;
  /**
   * Containers measured at once on one node (two engine calls each); 32 unless set. A
   * one-shot stats call costs the engine little CPU but may wait up to its 1 s sampling
   * tick, so 100 containers 4 at a time took 25 s, longer than the interval.
   */
  concurrency?: number;
}

export interface UsageDeps {
  store: Store;
  runtime: ContainerRuntime;
  vault: KeyVault;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  /** Where `replica.crash_looping` goes beyond the audit trail (webhooks, channels). */
  events?: EventPublisher;
  sink: UsageSink;
  config: UsageConfig;
  /**
   * The edge whose per-host counters are read with each collection, and the domain of the
   * default hosts (the cloud only: self-hosted, Prometheus scrapes Caddy itself).
   */
  edgeTraffic?: { edge: Pick<EdgeRouter, 'traffic'>; edgeDomain: string };
  /** Queues whose waiting messages are measured with each collection (self-hosted only). */
  queueDepths?: { queue: Pick<EventQueue, 'depth'>; names: readonly string[] };
}

/** The audit actor of what the collector reports. */
export const usageActor = { actorType: 'system', actorId: 'usage-collector' } as const;
/** The event of a replica whose restarts reached its service's crash-loop threshold. */
export const crashLoopingEvent = 'replica.crash_looping';
/** The crash-loop rule's window: restarts counted within it (its `thresholdMeaning`). */
export const crashLoopWindowSeconds = alertRuleById('crash_loop')!.windowSeconds!;
/** The roles of a service's replicas (a migration one-off is not a replica). */
const replicaRoles = new Set(['web', 'worker']);

/** A replica's figures with what the crash-loop report needs (not exported as labels). */
type Measured = ReplicaUsage & { containerId: string; releaseId: string };

interface NodeState {
  cpu: CpuCounters | null;
  probedAt: number;
  usage: Omit<NodeUsage, 'orgId' | 'nodeId'>;
  /** The last failure, logged once until it changes. */
  failure: string | null;
}

/**
 * Measures every replica and node of every org that serves something, and hands the
 * snapshot to the sink. It keeps, between collections, what a rate needs (each container's
 * previous CPU time, each node's previous CPU counters) and the restart history of the
 * crash-loop check, so one instance runs per process, on an interval.
 */
export class UsageCollector {
  readonly #deps: UsageDeps;
  readonly #cpu = new Map<string, { seconds: number; at: number }>();
  readonly #nodes = new Map<string, NodeState>();
  readonly #restarts = new RestartHistory(crashLoopWindowSeconds * 1000);
  readonly #backupCache = new Map<string, { at: number; health: BackupHealth[] }>();
  readonly #certificateCache = new Map<string, { at: number; expiries: CertificateExpiry[] }>();
  /** Containers reported as looping in this episode (cleared when they calm down). */
  readonly #looping = new Set<string>();
  readonly #edge = new EdgeTrafficHistory();
  /** The last failure to read the edge, logged once until it changes. */
  #edgeFailure: string | null = null;

  constructor(deps: UsageDeps) {
    this.#deps = deps;
  }

  /** One collection; a node that cannot be asked is logged and left out, never a failure of all. */
  async collect(): Promise<UsageSnapshot> {
    const d = this.#deps;
    const targets = (await d.store.alertTargetLookup?.alertTargets()) ?? [];
    const thresholds = new Map<string, number>();
    const orgs = new Set<string>();
    for (const t of targets) {
      orgs.add(t.orgId);
      thresholds.set(t.serviceId, crashLoopThreshold(t));
    }
    // Every org with a node, not only those with a routed service: workers, cron jobs and
    // data services run there too, and a node's own CPU, memory and disk count regardless.
    for (const orgId of await d.store.nodeLookup.orgsWithNodes()) orgs.add(orgId);
    const replicas: Measured[] = [];
    const nodes: NodeUsage[] = [];
    const backups: BackupHealth[] = [];
    const certificates: CertificateExpiry[] = [];
    const seen = new Set<string>();
    for (const orgId of [...orgs].sort()) {
      backups.push(...(await this.#backups(orgId)));
      certificates.push(...(await this.#certificates(orgId)));
      // A lost node is not asked: the node checks own it, and a hung engine would hold
      // every collection up until its calls time out.
      const orgNodes = (await d.store.withOrg(orgId, (repos) => allNodes(repos))).filter(
        (n) => n.reachability !== 'lost',
      );
      await Promise.all(
        orgNodes.map(async (node) => {
          try {
            const target = await openNodeTarget(d.vault, node);
            const [measured, usage] = await Promise.all([
              this.#replicasOn(node, target, seen),
              this.#node(node, target),
            ]);
            replicas.push(...measured);
            if (usage) nodes.push(usage);
          } catch (e) {
            d.logger.warn(
              { nodeId: node.id, orgId, err: (e as Error).message },
              'usage: the node could not be measured',
            );
          }
        }),
      );
    }
    this.#restarts.keepOnly(seen);
    for (const id of this.#cpu.keys()) if (!seen.has(id)) this.#cpu.delete(id);
    for (const id of this.#looping) if (!seen.has(id)) this.#looping.delete(id);
    // Once per collection, before the sink: the cloud's crash_loop alarm reads this figure,
    // and the crash-loop report below reads the same one.
    const now = d.clock.now().getTime();
    for (const r of replicas)
      r.restartsInWindow = this.#restarts.observe(r.containerId, r.restarts, now);
    const traffic = d.edgeTraffic ? await this.#traffic(d.edgeTraffic, targets) : undefined;
    const snapshot: UsageSnapshot = {
      at: d.clock.now().toISOString(),
      replicas: replicas.map(({ containerId: _c, releaseId: _r, ...r }) => r),
      nodes,
      backups,
      certificates,
      ...(traffic ? { traffic } : {}),
      ...(d.queueDepths ? { queues: await this.#queueDepths(d.queueDepths) } : {}),
    };
    await d.sink.publish(snapshot);
    await this.#reportCrashLoops(replicas, thresholds);
    return snapshot;
  }

  async #replicasOn(
    node: NodeRecord,
    target: DockerTarget,
    seen: Set<string>,
  ): Promise<Measured[]> {
    const d = this.#deps;
    const listed = await d.runtime.list(target, { 'selfdevop.org': node.orgId });
    const live = listed.filter(
      (c) =>
        replicaRoles.has(c.labels['selfdevop.role'] ?? '') &&
        (c.state === 'running' || c.state === 'restarting'),
    );
    const out: Measured[] = [];
    const queue = [...live];
    const worker = async () => {
      for (let c = queue.shift(); c; c = queue.shift()) {
        const measured = await this.#replica(node, target, c).catch((e: Error) => {
          d.logger.debug({ container: c!.name, err: e.message }, 'usage: container not measured');
          return null;
        });
        if (measured) {
          seen.add(c.id);
          out.push(measured);
        }
      }
    };
    await Promise.all(Array.from({ length: d.config.concurrency ?? 32 }, worker));
    return out;
  }

  async #replica(
    node: NodeRecord,
    target: DockerTarget,
    c: ContainerInfo,
  ): Promise<Measured | null> {
    const d = this.#deps;
    const [info, usage] = await Promise.all([
      d.runtime.inspect(target, c.id),
      d.runtime.usage ? d.runtime.usage(target, c.id) : Promise.resolve(null),
    ]);
    if (!info) return null;
    const now = d.clock.now().getTime();
    let cpuCores: number | null = null;
    if (usage) {
      const before = this.#cpu.get(c.id);
      if (before && now > before.at && usage.cpuSeconds >= before.seconds)
        cpuCores = (usage.cpuSeconds - before.seconds) / ((now - before.at) / 1000);
      this.#cpu.set(c.id, { seconds: usage.cpuSeconds, at: now });
    }
    return {
      orgId: node.orgId,
      serviceId: c.labels['selfdevop.service'] ?? '',
      environmentId: c.labels['selfdevop.environment'] ?? '',
      replica: replicaIndexOf(c.name),
      nodeId: node.id,
      cpuSeconds: usage?.cpuSeconds ?? null,
      cpuCores,
      memoryBytes: usage?.memoryBytes ?? null,
      restarts: info.restarts ?? 0,
      containerId: c.id,
      releaseId: c.labels['selfdevop.release'] ?? '',
    };
  }

  /**
   * Each data service's failed backups or drills in a row, read from the store at most once
   * a minute per org (they change at most hourly: schedules are hourly at the most).
   */
  async #backups(orgId: string): Promise<BackupHealth[]> {
    const d = this.#deps;
    const now = d.clock.now().getTime();
    const cached = this.#backupCache.get(orgId);
    if (cached && now - cached.at < 60_000) return cached.health;
    const health = await d.store
      .withOrg(orgId, async (repos) => {
        const out: BackupHealth[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < 10; page++) {
          const { items, nextCursor }: Page<DataService> = await repos.dataServices.list({
            limit: 200,
            cursor,
          });
          for (const s of items)
            out.push({
              orgId,
              dataServiceId: s.id,
              failuresInARow: backupFailuresInARow(await repos.dataServiceBackups.list(s.id)),
            });
          if (!nextCursor) break;
          cursor = nextCursor;
        }
        return out;
      })
      .catch((e: Error) => {
        d.logger.warn({ orgId, err: e.message }, 'usage: backups could not be read');
        return cached?.health ?? [];
      });
    this.#backupCache.set(orgId, { at: now, health });
    return health;
  }

  /**
   * The edge's figures per live service environment: one read of the edge's counters per
   * collection, deltas against the previous one. An edge that cannot be read leaves the
   * figures out (a gap, never 0) and the next read a round spanning the gap.
   */
  async #traffic(
    e: NonNullable<UsageDeps['edgeTraffic']>,
    targets: readonly AlertTarget[],
  ): Promise<ServiceTraffic[] | undefined> {
    if (!e.edge.traffic) return undefined;
    try {
      const counters = await e.edge.traffic();
      this.#edgeFailure = null;
      this.#edge.observe(counters, this.#deps.clock.now().getTime());
    } catch (err) {
      const failure = (err as Error).message;
      if (this.#edgeFailure !== failure)
        this.#deps.logger.warn(
          { err: failure },
          'usage: the edge’s request counters could not be read',
        );
      this.#edgeFailure = failure;
      return undefined;
    }
    return serviceTraffic(
      this.#edge,
      targets.map((t) => ({
        orgId: t.orgId,
        serviceId: t.serviceId,
        environmentId: t.environmentId,
        hosts: [
          ...defaultHosts({
            service: { id: t.serviceId, name: t.serviceName },
            environment: { name: t.environmentName },
            edgeDomain: e.edgeDomain,
          }),
          ...t.customHosts,
        ],
        thresholds: t.thresholds,
      })),
    );
  }

  /** Messages waiting per queue; a queue that cannot be asked is left out, never 0. */
  async #queueDepths(q: NonNullable<UsageDeps['queueDepths']>) {
    const depth = q.queue.depth?.bind(q.queue);
    if (!depth) return [];
    const out = await Promise.all(
      q.names.map((name) =>
        depth(name).then(
          (n) => ({ queue: name, depth: n }),
          (e: Error) => {
            this.#deps.logger.debug({ queue: name, err: e.message }, 'usage: queue depth unread');
            return null;
          },
        ),
      ),
    );
    return out.filter((x): x is { queue: string; depth: number } => x !== null);
  }

  /**
   * Each active custom domain's certificate expiry as the domain worker last read it (it
   * reads the served certificate on activation and on every periodic check), from the store
   * at most once a minute per org: expiries move only on renewal.
   */
  async #certificates(orgId: string): Promise<CertificateExpiry[]> {
    const d = this.#deps;
    const now = d.clock.now().getTime();
    const cached = this.#certificateCache.get(orgId);
    if (cached && now - cached.at < 60_000) return cached.expiries;
    const expiries = await d.store
      .withOrg(orgId, async (repos) => {
        const out: CertificateExpiry[] = [];
        let cursor: string | null = null;
        for (let page = 0; page < 10; page++) {
          const { items, nextCursor }: Page<Domain> = await repos.domains.list({
            limit: 200,
            cursor,
          });
          for (const x of items)
            if (x.status === 'active' && x.certNotAfter !== null)
              out.push({
                orgId,
                serviceId: x.serviceId,
                environmentId: x.environmentId,
                hostname: x.hostname,
                notAfter: x.certNotAfter,
              });
          if (!nextCursor) break;
          cursor = nextCursor;
        }
        return out;
      })
      .catch((e: Error) => {
        d.logger.warn({ orgId, err: e.message }, 'usage: certificates could not be read');
        return cached?.expiries ?? [];
      });
    this.#certificateCache.set(orgId, { at: now, expiries });
    return expiries;
  }

  /** The node's figures: probed when due, else the last probe's (disk and memory move slowly). */
  async #node(node: NodeRecord, target: DockerTarget): Promise<NodeUsage | null> {
    const d = this.#deps;
    const key = `${node.orgId}/${node.id}`;
    const now = d.clock.now().getTime();
    const state = this.#nodes.get(key);
    const due = !state || now - state.probedAt >= d.config.nodeProbeEverySeconds * 1000;
    if (due) {
      try {
        const capacity = await d.runtime.capacity?.(target);
        if (!capacity?.dataRoot) throw new Error('the engine does not say where its data-root is');
        const result = await d.runtime.runOnce(
          target,
          planNodeProbe({
            image: d.config.nodeProbeImage,
            dataRoot: capacity.dataRoot,
            name: `sdo-node-probe-${d.ids.newId('np')}`,
          }),
          20_000,
        );
        if (result.exitCode !== 0)
          throw new Error(
            `the probe exited ${result.exitCode ?? 'by timeout'}: ${result.output.slice(-300)}`,
          );
        const reading = parseNodeProbe(result.output);
        const cpuRatio = state?.cpu && reading.cpu ? cpuRatioBetween(state.cpu, reading.cpu) : null;
        this.#nodes.set(key, {
          cpu: reading.cpu,
          probedAt: now,
          usage: {
            cpuRatio,
            memoryUsedRatio: reading.memoryUsedRatio,
            diskUsedRatio: reading.diskUsedRatio,
          },
          failure: null,
        });
      } catch (e) {
        const failure = (e as Error).message;
        if (state?.failure !== failure)
          d.logger.warn(
            { nodeId: node.id, image: d.config.nodeProbeImage, err: failure },
            'usage: the node probe failed; its CPU, memory and disk are not exported',
          );
        this.#nodes.set(key, {
          cpu: null,
          probedAt: now,
          usage: { cpuRatio: null, memoryUsedRatio: null, diskUsedRatio: null },
          failure,
        });
      }
    }
    const usage = this.#nodes.get(key)!.usage;
    if (usage.cpuRatio === null && usage.memoryUsedRatio === null && usage.diskUsedRatio === null)
      return null;
    return { orgId: node.orgId, nodeId: node.id, ...usage };
  }

  /**
   * Reports each replica whose restarts within the window reached its service's crash-loop
   * threshold, once per episode: an event (audit row, then webhooks and channels) the
   * service's health view also reads. Another process that reported it already in this
   * window (two workers, a restarted one) is found in the audit trail and not repeated.
   */
  async #reportCrashLoops(replicas: Measured[], thresholds: Map<string, number>): Promise<void> {
    const d = this.#deps;
    const now = d.clock.now().getTime();
    for (const r of replicas) {
      const rose = r.restartsInWindow ?? 0;
      const threshold = thresholds.get(r.serviceId) ?? crashLoopDefault();
      if (rose < threshold) {
        this.#looping.delete(r.containerId);
        continue;
      }
      if (this.#looping.has(r.containerId)) continue;
      const reported = await d.store
        .withOrg(r.orgId, async (repos) => {
          const recent = await newestCrashLoopEvents(repos, r.serviceId);
          const since = now - crashLoopWindowSeconds * 1000;
          if (
            recent.some(
              (e) => e.data.containerId === r.containerId && Date.parse(e.createdAt) >= since,
            )
          )
            return true;
          await recordAudit(d, repos, usageActor, null, {
            action: crashLoopingEvent,
            targetType: 'service',
            targetId: r.serviceId,
            data: {
              serviceId: r.serviceId,
              environmentId: r.environmentId,
              releaseId: r.releaseId,
              replica: r.replica,
              nodeId: r.nodeId,
              containerId: r.containerId,
              restarts: r.restarts,
              restartsInWindow: rose,
              windowSeconds: crashLoopWindowSeconds,
              threshold,
            },
          });
          return true;
        })
        .catch((e: Error) => {
          d.logger.warn(
            { serviceId: r.serviceId, err: e.message },
            'usage: a crash loop was seen but could not be reported; the next collection retries',
          );
          return false;
        });
      if (reported) this.#looping.add(r.containerId);
    }
  }
}

/**
 * A service's `replica.crash_looping` events, newest first. The audit trail pages oldest
 * first, so this reads to its end: bounded at 20 pages of 200, a service's reports only.
 */
export async function newestCrashLoopEvents(
  repos: OrgRepos,
  serviceId: string,
): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 20; page++) {
    const { items, nextCursor }: Page<AuditEvent> = await repos.audit.list(
      { limit: 200, cursor },
      { action: crashLoopingEvent, targetId: serviceId },
    );
    out.push(...items);
    if (!nextCursor) break;
    cursor = nextCursor;
  }
  return out.reverse();
}

/**
 * Failed backups or drills in a row, newest first (the `backup_failed` rule's count): a
 * failed backup counts, a completed one whose drill failed counts, one still running is
 * skipped, and the first completed one whose drill did not fail ends the run.
 */
export function backupFailuresInARow(
  backups: readonly Pick<DataServiceBackup, 'status' | 'drillStatus'>[],
): number {
  let n = 0;
  for (let i = backups.length - 1; i >= 0; i--) {
    const b = backups[i]!;
    if (b.status === 'running') continue;
    if (b.status === 'failed' || b.drillStatus === 'failed') n++;
    else break;
  }
  return n;
}

const crashLoopDefault = () => alertRuleById('crash_loop')!.defaultThreshold;

function crashLoopThreshold(t: AlertTarget): number {
  return t.thresholds.crash_loop ?? crashLoopDefault();
}

/** Replica 0 carries the release's container name, replica i ends in `-r<i>` (core/releases/plan.ts). */
export function replicaIndexOf(containerName: string): string {
  const m = /-r(\d+)$/.exec(containerName);
  return m ? m[1]! : '0';
}

/** The collector's ports from the release engine's (the same store, engines and vault). */
export function usageDepsOf(
  release: Pick<UsageDeps, 'store' | 'runtime' | 'vault' | 'clock' | 'ids' | 'logger' | 'events'>,
  sink: UsageSink,
  config: UsageConfig,
  queueDepths?: UsageDeps['queueDepths'],
  edgeTraffic?: UsageDeps['edgeTraffic'],
): UsageDeps {
  return {
    store: release.store,
    runtime: release.runtime,
    vault: release.vault,
    clock: release.clock,
    ids: release.ids,
    logger: release.logger.child({ component: 'usage' }),
    ...(release.events ? { events: release.events } : {}),
    sink,
    config,
    ...(queueDepths ? { queueDepths } : {}),
    ...(edgeTraffic ? { edgeTraffic } : {}),
  };
}
