import type { NodeRecord, Release } from '../models.ts';
import type { DockerTarget } from '../ports.ts';
import { appendLog, nodeById, nodeTarget, viaDocker, type StepContext } from './context.ts';
import { defaultBuildLimits } from './deps.ts';
import { StepFailed } from './errors.ts';
import { replicasOf } from './replicas.ts';

/** Earlier releases read to find the nodes a sha's image went to (newest first). */
const historyLimit = 100;

const megabytes = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);

/**
 * Copies a built image from one node's engine to another's, engine to engine with no
 * registry (`ContainerRuntime.moveImage`), and logs where it came from, its size and how
 * long it took. Bounded by the build timeout: a move never takes longer than the build it
 * saves. Resolves to the image id on `to`.
 */
export async function moveBuiltImage(
  c: StepContext,
  image: string,
  from: { node: NodeRecord; target: DockerTarget },
  to: { node: NodeRecord; target: DockerTarget },
): Promise<string> {
  const runtime = c.deps.runtime;
  if (!runtime.moveImage)
    throw new StepFailed(
      `image ${image} is on node ${from.node.name}, not on node ${to.node.name}, and this worker cannot move images between nodes`,
      false,
    );
  const timeoutMs = c.deps.config.build?.timeoutMs ?? defaultBuildLimits.timeoutMs;
  await appendLog(c, `moving image ${image} from node ${from.node.name} to node ${to.node.name}`);
  const started = c.deps.clock.now().getTime();
  const moved = await viaDocker(() =>
    runtime.moveImage!(from.target, to.target, image, {
      timeoutMs,
      ...(c.signal ? { signal: c.signal } : {}),
    }),
  );
  const seconds = ((c.deps.clock.now().getTime() - started) / 1000).toFixed(1);
  await appendLog(
    c,
    `moved image ${image} from node ${from.node.name} to node ${to.node.name} (${megabytes(moved.bytes)} MB, ${seconds} s)`,
  );
  return moved.imageId;
}

/**
 * The nodes other than `exceptNodeId` where earlier releases of this service ran commit
 * `sha`: its image was built or moved there, so one of them may still hold it.
 */
export async function nodesThatRanSha(
  c: StepContext,
  sha: string,
  exceptNodeId: string,
): Promise<{ ranBefore: boolean; nodes: NodeRecord[] }> {
  const earlier: Release[] = await c.deps.store.withOrg(c.release.orgId, async (repos) => {
    const page = await repos.releases.list(
      { limit: historyLimit, cursor: null },
      { serviceId: c.service.id },
    );
    return page.items.filter((r) => r.id !== c.release.id && r.gitSha === sha);
  });
  const ids = new Set<string>();
  for (const r of earlier) {
    if (r.nodeId) ids.add(r.nodeId);
    for (const replica of replicasOf(r)) ids.add(replica.nodeId);
  }
  ids.delete(exceptNodeId);
  const nodes: NodeRecord[] = [];
  for (const id of ids) {
    try {
      nodes.push(await nodeById(c, id));
    } catch (e) {
      // A node removed since holds nothing any more.
      if (!(e instanceof StepFailed)) throw e;
    }
  }
  return { ranBefore: earlier.length > 0, nodes };
}

/**
 * A built image the node lacks, brought from a node that still has it (a rollback or a
 * redeploy of an earlier sha). Null when no such node has it (or none can be asked), and
 * the log then says the sha is rebuilt; the caller builds it. A move that fails is logged
 * and the next holder tried, the build being the last resort.
 */
export async function imageFromAnotherNode(
  c: StepContext,
  image: string,
  sha: string,
  to: { node: NodeRecord; target: DockerTarget },
): Promise<string | null> {
  const runtime = c.deps.runtime;
  const { ranBefore, nodes: candidates } = await nodesThatRanSha(c, sha, to.node.id);
  // A commit never deployed before is simply built: there is nothing to look for.
  if (!ranBefore) return null;
  if (runtime.localImage && runtime.moveImage) {
    for (const node of candidates) {
      let target: DockerTarget;
      let held: string | null;
      try {
        target = await nodeTarget(c, node);
        held = await viaDocker(() => runtime.localImage!(target, image));
      } catch (e) {
        if (!(e instanceof StepFailed)) throw e;
        await appendLog(c, `node ${node.name} could not be asked for image ${image}: ${e.message}`);
        continue;
      }
      if (!held) continue;
      try {
        return await moveBuiltImage(c, image, { node, target }, to);
      } catch (e) {
        // Cancelled: no other holder is tried and nothing is rebuilt.
        if (!(e instanceof StepFailed) || c.signal?.aborted) throw e;
        await appendLog(c, `moving image ${image} from node ${node.name} failed: ${e.message}`);
      }
    }
  }
  await appendLog(
    c,
    `rebuilding sha ${sha}: no node has its image (looked on ${[to.node, ...candidates].map((n) => n.name).join(', ')})`,
  );
  return null;
}
