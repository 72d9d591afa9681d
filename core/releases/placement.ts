/**
 * Where a service environment's replicas run: pure, tested by equality like plan.ts.
 * Not a bin-packing scheduler: replicas spread over the eligible nodes (labels match, not
 * draining) one at a time onto the node holding the fewest of them, so one node's loss
 * never takes all, and among those onto the node running the fewest replicas of the org
 * (else services without resource limits would all tie and pile onto the first nodes by
 * id); each must fit the node's capacity left after what selfdevop placed.
 */
import { CoreError } from '../errors.ts';
import type { NodeRecord } from '../models.ts';

/** CPUs and memory: a node's total as its engine reports it, or what replicas take of it. */
export interface Resources {
  cpus: number;
  memoryMb: number;
  /** In what replicas take (`used`): how many of the org's replicas the node runs. */
  replicas?: number;
}

export interface PlacementInput {
  /** How many replicas to place (beside `keep`). */
  count: number;
  /** Labels a node must carry, each with exactly this value. */
  labels: Record<string, string>;
  /** The org's nodes. */
  nodes: readonly (Pick<NodeRecord, 'id' | 'name' | 'labels' | 'drainMode'> &
    Partial<Pick<NodeRecord, 'kind' | 'reachability'>>)[];
  /** What each node's engine reports; a node without an entry has no known limit. */
  capacity: Readonly<Record<string, Resources>>;
  /** What selfdevop's containers already take on each node (this service's old set included). */
  used: Readonly<Record<string, Resources>>;
  /** What one replica takes; null is no limit asked, and counts as nothing. */
  memoryMb: number | null;
  cpus: number | null;
  /** Nodes holding this service's replicas that stay (they count for the spread). */
  keep?: readonly string[];
}

export type PlacementResult =
  | { ok: true; nodeIds: string[] }
  | { ok: false; code: 'no_eligible_node' | 'insufficient_capacity'; reason: string };

const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');

/** The nodes a service may run on: not draining, not lost, carrying every required label. */
export function eligibleNodes<
  N extends Pick<NodeRecord, 'labels' | 'drainMode'> & Partial<Pick<NodeRecord, 'reachability'>>,
>(nodes: readonly N[], labels: Record<string, string>): N[] {
  return nodes.filter(
    (n) =>
      !n.drainMode &&
      n.reachability !== 'lost' &&
      Object.entries(labels).every(([k, v]) => n.labels[k] === v),
  );
}

const round = (n: number) => Math.round(n * 100) / 100;

/**
 * Places `count` replicas, or says which capacity or which nodes are missing. A Swarm
 * cluster (a node of kind `swarm`, not draining) takes every replica: Swarm places its
 * tasks on its members, by the service's labels as constraints and by its own resource
 * accounting, so neither the record's labels nor an engine size apply here; the first
 * such node by id is the one, so a service's sets never split between a cluster and loose
 * engines.
 */
export function placeReplicas(input: PlacementInput): PlacementResult {
  if (input.count === 0) return { ok: true, nodeIds: [] };
  const cluster = input.nodes
    .filter((n) => n.kind === 'swarm' && !n.drainMode)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0];
  if (cluster) return { ok: true, nodeIds: Array.from({ length: input.count }, () => cluster.id) };
  const eligible = eligibleNodes(input.nodes, input.labels);
  if (eligible.length === 0) {
    // A lost node may also be avoided (marked draining by the caller): counted as lost.
    const draining = input.nodes.filter((n) => n.drainMode && n.reachability !== 'lost').length;
    const lost = input.nodes.filter((n) => n.reachability === 'lost').length;
    const wanted = Object.keys(input.labels).length
      ? ` with labels ${labelText(input.labels)}`
      : '';
    return {
      ok: false,
      code: 'no_eligible_node',
      reason:
        `no node${wanted} takes replicas: ${input.nodes.length} registered, ${draining} draining` +
        (lost > 0 ? `, ${lost} lost (not answering)` : ''),
    };
  }
  const need: Resources = { cpus: input.cpus ?? 0, memoryMb: input.memoryMb ?? 0 };
  const count: Record<string, number> = {};
  const free: Record<string, Resources> = {};
  const load: Record<string, number> = {};
  for (const n of eligible) {
    count[n.id] = 0;
    load[n.id] = input.used[n.id]?.replicas ?? 0;
    const cap = input.capacity[n.id];
    const used = input.used[n.id] ?? { cpus: 0, memoryMb: 0 };
    free[n.id] = cap
      ? { cpus: cap.cpus - used.cpus, memoryMb: cap.memoryMb - used.memoryMb }
      : { cpus: Infinity, memoryMb: Infinity };
  }
  for (const id of input.keep ?? []) if (id in count) count[id]!++;
  const placed: string[] = [];
  for (let i = 0; i < input.count; i++) {
    const fits = eligible.filter(
      (n) => free[n.id]!.cpus >= need.cpus && free[n.id]!.memoryMb >= need.memoryMb,
    );
    if (fits.length === 0) {
      const most = eligible.reduce((a, b) =>
        free[b.id]!.memoryMb - need.memoryMb + (free[b.id]!.cpus - need.cpus) * 1024 >
        free[a.id]!.memoryMb - need.memoryMb + (free[a.id]!.cpus - need.cpus) * 1024
          ? b
          : a,
      );
      const f = free[most.id]!;
      const missing: string[] = [];
      if (f.memoryMb < need.memoryMb)
        missing.push(`${round(need.memoryMb - Math.max(0, f.memoryMb))} MB of memory`);
      if (f.cpus < need.cpus) missing.push(`${round(need.cpus - Math.max(0, f.cpus))} CPUs`);
      return {
        ok: false,
        code: 'insufficient_capacity',
        reason:
          `replica ${i + 1} of ${input.count} (${need.memoryMb} MB, ${need.cpus} CPUs) fits on no eligible node: ` +
          `node ${most.name}, the roomiest, lacks ${missing.join(' and ')}`,
      };
    }
    // Fewest of this service's replicas first; then fewest of the org's; then the most
    // memory left; then id order.
    fits.sort(
      (a, b) =>
        count[a.id]! - count[b.id]! ||
        load[a.id]! - load[b.id]! ||
        free[b.id]!.memoryMb - free[a.id]!.memoryMb ||
        (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
    );
    const pick = fits[0]!;
    count[pick.id]!++;
    load[pick.id]!++;
    free[pick.id] = {
      cpus: free[pick.id]!.cpus - need.cpus,
      memoryMb: free[pick.id]!.memoryMb - need.memoryMb,
    };
    placed.push(pick.id);
  }
  return { ok: true, nodeIds: placed };
}

/** A placement that cannot be made: 409, saying what is missing, before anything starts. */
export class PlacementUnfit extends CoreError {
  constructor(code: 'no_eligible_node' | 'insufficient_capacity', reason: string) {
    super('conflict', code, `the replicas cannot be placed: ${reason}`);
  }
}

/** Adds what one replica of this size takes on `nodeId` to `used`, and counts it there. */
export function addUsage(
  used: Record<string, Resources>,
  nodeId: string,
  memoryMb: number | null,
  cpus: number | null,
): void {
  const u = (used[nodeId] ??= { cpus: 0, memoryMb: 0 });
  u.cpus += cpus ?? 0;
  u.memoryMb += memoryMb ?? 0;
  u.replicas = (u.replicas ?? 0) + 1;
}
