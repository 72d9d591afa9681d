import type { Replica } from '../models.ts';
import type { ContainerInfo, DockerTarget } from '../ports.ts';
import { upstreamOf, UntrustedBinding } from '../nodes/address.ts';
import { appendLog, nodeById, nodeTarget, viaDocker, type StepContext } from './context.ts';
import { replicaContainerName } from './plan.ts';
import { replicasOf } from './replicas.ts';
import { decideWarmReuse, findWarmRelease } from './warm-reuse.ts';

/** As for a warm rollback: one quick probe, so the reuse stays well under a second. */
const warmProbeTimeoutMs = 500;

/**
 * A warm release whose window ends sooner than this is not taken over: its retirement may
 * already be on its way, and would stop what this release is about to serve with.
 */
const warmMarginMs = 30_000;

/**
 * The start_candidate step's first choice for a web service: a still-warm earlier release
 * that runs the same image (a redeploy of an earlier sha, or of an image by digest) with the
 * same configuration hash, on the same nodes, and answers its health path, has its
 * containers renamed to this release's replicas, which then go through the health gate and
 * the switch like new ones. The warm release's record lets go of them (its replicas
 * `stopped`), so its retirement and a rollback to it find nothing of its own left. Returns
 * the replicas as started, or null to start new containers; the release log says which and why.
 */
export async function takeOverWarmRelease(
  c: StepContext,
  planned: Replica[],
): Promise<Replica[] | null> {
  const runtime = c.deps.runtime;
  const digest = c.release.imageDigest;
  const hash = c.configurationHash;
  const port = c.service.containerPort;
  // A worker's old copy is stopped at the switch (two would both consume), and replace
  // stops the old set first: neither leaves anything warm.
  if (!runtime.rename || !digest || !hash || port === null || c.service.strategy === 'replace')
    return null;
  const found = await c.deps.store.withOrg(c.release.orgId, (repos) =>
    findWarmRelease({
      serving: c.previous?.release ?? null,
      imageDigest: digest,
      load: (id) => repos.releases.get(id),
      replicasOf,
    }),
  );
  if (!found) return null;
  const warm = found.release;
  const fresh = async (reason: string): Promise<null> => {
    await appendLog(
      c,
      `release ${warm.id} is still warm with this image, but new containers start: ${reason}`,
    );
    return null;
  };
  const replacedAt = Date.parse(found.replacedBy.finishedAt ?? '');
  const leftMs = replacedAt + c.service.warmSeconds * 1000 - c.deps.clock.now().getTime();
  if (!(leftMs >= warmMarginMs))
    return fresh(
      `its warm window ends in ${Math.max(0, Math.round(leftMs / 1000))} s (under ${warmMarginMs / 1000} s)`,
    );

  // Only what sits on this release's planned nodes is asked about: another node is a reason
  // the decision names, not a node to reach.
  const replicas = replicasOf(warm);
  const plannedNodes = new Set(planned.map((p) => p.nodeId));
  const swarmNodeIds = new Set<string>();
  const where: ({ target: DockerTarget; node: Awaited<ReturnType<typeof nodeById>> } | null)[] = [];
  for (const r of replicas) {
    if (!plannedNodes.has(r.nodeId)) {
      where.push(null);
      continue;
    }
    const node = await nodeById(c, r.nodeId);
    if (node.kind === 'swarm') swarmNodeIds.add(node.id);
    where.push({ node, target: await nodeTarget(c, node) });
  }
  const containers: (ContainerInfo | null)[] = await Promise.all(
    replicas.map((r, i) => {
      const at = where[i];
      return at && !swarmNodeIds.has(r.nodeId)
        ? viaDocker(() => runtime.inspect(at.target, replicaContainerName(warm, r.index)))
        : Promise.resolve(null);
    }),
  );
  const decision = decideWarmReuse({
    hash,
    planned,
    warm: { release: warm, replicas, containers, swarmNodeIds },
  });
  if (!decision.reuse) return fresh(decision.reason);

  const upstreams: string[] = [];
  for (const [i, r] of replicas.entries()) {
    try {
      upstreams.push(
        upstreamOf(where[i]!.node, containers[i]!, port, {
          privateAddresses: c.deps.config.tenantPrivateNodes ?? false,
        }),
      );
    } catch (e) {
      if (!(e instanceof UntrustedBinding)) throw e;
      return fresh(`replica ${r.index} of release ${warm.id}: ${e.message}`);
    }
  }
  const path = c.service.healthcheckPath;
  const probes = await Promise.all(
    upstreams.map((u) =>
      c.deps.probe.check(
        `http://${u}${path}`,
        Math.min(c.service.health.timeoutMs, warmProbeTimeoutMs),
      ),
    ),
  );
  const silent = probes.findIndex((p) => !p.ok);
  if (silent >= 0)
    return fresh(`replica ${replicas[silent]!.index} did not answer GET ${path} at once`);

  const names = replicas.map((r) => replicaContainerName(c.release, r.index));
  for (const [i, r] of replicas.entries()) {
    try {
      await viaDocker(() => runtime.rename!(where[i]!.target, containers[i]!.id, names[i]!));
    } catch (e) {
      // What was renamed already is found by its new name when the step starts containers.
      return fresh(
        `renaming replica ${r.index}'s container failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  const at = c.deps.clock.now().toISOString();
  await c.deps.store.withOrg(c.release.orgId, async (repos) => {
    await repos.releases.update(warm.id, {
      containerId: null,
      ...(warm.replicaSet?.replicas
        ? {
            replicaSet: {
              replicas: warm.replicaSet.replicas.map((r) => ({
                ...r,
                containerId: null,
                health: 'stopped' as const,
              })),
            },
          }
        : {}),
      updatedAt: at,
    });
    await repos.releaseLogs.append(warm.id, [
      {
        at,
        stream: 'system',
        line: `containers taken over by release ${c.release.id} (same image, same configuration): this release runs nothing any more`,
      },
    ]);
  });
  await appendLog(
    c,
    `reusing the warm containers of release ${warm.id} (same image ${digest}, same configuration ${hash}): ${names.join(', ')} at ${upstreams.join(', ')}; no new container started`,
  );
  return planned.map((p) => {
    const i = replicas.findIndex((r) => r.index === p.index);
    return { ...p, containerId: containers[i]!.id, upstream: upstreams[i]!, health: 'starting' };
  });
}
