import type { Release } from '../models.ts';
import type { DockerTarget, ImageSummary } from '../ports.ts';
import { defaultBuildLimits, openTarget, type ReleaseDeps } from '../releases/deps.ts';
import { isInFlight } from '../releases/state-machine.ts';

/** The scheduled job (core/queues.ts): hourly, at a minute other jobs do not use. */
export const buildPruneSchedule = 'build-prune';
export const buildPruneCron = '23 * * * *';

/** Releases of one service read to decide what stays (newest first). */
const releasesRead = 500;
/** Nodes visited per run at most. */
const nodesPerRun = 5000;

/**
 * Why each commit's image stays, per commit sha, for one service's releases (any order):
 * the image of every release in flight, of each environment's serving release and of the
 * release a rollback would go back to (`previousReleaseId` of the serving one, still
 * warm or redeployable), of the newest rolled-back one (undoing a rollback is a rollback
 * too), and of the newest `keepLast` distinct commits that served in each environment.
 * Everything else is the prune's to remove. Pure.
 */
export function imagesToKeep(releases: Release[], keepLast: number): Map<string, string> {
  const keep = new Map<string, string>();
  const hold = (r: Release | undefined, why: string) => {
    if (r?.gitSha && !keep.has(r.gitSha)) keep.set(r.gitSha, `${why} (release ${r.id})`);
  };
  const byId = new Map(releases.map((r) => [r.id, r]));
  const newestFirst = [...releases].sort(
    (a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id),
  );
  for (const r of newestFirst) if (isInFlight(r.status)) hold(r, 'in flight');
  const environments = new Set(newestFirst.map((r) => r.environmentId));
  for (const env of environments) {
    const mine = newestFirst.filter((r) => r.environmentId === env);
    const serving = mine.find((r) => r.status === 'completed');
    hold(serving, 'serving');
    if (serving?.previousReleaseId) hold(byId.get(serving.previousReleaseId), 'rollback target');
    hold(
      mine.find((r) => r.status === 'rolled_back'),
      'rolled back, can be restored',
    );
    const served = new Set<string>();
    for (const r of mine) {
      if (served.size >= keepLast) break;
      if (!r.gitSha || (r.status !== 'completed' && r.status !== 'rolled_back')) continue;
      if (served.has(r.gitSha)) continue;
      served.add(r.gitSha);
      hold(r, `one of the newest ${keepLast} that served`);
    }
  }
  return keep;
}

/** What one prune run did, for the worker's log. */
export interface BuildPruneReport {
  nodes: number;
  removed: { node: string; image: string }[];
  /** Images the policy let go that a container still uses: the engine kept them. */
  inUse: string[];
  cacheReclaimedBytes: number;
  /** Nodes that could not be asked (engine down, credentials), with why. */
  skipped: string[];
}

/**
 * The `build-prune` job: on every node a build from git ran on, removes the built images
 * (`<service>:<sha>`, found by their selfdevop labels) that no release needs any more
 * (`imagesToKeep`), never forced, so an image a container uses stays whatever the policy
 * says; then trims each engine's build cache to `cacheMaxBytes`. A node that cannot be
 * reached is skipped until the next run.
 */
export async function pruneBuildImages(
  deps: Pick<ReleaseDeps, 'store' | 'runtime' | 'vault' | 'config' | 'logger'>,
): Promise<BuildPruneReport> {
  const report: BuildPruneReport = {
    nodes: 0,
    removed: [],
    inUse: [],
    cacheReclaimedBytes: 0,
    skipped: [],
  };
  const runtime = deps.runtime;
  const lookup = deps.store.releaseLookup.buildNodes;
  if (!lookup || !runtime.listImages || !runtime.deleteImage) return report;
  const keepLast = deps.config.build?.keepImages ?? defaultBuildLimits.keepImages;
  const cacheMaxBytes = deps.config.build?.cacheMaxBytes ?? defaultBuildLimits.cacheMaxBytes;
  const cacheTrimmed = new Set<string>();
  for (const { orgId, nodeId } of await lookup.call(deps.store.releaseLookup, nodesPerRun)) {
    const node = await deps.store.withOrg(orgId, (repos) => repos.nodes.get(nodeId));
    if (!node) continue;
    let target: DockerTarget;
    let images: ImageSummary[];
    try {
      target = await openTarget(deps, node);
      images = await runtime.listImages(target, { 'selfdevop.org': orgId });
    } catch (e) {
      report.skipped.push(`${node.name}: ${messageOf(e)}`);
      continue;
    }
    report.nodes++;
    const byService = new Map<string, ImageSummary[]>();
    for (const image of images) {
      const service = image.labels['selfdevop.service'];
      if (!service) continue;
      byService.set(service, [...(byService.get(service) ?? []), image]);
    }
    for (const [serviceId, built] of byService) {
      const releases = await deps.store.withOrg(orgId, async (repos) =>
        (await repos.services.get(serviceId))
          ? (await repos.releases.list({ limit: releasesRead, cursor: null }, { serviceId })).items
          : [],
      );
      const keep = imagesToKeep(releases, keepLast);
      for (const image of built) {
        const sha = image.labels['selfdevop.git-sha'];
        if (sha && keep.has(sha)) continue;
        // By tag, so the engine drops exactly the build's name; an untagged leftover by id.
        for (const name of image.tags.length > 0 ? image.tags : [image.id]) {
          let outcome;
          try {
            outcome = await runtime.deleteImage(target, name);
          } catch (e) {
            report.skipped.push(`${name} on ${node.name}: ${messageOf(e)}`);
            continue;
          }
          if (outcome === 'removed') report.removed.push({ node: node.name, image: name });
          if (outcome === 'in_use') report.inUse.push(`${name} on ${node.name}`);
        }
      }
    }
    if (runtime.pruneBuildCache && !cacheTrimmed.has(node.dockerHost)) {
      cacheTrimmed.add(node.dockerHost);
      try {
        report.cacheReclaimedBytes += (
          await runtime.pruneBuildCache(target, cacheMaxBytes)
        ).reclaimedBytes;
      } catch (e) {
        report.skipped.push(`${node.name} build cache: ${messageOf(e)}`);
      }
    }
  }
  return report;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
