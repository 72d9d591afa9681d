import { NotFound } from '../errors.ts';
import { releaseStatuses, type Release } from '../models.ts';
import { openNodeTarget } from '../nodes/credentials.ts';
import { upstreamOf, UntrustedBinding } from '../nodes/address.ts';
import { describeProbe } from '../releases/health.ts';
import type { ContainerRuntime, HealthProbe, KeyVault, OrgRepos } from '../ports.ts';
import { crashLoopWindowSeconds, newestCrashLoopEvents } from '../stats/collect.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';

/**
 * Whether the app answers now, apart from how its last deploy ended: an app still serving
 * its previous release after a failed deploy is `healthy`, with `lastDeploy.status` failed.
 * - `healthy`: the serving container runs and its health check passes;
 * - `unhealthy`: it runs (or restarts) but the check fails;
 * - `down`: its container is gone or stopped;
 * - `not_deployed`: no release has ever completed;
 * - `unknown`: its node could not be asked (the reason says why).
 */
export type AppHealthStatus = 'healthy' | 'unhealthy' | 'down' | 'not_deployed' | 'unknown';

export interface ServiceHealth {
  serviceId: string;
  environment: string;
  app: {
    status: AppHealthStatus;
    /** The release serving traffic, or null. */
    releaseId: string | null;
    image: string | null;
    container: {
      id: string;
      state: string;
      /** Times the engine restarted it (its restart policy); climbing means a crash loop. */
      restarts: number | null;
      check: 'passing' | 'failing' | 'not_checked';
      /** What the failing check saw: a status or an error. */
      checkError: string | null;
    } | null;
    /** Why the status is what it is, in words, when it is not healthy. */
    reason: string | null;
  };
  /**
   * Replicas of this environment reported crash-looping within the crash-loop window (the
   * usage collector's `replica.crash_looping` events): each restarted at least its service's
   * `crash_loop` threshold times in 15 minutes. Read from the audit trail, so both modes
   * show it, the cloud's API too (it reaches no engine); empty when none is looping.
   */
  crashLoops: CrashLoopReport[];
  /** How the newest release ended (or where it is); null when there is none. */
  lastDeploy: {
    releaseId: string;
    status: Release['status'];
    error: string | null;
    finishedAt: string | null;
  } | null;
}

export interface CrashLoopReport {
  releaseId: string;
  replica: string;
  nodeId: string;
  /** The container's restart count when it was reported, and how many fell in the window. */
  restarts: number;
  restartsInWindow: number;
  threshold: number;
  reportedAt: string;
}

/** The `replica.crash_looping` events of one environment within the window, newest first, one per replica. */
async function crashLoopsOf(
  repos: OrgRepos,
  serviceId: string,
  environmentId: string,
  now: number,
): Promise<CrashLoopReport[]> {
  const events = await newestCrashLoopEvents(repos, serviceId);
  const since = now - crashLoopWindowSeconds * 1000;
  const out: CrashLoopReport[] = [];
  const seen = new Set<string>();
  for (const e of events) {
    const d = e.data;
    if (d.environmentId !== environmentId || Date.parse(e.createdAt) < since) continue;
    const key = `${String(d.releaseId)}/${String(d.replica)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      releaseId: String(d.releaseId ?? ''),
      replica: String(d.replica ?? '0'),
      nodeId: String(d.nodeId ?? ''),
      restarts: Number(d.restarts ?? 0),
      restartsInWindow: Number(d.restartsInWindow ?? 0),
      threshold: Number(d.threshold ?? 0),
      reportedAt: e.createdAt,
    });
  }
  return out;
}

/** A live check waits this long at most: the page must answer at 3 a.m. even when the node does not. */
const checkTimeoutMs = 2_000;

export interface HealthReaders {
  runtime: ContainerRuntime;
  probe: HealthProbe;
  vault: KeyVault;
}

/** The app's health in one environment (by name), read live from its node, and its last deploy. */
export async function getServiceHealth(
  deps: CoreDeps & { release: HealthReaders },
  principal: Principal,
  serviceId: string,
  environmentName: string,
): Promise<ServiceHealth> {
  const p = requireOrg(principal);
  const { service, env, serving, latest, node, crashLoops } = await deps.store.withOrg(
    p.orgId,
    async (repos) => {
      const service = await repos.services.get(serviceId);
      if (!service) throw new NotFound('service', serviceId);
      const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
      const env = envs.items.find((e) => e.name === environmentName);
      if (!env) throw new NotFound('environment', environmentName);
      const serving = await repos.releases.latest(service.id, env.id, ['completed']);
      const latest = await repos.releases.latest(service.id, env.id, [...releaseStatuses]);
      const node = serving?.nodeId ? await repos.nodes.get(serving.nodeId) : null;
      const crashLoops = await crashLoopsOf(repos, service.id, env.id, deps.clock.now().getTime());
      return { service, env, serving, latest, node, crashLoops };
    },
  );
  const lastDeploy = latest
    ? {
        releaseId: latest.id,
        status: latest.status,
        error: latest.error,
        finishedAt: latest.finishedAt,
      }
    : null;
  const base = { serviceId: service.id, environment: env.name, crashLoops, lastDeploy };
  if (!serving)
    return {
      ...base,
      app: {
        status: 'not_deployed',
        releaseId: null,
        image: null,
        container: null,
        reason: 'no release has completed yet',
      },
    };
  const app = { releaseId: serving.id, image: serving.image };
  if (!node || !serving.containerId)
    return {
      ...base,
      app: {
        ...app,
        status: 'unknown',
        container: null,
        reason: 'the serving release has no node or container on record',
      },
    };
  let info;
  try {
    const target = await openNodeTarget(deps.release.vault, node);
    info = await deps.release.runtime.inspect(target, serving.containerId);
  } catch (e) {
    return {
      ...base,
      app: {
        ...app,
        status: 'unknown',
        container: null,
        reason: `node ${node.name} did not answer: ${(e as Error).message}`,
      },
    };
  }
  if (!info)
    return {
      ...base,
      app: { ...app, status: 'down', container: null, reason: 'the serving container is gone' },
    };
  const container = {
    id: info.id,
    state: info.state,
    restarts: info.restarts ?? null,
  };
  if (info.state !== 'running' && info.state !== 'restarting')
    return {
      ...base,
      app: {
        ...app,
        status: 'down',
        container: { ...container, check: 'not_checked', checkError: null },
        reason: `the serving container is ${info.state}`,
      },
    };
  // A worker has nothing to probe: it is healthy while it runs and is not being restarted.
  if (service.containerPort === null)
    return {
      ...base,
      app: {
        ...app,
        status: info.state === 'running' ? 'healthy' : 'unhealthy',
        container: { ...container, check: 'not_checked', checkError: null },
        reason:
          info.state === 'running'
            ? null
            : `the worker is restarting (${container.restarts ?? 0} restarts so far)`,
      },
    };
  // The node's address and the port its engine bound where it was asked, never the engine's
  // word for the address (a hostile engine would aim the check anywhere); a container that
  // publishes nothing right now (restarting) is checked where its release was routed.
  let upstream: string | null = serving.upstream;
  if (info.ports?.length) {
    try {
      upstream = upstreamOf(node, info, service.containerPort, {
        privateAddresses: deps.config.tenantPrivateNodes ?? false,
      });
    } catch (e) {
      if (!(e instanceof UntrustedBinding)) throw e;
      return {
        ...base,
        app: {
          ...app,
          status: 'unknown',
          container: { ...container, check: 'not_checked', checkError: null },
          reason: e.message,
        },
      };
    }
  }
  if (!upstream)
    return {
      ...base,
      app: {
        ...app,
        status: 'unknown',
        container: { ...container, check: 'not_checked', checkError: null },
        reason: 'the serving container publishes no address to check',
      },
    };
  const r = await deps.release.probe.check(
    `http://${upstream}${service.healthcheckPath}`,
    checkTimeoutMs,
  );
  return {
    ...base,
    app: {
      ...app,
      status: r.ok ? 'healthy' : 'unhealthy',
      container: {
        ...container,
        check: r.ok ? 'passing' : 'failing',
        checkError: r.ok ? null : describeProbe(r),
      },
      reason: r.ok ? null : `GET ${service.healthcheckPath} answered ${describeProbe(r)}`,
    },
  };
}
