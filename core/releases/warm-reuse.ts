/**
 * A redeploy of an earlier image whose release is still warm (its containers kept for an
 * instant rollback) takes those containers back instead of starting new ones, when they
 * were started with exactly the configuration the new release would start them with. The
 * configuration is compared by a hash, carried by each container as a label
 * (`selfdevop.config`) from its start: the container itself says what it runs with.
 */
import { sha256Hex } from '../hash.ts';
import type { HealthPolicy, Release, Replica, Service, WorkerHealth } from '../models.ts';
import type { ContainerInfo } from '../ports.ts';

/** The label holding a container's configuration hash. */
export const configurationLabel = 'selfdevop.config';

/** Everything a release's container runs with, besides the release's identity. */
export interface ReleaseConfiguration {
  /** The image id (digest) the container runs; its command is the image's own CMD. */
  image: string;
  kind: Service['kind'];
  /** Plain environment variables. */
  env: Record<string, string>;
  /**
   * Each secret's version, never its value: a fingerprint of its sealed text, which a new
   * value (or a reseal) changes.
   */
  secretVersions: Record<string, string>;
  /** Linked data services: the variable each is exposed as and its connection URL. */
  linked: Record<string, string>;
  network: string | null;
  containerPort: number | null;
  memoryMb: number | null;
  cpus: number | null;
  healthcheckPath: string;
  health: HealthPolicy;
  workerHealth: WorkerHealth | null;
  placementLabels: Record<string, string>;
}

/** A JSON text with every object's keys sorted, so equal configurations give equal text. */
function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

/**
 * The configuration hash (`v1:` + 64 hex): equal exactly when every field of the
 * configuration is equal, whatever the order its maps were built in.
 */
export function configurationHash(config: ReleaseConfiguration): string {
  return `v1:${sha256Hex(canonical(config))}`;
}

/** The version of a secret as the hash takes it: a fingerprint of its sealed text. */
export const secretVersion = (sealed: string): string => sha256Hex(sealed).slice(0, 32);

/** A warm release that runs the same image, and what its nodes' engines say of its containers. */
export interface WarmCandidate {
  release: Release;
  replicas: Replica[];
  /** Each replica's container as its engine reports it (null: gone). */
  containers: (ContainerInfo | null)[];
  /** Nodes of a Swarm: their replicas are Swarm services, which cannot be renamed. */
  swarmNodeIds: ReadonlySet<string>;
}

export type WarmReuseDecision = { reuse: true } | { reuse: false; reason: string };

/**
 * Whether a release planned as `planned` may take `warm`'s containers: the same number of
 * replicas on the same nodes, every container running, and every one started with the
 * configuration hash the new release would start it with. Pure; the probe comes after.
 */
export function decideWarmReuse(input: {
  hash: string;
  planned: readonly Pick<Replica, 'index' | 'nodeId'>[];
  warm: WarmCandidate;
}): WarmReuseDecision {
  const { hash, planned, warm } = input;
  const id = warm.release.id;
  if (warm.replicas.length !== planned.length)
    return {
      reuse: false,
      reason: `release ${id} runs ${warm.replicas.length} replicas, this one ${planned.length}`,
    };
  for (let i = 0; i < planned.length; i++) {
    const p = planned[i]!;
    const w = warm.replicas.find((r) => r.index === p.index);
    if (!w || w.nodeId !== p.nodeId)
      return {
        reuse: false,
        reason: `replica ${p.index} of release ${id} is on another node than this release's`,
      };
    if (warm.swarmNodeIds.has(w.nodeId))
      return { reuse: false, reason: `a Swarm node's replicas cannot be taken over` };
    const info = warm.containers[warm.replicas.indexOf(w)] ?? null;
    if (!info) return { reuse: false, reason: `replica ${p.index} of release ${id} is gone` };
    if (info.state !== 'running')
      return { reuse: false, reason: `replica ${p.index} of release ${id} is ${info.state}` };
    const had = info.labels[configurationLabel];
    if (had === undefined)
      return {
        reuse: false,
        reason: `replica ${p.index} of release ${id} carries no configuration hash (started before it was recorded)`,
      };
    if (had !== hash)
      return {
        reuse: false,
        reason: `the configuration changed since release ${id} started (environment, secrets, linked data services, port, resources or health check)`,
      };
  }
  return { reuse: true };
}

/**
 * The warm releases worth asking about: along the chain of releases that served before
 * the serving one (each the `previousReleaseId` of the next), at most `depth` of them, the
 * first that ran `imageDigest` with every replica still up (not retired); none when the
 * serving release runs that image itself. `load` reads one more by id.
 */
export async function findWarmRelease(input: {
  serving: Release | null;
  imageDigest: string;
  load: (id: string) => Promise<Release | null>;
  replicasOf: (r: Release) => Replica[];
  depth?: number;
}): Promise<{ release: Release; replacedBy: Release } | null> {
  const { serving, imageDigest, load, replicasOf } = input;
  // A deploy of the image that serves is a restart (a redeploy after a change, or to get a
  // fresh process): it starts new containers, even when an older warm copy runs the same.
  if (serving?.imageDigest === imageDigest) return null;
  let next = serving;
  for (let i = 0; next?.previousReleaseId && i < (input.depth ?? 5); i++) {
    const r = await load(next.previousReleaseId);
    if (!r) return null;
    const replicas = replicasOf(r);
    if (
      (r.status === 'completed' || r.status === 'rolled_back') &&
      r.imageDigest === imageDigest &&
      replicas.length > 0 &&
      replicas.every((x) => x.health !== 'stopped' && x.containerId !== null)
    )
      return { release: r, replacedBy: next };
    next = r;
  }
  return null;
}
