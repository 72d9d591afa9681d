import type { NodeRecord, ReleaseStep, Replica, Service } from '../models.ts';
import type { DockerTarget } from '../ports.ts';
import { refreshesOnDeploy, registryOf } from '../registries/image-ref.ts';
import { pullAuthFor } from '../registries/use-cases.ts';
import { describeProbe, waitUntilHealthy, type HealthOutcome } from './health.ts';
import { buildFromGit } from './build.ts';
import { moveBuiltImage } from './image-move.ts';
import {
  appendEvent,
  appendLog,
  beginStep,
  containerEnv,
  endStep,
  move,
  nodeById,
  nodeTarget,
  updateDeployJob,
  upstreamAt,
  viaDocker,
  viaEdge,
  type StepContext,
} from './context.ts';
import { defaultReleaseConfig, sendRetire, sendStep } from './deps.ts';
import { StepFailed } from './errors.ts';
import { CommandOutputLog } from './output-log.ts';
import { workerGate } from './worker-gate.ts';
import {
  defaultHosts,
  planCandidate,
  planMigration,
  planRoute,
  replicaContainerName,
  routeId,
} from './plan.ts';
import { replicasOf } from './replicas.ts';
import { takeOverWarmRelease } from './warm-takeover.ts';

/**
 * The steps of a release, one per queue message (Kamal commands/app/*.rb style: one
 * concern each). Each is idempotent: run twice, it finds what its first run made.
 */
export type StepRunner = (c: StepContext) => Promise<void>;

/** Step names in the order a release runs them (rows are shown in this order). */
export const stepNames = [
  'build',
  'start_candidate',
  'migrate',
  'health_check',
  'switch_traffic',
  'complete',
] as const;

/**
 * queued|building → artifact_ready: the node answers and the image is there: resolved to
 * a digest, or, for a git release, reused or built on the node (`buildFromGit`).
 */
export const build: StepRunner = async (c) => {
  if (c.release.status === 'queued') {
    const started = await move(c, 'building', {}, async (repos, r) => {
      await updateDeployJob(c.deps, repos, r.id, { status: 'running', attempts: c.attempt });
      await appendEvent(c.deps, repos, r, 'release.started', {
        image: r.image,
        nodeId: r.nodeId,
        ...(r.gitRef ? { gitRef: r.gitRef, gitSha: r.gitSha } : {}),
      });
    });
    if (!started) return;
  }
  const step = await beginStep(c, 'build');
  const target = await nodeTarget(c);
  await viaDocker(() => c.deps.runtime.ping(target));
  let digest: string;
  if (c.release.gitRef !== null) {
    const built = await buildFromGit(c, target);
    // Waiting for a build slot: the step runs again later, its row still running.
    if (built === null) return;
    digest = built;
  } else {
    digest = await resolveReleaseImage(c, target);
  }
  await endStep(c, step);
  if (await move(c, 'artifact_ready', { imageDigest: digest }))
    await sendStep(c.deps, c.release, 'artifact_ready');
};

/**
 * The release's image on its node, pulled with the org's credential for its registry when
 * there is one; a `:latest` image is pulled again on every deploy, since it may have moved
 * (`refreshesOnDeploy`). The log says which registry, and whether the node's copy served.
 */
/** How registries word a pull they refused for want of a credential. */
const refusedForCredentials =
  /unauthorized|authentication required|no basic auth credentials|access denied|denied: /i;

async function resolveReleaseImage(
  c: StepContext,
  target: DockerTarget,
  node: { name: string } = c.node,
): Promise<string> {
  const image = c.release.image;
  const auth = await c.deps.store.withOrg(c.release.orgId, (repos) =>
    pullAuthFor(c.deps.vault, repos.registries, image),
  );
  // Never expected in output, but masked if a pull's error ever echoes it.
  if (auth && !c.secretValues.includes(auth.password)) c.secretValues.push(auth.password);
  const refresh = refreshesOnDeploy(image);
  const registry = registryOf(image);
  await appendLog(
    c,
    `resolving image ${image} on node ${node.name}${refresh ? `: pulling it again from ${registry}, :latest may have moved` : ''}${auth ? ` (with the org's credential for ${registry}, user ${auth.username})` : ''}`,
  );
  let digest: string;
  try {
    digest = await viaDocker(() =>
      c.deps.runtime.resolveImage(target, image, {
        ...(auth ? { auth } : {}),
        ...(refresh ? { refresh } : {}),
      }),
    );
  } catch (e) {
    // The registry's own words ("no basic auth credentials", "unauthorized: …") do not say
    // what to do about them here.
    if (!auth && e instanceof StepFailed && refusedForCredentials.test(e.message))
      throw new StepFailed(
        `${e.message} (the org has no credential for ${registry}: add one with \`selfdevop registries add ${registry}\` or POST /api/registries)`,
        false,
        e,
      );
    throw e;
  }
  await appendLog(c, `image ${image} is ${digest}`);
  return digest;
}

/**
 * A replica placed on another node than the one the build step resolved the image on needs
 * the same image there. An image release pulls it (with the org's credential) and must get
 * the same id, else the tag moved during the deploy; a build from git exists only where it
 * was built, so it is moved there from the release's node, engine to engine.
 */
async function imageOnReplicaNode(
  c: StepContext,
  node: NodeRecord,
  target: DockerTarget,
): Promise<void> {
  const digest = c.release.imageDigest;
  if (node.id === c.release.nodeId || !digest) return;
  const runtime = c.deps.runtime;
  if (runtime.localImage && (await viaDocker(() => runtime.localImage!(target, digest)))) return;
  if (c.release.gitRef !== null) {
    const moved = await moveBuiltImage(
      c,
      c.release.image,
      { node: c.node, target: await nodeTarget(c) },
      { node, target },
    );
    if (moved !== digest)
      throw new StepFailed(
        `image ${c.release.image} is ${moved} on node ${node.name} after the move, not ${digest}`,
        false,
      );
    return;
  }
  const there = await resolveReleaseImage(c, target, node);
  if (there !== digest)
    throw new StepFailed(
      `image ${c.release.image} is ${there} on node ${node.name}, not ${digest} as on node ${c.node.name}: the tag moved during the deploy; deploy again, or by digest`,
      false,
    );
}

/**
 * artifact_ready → candidate_started: every replica's container runs beside the old set,
 * on the node placement chose, `maxSurge` starting at once. A replica already started (a
 * redelivered step) is found by its name. A still-warm earlier release of the same image
 * and configuration hands over its containers instead (`takeOverWarmRelease`).
 */
export const startCandidate: StepRunner = async (c) => {
  const step = await beginStep(c, 'start_candidate');
  const env = await containerEnv(c);
  const planned = replicasOf(c.release).map((r) => ({ ...r }));
  const reused = await takeOverWarmRelease(c, planned);
  const replicas = reused ?? planned;
  if (!reused) await startReplicas(c, env, replicas);
  await endStep(c, step);
  const first = replicas[0]!;
  if (
    await move(c, 'candidate_started', {
      containerId: first.containerId,
      upstream: first.upstream,
      replicaSet: { replicas },
    })
  ) {
    await sendStep(c.deps, c.release, 'candidate_started');
  }
};

/** Starts every replica's container (`replicas` updated in place), `maxSurge` at once. */
async function startReplicas(
  c: StepContext,
  env: Record<string, string>,
  replicas: Replica[],
): Promise<void> {
  if (c.service.strategy === 'replace' && c.previous) {
    // Replace frees the old containers' resources first; they are only stopped, so a failed
    // release can start them again as they were.
    for (const r of replicasOf(c.previous.release)) {
      const old = replicaContainerName(c.previous.release, r.index);
      await appendLog(c, `replace strategy: stopping ${old} of release ${c.previous.release.id}`);
      const previousTarget = await nodeTarget(c, await nodeById(c, r.nodeId));
      await viaDocker(() => c.deps.runtime.stop(previousTarget, old, c.service.drainSeconds));
    }
  }
  const surge = Math.max(1, c.service.maxSurge ?? 1);
  // Said once for the release, however many replicas the runtime said it of.
  const warnings = new Set<string>();
  for (let at = 0; at < replicas.length; at += surge) {
    await Promise.all(
      replicas.slice(at, at + surge).map(async (replica) => {
        const node = await nodeById(c, replica.nodeId);
        const spec = planCandidate({
          service: c.service,
          environment: c.environment,
          release: c.release,
          node,
          env,
          index: replica.index,
          ...(c.network ? { network: c.network } : {}),
          ...(c.configurationHash ? { configurationHash: c.configurationHash } : {}),
        });
        const target = await nodeTarget(c, node);
        await imageOnReplicaNode(c, node, target);
        const info = await viaDocker(() => c.deps.runtime.start(target, spec));
        for (const w of info.warnings ?? []) warnings.add(w);
        if (info.state !== 'running')
          throw new StepFailed(
            `candidate container ${info.name} is ${info.state} right after start`,
            false,
          );
        if (c.service.containerPort === null) {
          // A worker publishes nothing: no upstream, nothing to route.
          replica.containerId = info.id;
          replica.health = 'starting';
          await appendLog(
            c,
            `started worker ${info.name} (${spec.image})${replicas.length > 1 ? ` on node ${node.name}` : ''}`,
          );
          return;
        }
        if (!info.ports?.length)
          throw new StepFailed(`candidate container ${info.name} publishes no port`, false);
        // Built from the node's address; the engine's answer only picks the port.
        replica.upstream = upstreamAt(c, node, info);
        replica.containerId = info.id;
        replica.health = 'starting';
        await appendLog(
          c,
          `started ${info.name} (${spec.image})${replicas.length > 1 ? ` on node ${node.name}` : ''} at ${replica.upstream}`,
        );
      }),
    );
  }
  await appendLog(
    c,
    [...warnings].map((w) => `warning: ${w}`),
  );
}

/** candidate_started|migrating → health_validating: the migrate command ran and exited 0. */
export const migrate: StepRunner = async (c) => {
  if (c.release.status === 'candidate_started' && !(await move(c, 'migrating'))) return;
  const command = c.service.migrateCommand;
  if (command === null) {
    await appendLog(c, 'no migrate command: nothing to migrate');
    if (await move(c, 'health_validating')) await sendStep(c.deps, c.release, 'health_validating');
    return;
  }
  const step = await beginStep(c, 'migrate');
  const env = await containerEnv(c);
  const spec = planMigration({
    service: c.service,
    environment: c.environment,
    release: c.release,
    env,
    ...(c.network ? { network: c.network } : {}),
  });
  const timeoutMs = c.deps.config.migrationTimeoutMs;
  const target = await nodeTarget(c);
  await appendLog(c, `running migration: ${command}`);
  const output = new CommandOutputLog(c, 'stdout');
  let streamed = 0;
  let result;
  try {
    result = await viaDocker(() =>
      c.deps.runtime.runOnce(target, spec, timeoutMs, (line) => {
        streamed++;
        return output.push(line);
      }),
    );
    // A runtime that does not stream still returns the output's tail.
    if (streamed === 0 && result.output) {
      for (const line of result.output.split('\n')) if (line.length > 0) await output.push(line);
    }
  } finally {
    await output.close();
  }
  await appendLog(
    c,
    (result.warnings ?? []).map((w) => `warning: ${w}`),
  );
  if (result.timedOut) throw new StepFailed(`migration timed out after ${timeoutMs} ms`, false);
  if (result.exitCode !== 0)
    throw new StepFailed(`migration exited with code ${result.exitCode ?? 'unknown'}`, false);
  await appendLog(c, 'migration succeeded');
  await endStep(c, step);
  const moved = await move(c, 'health_validating', {}, (repos, r) =>
    appendEvent(c.deps, repos, r, 'release.migration_succeeded', { command }),
  );
  if (moved) await sendStep(c.deps, c.release, 'health_validating');
};

/**
 * health_validating → traffic_shifted: the candidate proved healthy and the route points at
 * it. The wait holds no worker: each delivery probes for `healthSliceMs`, then re-queues
 * the step with a delay; the deadline counts from the health_check row's start, which the
 * later slices keep.
 */
export const validateAndSwitch: StepRunner = async (c) => {
  if (c.service.kind === 'worker') return workerGate(c);
  const replicas = replicasOf(c.release).map((r) => ({ ...r }));
  if (replicas.length === 0 || replicas.some((r) => !r.upstream))
    throw new StepFailed('the candidate has no published address to probe', false);
  const { healthcheckPath: path, health: policy } = c.service;
  const earlier =
    c.hop > 0
      ? await c.deps.store.withOrg(c.release.orgId, (repos) =>
          repos.releaseSteps.list(c.release.id),
        )
      : [];
  const resumed = earlier.find((s) => s.name === 'health_check' && s.status === 'running');
  let health: ReleaseStep;
  if (resumed) {
    health = resumed;
    c.currentStep = resumed;
  } else {
    // A fresh gate (not a later slice of one) probes every replica again; its later slices
    // skip only the replicas it found healthy itself.
    if (replicas.some((r) => r.health === 'healthy')) {
      for (const r of replicas) r.health = 'starting';
      await c.deps.store.withOrg(c.release.orgId, (repos) =>
        repos.releases.update(c.release.id, { replicaSet: { replicas } }),
      );
    }
    health = await beginStep(c, 'health_check');
    await appendLog(
      c,
      `probing GET ${path} at ${replicas.map((r) => r.upstream).join(', ')}: ${policy.successes} consecutive successes within ${policy.deadlineMs} ms`,
    );
  }
  // Every replica passes its own gate, all at once against the one deadline: they started
  // together, so probing them one after another only added an interval per replica to each
  // deploy (the Swarm bench's overhead). Only changes are logged, per replica.
  const seenOf = new Map<number, string>();
  const stop = new AbortController();
  const gates = await Promise.allSettled(
    replicas.map(async (replica) => {
      if (replica.health === 'healthy') return null;
      const upstream = replica.upstream!;
      const outcome = await waitUntilHealthy({
        probe: c.deps.probe,
        clock: c.deps.clock,
        url: `http://${upstream}${path}`,
        policy,
        signal: stop.signal,
        deadlineAt: Date.parse(health.startedAt) + policy.deadlineMs,
        sliceMs: c.deps.config.healthSliceMs ?? defaultReleaseConfig.healthSliceMs,
        onAttempt: async (a) => {
          const seen = describeProbe(a);
          if (seen === (seenOf.get(replica.index) ?? c.seen ?? '')) return;
          seenOf.set(replica.index, seen);
          await appendLog(
            c,
            `probe ${a.attempt}${replicas.length > 1 ? ` of replica ${replica.index}` : ''}: GET ${path} → ${seen}`,
          );
        },
      }).catch((e: unknown) => {
        // One gate that cannot go on ends the others: the step fails (or is retried) as one.
        stop.abort();
        throw e;
      });
      if (outcome.healthy) {
        replica.health = 'healthy';
        await c.deps.store.withOrg(c.release.orgId, (repos) =>
          repos.releases.update(c.release.id, { replicaSet: { replicas } }),
        );
        c.release = { ...c.release, replicaSet: { replicas } };
        await appendLog(
          c,
          `healthy after ${outcome.attempts} probes${replicas.length > 1 ? ` (replica ${replica.index} at ${upstream})` : ''}`,
        );
      }
      return { replica, outcome };
    }),
  );
  const thrown = gates.find((g) => g.status === 'rejected');
  if (thrown) throw (thrown as PromiseRejectedResult).reason;
  const ended = gates
    .map(
      (g) =>
        (g as PromiseFulfilledResult<{ replica: Replica; outcome: HealthOutcome } | null>).value,
    )
    .filter((g) => g !== null);
  // The first replica (by index) that did not pass names the failure, as before.
  const unhealthy = ended.find((g) => !g.outcome.healthy && !g.outcome.pending);
  if (unhealthy) {
    throw new StepFailed(
      `health check did not pass within ${policy.deadlineMs} ms: GET ${path}${replicas.length > 1 ? ` at ${unhealthy.replica.upstream}` : ''} → ${unhealthy.outcome.lastError}`,
      false,
    );
  }
  const pending = ended.find((g) => g.outcome.pending);
  if (pending) {
    // The row stays `running`: the next slice finds it, and its deadline; the replicas
    // found healthy in this one are skipped there.
    c.currentStep = null;
    await sendStep(c.deps, c.release, 'health_validating', {
      hop: c.hop + 1,
      delaySeconds: Math.max(1, Math.ceil(policy.intervalMs / 1000)),
      seen: seenOf.get(pending.replica.index) ?? c.seen ?? '',
    });
    return;
  }
  await endStep(c, health);

  // A cancel while probing must not be followed by a switch to its candidate.
  const now = await c.deps.store.withOrg(c.release.orgId, (repos) =>
    repos.releases.get(c.release.id),
  );
  if (now?.status !== 'health_validating') {
    await appendLog(c, `release is ${now?.status ?? 'gone'}: traffic not switched`);
    return;
  }
  const switching = await beginStep(c, 'switch_traffic');
  const id = routeId(c.service.id, c.environment.id);
  const existing = await viaEdge(() => c.deps.edge.get(id));
  // Hosts added to the route since (custom domains) stay; only the upstreams move, all at once.
  const hosts =
    existing?.hosts ??
    defaultHosts({
      service: c.service,
      environment: c.environment,
      edgeDomain: c.deps.config.edgeDomain,
    });
  const upstreams = replicas.map((r) => r.upstream!);
  await viaEdge(() =>
    c.deps.edge.put(
      planRoute({ service: c.service, environment: c.environment, upstreams, hosts }),
    ),
  );
  await appendLog(c, `traffic switched to ${upstreams.join(', ')} for ${hosts.join(', ')}`);
  await endStep(c, switching);
  if (await move(c, 'traffic_shifted')) await sendStep(c.deps, c.release, 'traffic_shifted');
};

/** The audit marker a rollback-by-redeploy leaves: which release the new one replaces. */
export const rollbackRequestedAction = 'release.rollback_requested';

/** How long the release a deploy replaced stays up: warm for blue/green, not at all for replace (already stopped). */
export const retireDelaySeconds = (
  service: Pick<Service, 'strategy' | 'warmSeconds' | 'kind'>,
): number =>
  // Two copies of a worker would both consume (a bot answering twice): the old one stops now.
  service.strategy === 'replace' || service.kind === 'worker' ? 0 : service.warmSeconds;

/** traffic_shifted → completed: the release serves; the one it replaced is scheduled to retire. */
export const complete: StepRunner = async (c) => {
  const step = await beginStep(c, 'complete');
  const marker = await c.deps.store.withOrg(c.release.orgId, (repos) =>
    repos.audit.list({ limit: 1 }, { action: rollbackRequestedAction, targetId: c.release.id }),
  );
  const rollbackOf = marker.items[0]?.data.rollbackOf;
  await endStep(c, step);
  const at = c.deps.clock.now().toISOString();
  const moved = await move(c, 'completed', { finishedAt: at }, async (repos, r) => {
    await updateDeployJob(c.deps, repos, r.id, { status: 'succeeded', attempts: c.attempt });
    await appendEvent(c.deps, repos, r, 'release.completed', {
      imageDigest: r.imageDigest,
      upstream: r.upstream,
    });
    if (typeof rollbackOf === 'string') {
      const replaced = await repos.releases.get(rollbackOf);
      if (
        replaced &&
        (await repos.releases.transition(rollbackOf, 'completed', {
          status: 'rolled_back',
          updatedAt: at,
        }))
      ) {
        await appendEvent(c.deps, repos, replaced, 'release.rolled_back', {
          to: r.id,
          path: 'redeploy',
        });
      }
    }
  });
  // Sent after the move: a retirement that ran first would find the old release still serving.
  const prev = c.previous?.release;
  if (moved && prev) {
    const delay = retireDelaySeconds(c.service);
    await sendRetire(c.deps, prev, c.release.id, delay);
    await appendLog(c, `release ${prev.id} retires in ${delay} s`);
  }
};
