import { linkedDataEnv } from '../data-services/links.ts';
import { isCoreError, NotFound } from '../errors.ts';
import type {
  AuditEvent,
  Environment,
  NodeRecord,
  Release,
  ReleaseLogLine,
  ReleaseStatus,
  ReleaseStep,
  Service,
} from '../models.ts';
import type { ContainerInfo, DockerTarget, OrgRepos } from '../ports.ts';
import { upstreamOf, UntrustedBinding } from '../nodes/address.ts';
import { StepFailed } from './errors.ts';
import { openTarget, workerActor, type ReleaseDeps } from './deps.ts';
import { assertTransition } from './state-machine.ts';
import { configurationHash, secretVersion } from './warm-reuse.ts';

/** Everything one step of one release works with, loaded once per message. */
export interface StepContext {
  deps: ReleaseDeps;
  /** Kept current: every successful move updates it. */
  release: Release;
  service: Service;
  environment: Environment;
  node: NodeRecord;
  /** The node's engine with its credentials, opened on first use by `nodeTarget`. */
  target: DockerTarget | null;
  /** Other replicas' nodes and engines, loaded and opened on first use. */
  nodes?: Map<string, NodeRecord>;
  targets?: Map<string, DockerTarget>;
  /** The release serving before this one, and the node it runs on. */
  previous: { release: Release; node: NodeRecord } | null;
  /** Delivery number of the message running this step (1 first). */
  attempt: number;
  /** Secret values opened for this step, masked in every log line written through it. */
  secretValues: string[];
  /** The step row being run, so a failure can close it. */
  currentStep: ReleaseStep | null;
  /** How many times the step re-queued itself before this message (0 for its first). */
  hop: number;
  /** The last probe answer an earlier slice of the health check logged. */
  seen: string | undefined;
  /** The project network its containers join, set by `containerEnv` when a data service is linked. */
  network?: string;
  /**
   * Aborts when the release is cancelled while the step runs (`watchCancel`): builds, source
   * fetches and image moves take it and stop at once.
   */
  signal?: AbortSignal;
  /**
   * The hash of what the release's containers run with (`core/releases/warm-reuse.ts`), set
   * by `containerEnv`: carried by each container as a label, compared by a warm reuse.
   */
  configurationHash?: string;
}

/** Loads what a release's steps need; NotFound when its service, environment or node is gone. */
export async function loadContext(
  deps: ReleaseDeps,
  repos: OrgRepos,
  release: Release,
  attempt: number,
): Promise<StepContext> {
  const service = await repos.services.get(release.serviceId);
  if (!service) throw new NotFound('service', release.serviceId);
  const environment = await repos.environments.get(release.environmentId);
  if (!environment) throw new NotFound('environment', release.environmentId);
  if (!release.nodeId) throw new NotFound('node', '(none)');
  const node = await repos.nodes.get(release.nodeId);
  if (!node) throw new NotFound('node', release.nodeId);
  let previous: StepContext['previous'] = null;
  if (release.previousReleaseId) {
    const prev = await repos.releases.get(release.previousReleaseId);
    const prevNode = prev?.nodeId ? await repos.nodes.get(prev.nodeId) : null;
    if (prev && prevNode) previous = { release: prev, node: prevNode };
  }
  return {
    deps,
    release,
    service,
    environment,
    node,
    target: null,
    previous,
    attempt,
    secretValues: [],
    currentStep: null,
    hop: 0,
    seen: undefined,
  };
}

const now = (c: { deps: Pick<ReleaseDeps, 'clock'> }) => c.deps.clock.now().toISOString();

/**
 * Below this length a value is masked only where it stands alone: replacing every `a` or
 * `1234` inside other words would wreck the error text and, by the pattern of `***`s,
 * spell the secret out.
 */
export const maskEverywhereMinLength = 8;
/** Shorter values are never masked: one or two characters cannot be told from the text around them. */
export const maskMinLength = 3;

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Replaces every secret value in `line` with `***`, longest first so overlaps mask fully. */
export function maskSecrets(line: string, secretValues: string[]): string {
  let out = line;
  for (const v of [...secretValues].sort((a, b) => b.length - a.length)) {
    if (v.length < maskMinLength) continue;
    if (v.length >= maskEverywhereMinLength) out = out.split(v).join('***');
    else
      out = out.replace(
        new RegExp(`(?<![\\p{L}\\p{N}_])${escapeRegExp(v)}(?![\\p{L}\\p{N}_])`, 'gu'),
        '***',
      );
  }
  return out;
}

/**
 * Appends lines to the release log (secret values masked), in one transaction; a line given
 * with its own stream keeps it, the others are `stream`'s.
 */
export async function appendLog(
  c: StepContext,
  lines: string | (string | { line: string; stream: ReleaseLogLine['stream'] })[],
  stream: ReleaseLogLine['stream'] = 'system',
): Promise<void> {
  const list = (Array.isArray(lines) ? lines : [lines]).map((l) => ({
    at: now(c),
    stream: typeof l === 'string' ? stream : l.stream,
    line: maskSecrets(typeof l === 'string' ? l : l.line, c.secretValues),
  }));
  if (list.length === 0) return;
  await c.deps.store.withOrg(c.release.orgId, (repos) =>
    repos.releaseLogs.append(c.release.id, list),
  );
}

/** Records the step as running (attempt n); a redelivered step replaces its earlier row. */
export async function beginStep(c: StepContext, name: string): Promise<ReleaseStep> {
  const step: ReleaseStep = {
    releaseId: c.release.id,
    orgId: c.release.orgId,
    name,
    status: 'running',
    attempt: c.attempt,
    startedAt: now(c),
    finishedAt: null,
    error: null,
  };
  await c.deps.store.withOrg(c.release.orgId, (repos) => repos.releaseSteps.upsert(step));
  c.currentStep = step;
  return step;
}

export async function endStep(
  c: StepContext,
  step: ReleaseStep,
  error: string | null = null,
): Promise<void> {
  const done: ReleaseStep = {
    ...step,
    status: error === null ? 'succeeded' : 'failed',
    finishedAt: now(c),
    error: error === null ? null : maskSecrets(error, c.secretValues),
  };
  await c.deps.store.withOrg(c.release.orgId, (repos) => repos.releaseSteps.upsert(done));
  if (c.currentStep?.name === step.name) c.currentStep = null;
}

/** Appends an engine event (`release.completed`, …) to the audit trail, inside `repos`' transaction. */
export async function appendEvent(
  deps: Pick<ReleaseDeps, 'ids' | 'clock' | 'events'>,
  repos: OrgRepos,
  release: Release,
  action: string,
  data: Record<string, unknown> = {},
  actor: { actorType: 'user' | 'api_key' | 'system'; actorId: string } = workerActor,
  requestId: string | null = null,
): Promise<void> {
  const event: AuditEvent = {
    id: deps.ids.newId('aud'),
    orgId: release.orgId,
    actorType: actor.actorType,
    actorId: actor.actorId,
    action,
    targetType: 'release',
    targetId: release.id,
    data: { serviceId: release.serviceId, environmentId: release.environmentId, ...data },
    requestId,
    createdAt: deps.clock.now().toISOString(),
  };
  await repos.audit.append(event);
  // Webhook fan-out checks that this row committed before anything is delivered.
  await deps.events?.publish(event);
}

/**
 * Compare-and-set from the context's status to `to`; false when another delivery moved
 * the release first (this one then stops). `extra` runs in the same transaction.
 */
export async function move(
  c: StepContext,
  to: ReleaseStatus,
  patch: Partial<Release> = {},
  extra?: (repos: OrgRepos, moved: Release) => Promise<void>,
): Promise<boolean> {
  const from = c.release.status;
  assertTransition(from, to);
  const at = now(c);
  const full = { ...patch, status: to, updatedAt: at };
  const moved = await c.deps.store.withOrg(c.release.orgId, async (repos) => {
    if (!(await repos.releases.transition(c.release.id, from, full))) return null;
    const next = { ...c.release, ...full };
    await extra?.(repos, next);
    return next;
  });
  if (!moved) {
    c.deps.logger.warn(
      { releaseId: c.release.id, from, to },
      'release moved by another delivery; this one stops',
    );
    return false;
  }
  c.release = moved;
  c.deps.logger.info(
    { orgId: moved.orgId, releaseId: moved.id, from, to, attempt: c.attempt },
    'release moved',
  );
  return true;
}

/** The id of a release's deploy job, derived so the worker needs no lookup to update it. */
export function deployJobIdOf(releaseId: string): string {
  return `job_${releaseId.slice(releaseId.indexOf('_') + 1)}`;
}

export async function updateDeployJob(
  deps: Pick<ReleaseDeps, 'clock'>,
  repos: OrgRepos,
  releaseId: string,
  patch: { status: 'running' | 'succeeded' | 'failed'; attempts?: number },
): Promise<void> {
  const job = await repos.deployJobs.get(deployJobIdOf(releaseId));
  if (!job) return;
  await repos.deployJobs.update(job.id, { ...patch, updatedAt: deps.clock.now().toISOString() });
}

/** The text after `<what> is unavailable: ` in an Unavailable error. */
function reasonOf(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/^[\w-]+ is unavailable: /, '');
}

/**
 * The Docker target of the release's node (or of `node`, the previous release's), its
 * credentials opened from the vault. Credentials that do not open fail the step for good
 * (they will not open on a retry; rotating them is the fix); an unreachable vault is
 * transient like an unreachable engine.
 */
export async function nodeTarget(c: StepContext, node: NodeRecord = c.node): Promise<DockerTarget> {
  const own = node.id === c.node.id;
  if (own && c.target) return c.target;
  const cached = c.targets?.get(node.id);
  if (cached) return cached;
  let target: DockerTarget;
  try {
    target = await openTarget(c.deps, node);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new StepFailed(message, isCoreError(e) && e.kind === 'unavailable', e);
  }
  if (own) c.target = target;
  (c.targets ??= new Map()).set(node.id, target);
  return target;
}

/** A replica's node: the release's own, the previous one's, or loaded once; gone → StepFailed. */
export async function nodeById(c: StepContext, id: string): Promise<NodeRecord> {
  if (id === c.node.id) return c.node;
  if (c.previous?.node.id === id) return c.previous.node;
  const cached = c.nodes?.get(id);
  if (cached) return cached;
  const node = await c.deps.store.withOrg(c.release.orgId, (repos) => repos.nodes.get(id));
  if (!node) throw new StepFailed(`node ${id} of a replica is gone`, false);
  (c.nodes ??= new Map()).set(id, node);
  return node;
}

/** Runs a Docker call; its failures become StepFailed (unreachable ones transient). */
export async function viaDocker<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isCoreError(e) && e.kind === 'unavailable')
      throw new StepFailed(`docker unreachable: ${reasonOf(e)}`, true, e);
    throw new StepFailed(e instanceof Error ? e.message : String(e), false, e);
  }
}

/** Runs a Caddy admin call; its failures become StepFailed (unreachable ones transient). */
export async function viaEdge<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isCoreError(e) && e.kind === 'unavailable')
      throw new StepFailed(`caddy admin unreachable: ${reasonOf(e)}`, true, e);
    throw new StepFailed(
      `edge route change failed: ${e instanceof Error ? e.message : String(e)}`,
      false,
      e,
    );
  }
}

/**
 * The environment of the release's containers: plain `service.env` with the opened
 * secrets over it. Opened values are remembered in the context, so logs mask them.
 */
export async function containerEnv(c: StepContext): Promise<Record<string, string>> {
  const { orgId } = c.release;
  const { id: serviceId } = c.service;
  const environmentId = c.environment.id;
  const secrets = await c.deps.store.withOrg(orgId, (repos) =>
    repos.secrets.list(serviceId, environmentId),
  );
  const env: Record<string, string> = { ...c.service.env };
  const secretVersions: Record<string, string> = {};
  for (const s of secrets) {
    secretVersions[s.name] = secretVersion(s.sealed);
    let value: string;
    try {
      value = await c.deps.vault.open(s.sealed, `${orgId}:${serviceId}:${environmentId}:${s.name}`);
    } catch (e) {
      // Vault errors name keys and contexts, never the plaintext (which it could not read).
      throw new StepFailed(
        `secret ${s.name} could not be opened: ${e instanceof Error ? e.message : String(e)}`,
        false,
      );
    }
    env[s.name] = value;
    if (!c.secretValues.includes(value)) c.secretValues.push(value);
  }
  // Linked data services come last: their URLs are selfdevop's, not the user's to override.
  const linked = await linkedDataEnv(c.deps, c.release.orgId, serviceId);
  for (const [name, value] of Object.entries(linked.env)) {
    env[name] = value;
    if (!c.secretValues.includes(value)) c.secretValues.push(value);
  }
  for (const pw of linked.passwords) if (!c.secretValues.includes(pw)) c.secretValues.push(pw);
  if (linked.network) c.network = linked.network;
  c.configurationHash = configurationHash({
    image: c.release.imageDigest ?? c.release.image,
    kind: c.service.kind,
    env: { ...c.service.env },
    secretVersions,
    linked: linked.env,
    network: linked.network,
    containerPort: c.service.containerPort,
    memoryMb: c.service.memoryMb,
    cpus: c.service.cpus,
    healthcheckPath: c.service.healthcheckPath,
    health: c.service.health,
    workerHealth: c.service.workerHealth,
    placementLabels: c.service.placement?.labels ?? {},
  });
  return env;
}

/**
 * Fails a release that no step has run for (it could not be loaded, or not be queued),
 * as it is: nothing to undo. A release that moved on meanwhile is left alone.
 */
export async function failUnstarted(
  deps: ReleaseDeps,
  repos: OrgRepos,
  release: Release,
  reason: string,
): Promise<void> {
  const at = deps.clock.now().toISOString();
  if (
    !(await repos.releases.transition(release.id, release.status, {
      status: 'failed',
      error: reason,
      finishedAt: at,
      updatedAt: at,
    }))
  )
    return;
  await updateDeployJob(deps, repos, release.id, { status: 'failed' });
  await appendEvent(deps, repos, { ...release, status: 'failed' }, 'release.failed', {
    reason,
    step: null,
  });
}

/**
 * Where the edge and the probe reach `info` on `node`: the node's registered address and
 * the port its engine published, which must be bound where it was asked. An engine that
 * answers anything else fails the step for good (a hostile engine does not get better).
 */
export function upstreamAt(
  c: Pick<StepContext, 'deps' | 'service'>,
  node: NodeRecord,
  info: ContainerInfo,
): string {
  if (c.service.containerPort === null)
    throw new StepFailed('a worker has no port: there is no upstream to route to', false);
  try {
    return upstreamOf(node, info, c.service.containerPort, {
      privateAddresses: c.deps.config.tenantPrivateNodes ?? false,
    });
  } catch (e) {
    if (e instanceof UntrustedBinding) throw new StepFailed(e.message, false, e);
    throw e;
  }
}
