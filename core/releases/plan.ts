import type { ContainerSpec, HealthCommand, LogRotation, RouteSpec } from '../ports.ts';
import type { Environment, NodeRecord, Release, Service } from '../models.ts';
import { configurationLabel } from './warm-reuse.ts';

/**
 * The release engine's plans: container specs and routes as data. The runtime and edge
 * adapters apply them; tests compare them by exact equality, with no Docker or Caddy.
 */

/** Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*; ids are opaque, so make them fit. */
function dockerSafe(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');
}

/** A DNS label: [a-z0-9-], no leading or trailing dash, at most `max` characters. */
function dnsLabel(s: string, max: number): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .slice(0, max)
    .replace(/^-+|-+$/g, '');
}

/** The deterministic container name of a release, so starting it twice finds the first one. */
export function containerName(
  release: Pick<Release, 'serviceId' | 'environmentId' | 'id'>,
): string {
  return dockerSafe(`sdo-${release.serviceId}-${release.environmentId}-${release.id}`);
}

/**
 * The container of replica `index` of a release: replica 0 keeps the release's own name, so
 * releases from before replicas and one-replica services look as they always did.
 */
export function replicaContainerName(
  release: Pick<Release, 'serviceId' | 'environmentId' | 'id'>,
  index: number,
): string {
  return index === 0 ? containerName(release) : `${containerName(release)}-r${index}`;
}

/** The container name of a release's one-off migration. */
export function migrationContainerName(
  release: Pick<Release, 'serviceId' | 'environmentId' | 'id'>,
): string {
  return `${containerName(release)}-migrate`;
}

/** The edge route id of a service environment: one route, its upstream moves per release. */
export function routeId(serviceId: string, environmentId: string): string {
  return dockerSafe(`sdo-${serviceId}-${environmentId}`);
}

/**
 * Log rotation on every container selfdevop starts (apps, migrations, data services, the
 * edge): 3 files of 10 MB, so one container's log holds at most 30 MB on its node and a
 * chatty app cannot fill the disk. `docker logs` and the app-logs API read across the files.
 */
export const containerLogRotation: LogRotation = { maxSizeMb: 10, maxFiles: 3 };

/** Labels that let an operator (and a reconciler) find selfdevop's containers. */
export function releaseLabels(
  release: Pick<Release, 'orgId' | 'serviceId' | 'environmentId' | 'id'>,
  role: 'web' | 'worker' | 'migrate',
): Record<string, string> {
  return {
    'selfdevop.org': release.orgId,
    'selfdevop.service': release.serviceId,
    'selfdevop.environment': release.environmentId,
    'selfdevop.release': release.id,
    'selfdevop.role': role,
  };
}

export interface CandidateInput {
  service: Service;
  environment: Environment;
  release: Release;
  node: NodeRecord;
  /** Plain env with the opened secrets merged over it. */
  env: Record<string, string>;
  /** The project network, when the service is linked to a data service (reachable only there). */
  network?: string;
  /** Which replica (0 when absent). */
  index?: number;
  /**
   * The configuration hash (`core/releases/warm-reuse.ts`), carried as a label so a later
   * redeploy of the same image can tell the container runs what it would start.
   */
  configurationHash?: string;
}

/** The image a release runs: the resolved digest once known, so a redeploy is exact. */
export function releaseImage(release: Pick<Release, 'image' | 'imageDigest'>): string {
  return release.imageDigest ?? release.image;
}

/** The long-running container that serves a release. */
export function planCandidate({
  service,
  environment,
  release,
  node,
  env,
  network,
  index = 0,
  configurationHash,
}: CandidateInput): ContainerSpec {
  const labels = (role: 'web' | 'worker') => ({
    ...releaseLabels(release, role),
    ...(configurationHash ? { [configurationLabel]: configurationHash } : {}),
  });
  const base = {
    ...(network ? { network } : {}),
    name: replicaContainerName(
      { serviceId: service.id, environmentId: environment.id, id: release.id },
      index,
    ),
    image: releaseImage(release),
  };
  if (service.containerPort === null)
    // A worker publishes nothing: no port, no address, nothing the edge could reach.
    return {
      ...base,
      env,
      labels: labels('worker'),
      memoryMb: service.memoryMb,
      cpus: service.cpus,
      restartPolicy: 'unless-stopped',
      ...swarmPlacement(service, node, index),
      ...swarmWorkerHealth(service, node),
    };
  return {
    ...base,
    // PORT comes last: the edge reaches the app on containerPort, whatever env says.
    env: { ...env, PORT: String(service.containerPort) },
    labels: labels('web'),
    containerPort: service.containerPort,
    publishIp: node.address,
    memoryMb: service.memoryMb,
    cpus: service.cpus,
    restartPolicy: 'unless-stopped',
    ...swarmPlacement(service, node, index),
  };
}

/**
 * On a Swarm the service's placement labels go with the spec, as Swarm constraints, and the
 * replica's index, so the runtime spreads the release's replicas over members (Swarm places
 * each one-task service alone and would not).
 */
const swarmPlacement = (
  service: Pick<Service, 'placement'>,
  node: Partial<Pick<NodeRecord, 'kind'>>,
  index: number,
): Pick<ContainerSpec, 'placementLabels' | 'replicaIndex'> =>
  node.kind !== 'swarm'
    ? {}
    : {
        ...(Object.keys(service.placement?.labels ?? {}).length > 0
          ? { placementLabels: { ...service.placement!.labels } }
          : {}),
        replicaIndex: index,
      };

/**
 * On a Swarm a worker's health command goes with the spec, as the task's own health check:
 * selfdevop cannot exec into a task (it runs on a member's engine; selfdevop holds
 * credentials only for the manager), and Swarm then starts the task only once the check
 * passed and replaces a task whose check keeps failing. An engine gets none: the gate runs
 * the command there by exec, once.
 */
const swarmWorkerHealth = (
  service: Pick<Service, 'workerHealth' | 'health'>,
  node: Partial<Pick<NodeRecord, 'kind'>>,
): Pick<ContainerSpec, 'healthCommand'> => {
  const check = node.kind === 'swarm' ? workerHealthCheck(service) : null;
  return check ? { healthCommand: check } : {};
};

/**
 * The shortest interval of a worker's health check: it runs for the task's whole life (a
 * shell started in the container each time), not once as the gate's exec does, so a web
 * probe's 100 ms would cost the member a process ten times a second for nothing. A second
 * also bounds what the first run adds to a deploy (it comes one interval after the start).
 */
export const workerHealthCheckMinIntervalMs = 1000;

/** Consecutive failures after the start period that make the task unhealthy (Docker's default). */
export const workerHealthCheckRetries = 3;

/**
 * A worker's health command as the runtime's health check (pure), or null without one.
 * Failures within its first `stableSeconds` do not count (the gate on an engine runs the
 * command only after them, so a worker may still be connecting then); a success ends that
 * period at once, so a healthy worker starts after one interval. The timeout is at least
 * 5 s (a shell command in a busy container, where the web probe's is tuned for one HTTP
 * request) and at most the 30 s the gate's exec allows.
 */
export function workerHealthCheck(
  service: Pick<Service, 'workerHealth' | 'health'>,
): HealthCommand | null {
  const wh = service.workerHealth;
  if (!wh?.command) return null;
  return {
    command: ['sh', '-c', wh.command],
    intervalMs: Math.max(workerHealthCheckMinIntervalMs, service.health.intervalMs),
    timeoutMs: Math.min(30_000, Math.max(5_000, service.health.timeoutMs)),
    retries: workerHealthCheckRetries,
    startPeriodMs: wh.stableSeconds * 1000,
  };
}

/** The one-off container that runs `service.migrateCommand` with the new image and env. */
export function planMigration({
  service,
  environment,
  release,
  env,
  network,
}: Omit<CandidateInput, 'node'>): ContainerSpec {
  if (service.migrateCommand === null)
    throw new Error(`service ${service.id} has no migrate command`);
  return {
    ...(network ? { network } : {}),
    name: migrationContainerName({
      serviceId: service.id,
      environmentId: environment.id,
      id: release.id,
    }),
    image: releaseImage(release),
    env: service.containerPort === null ? env : { ...env, PORT: String(service.containerPort) },
    labels: releaseLabels(release, 'migrate'),
    cmd: ['sh', '-c', service.migrateCommand],
    memoryMb: service.memoryMb,
    cpus: service.cpus,
    restartPolicy: 'no',
  };
}

/** The edge route of a service environment, sending traffic to `upstreams`. */
export function planRoute({
  service,
  environment,
  upstreams,
  hosts,
}: {
  service: Service;
  environment: Environment;
  upstreams: string[];
  hosts: string[];
}): RouteSpec {
  return {
    id: routeId(service.id, environment.id),
    hosts,
    upstreams,
    sticky: service.sticky,
    drainSeconds: service.drainSeconds,
    // Only when asked: routes read back from Caddy carry it only then.
    ...(service.loadBalancing === 'least_conn' ? { loadBalancing: 'least_conn' as const } : {}),
  };
}

/**
 * The host a service environment is served at under the edge domain:
 * `<service>-<environment>-<last 6 of service id>.<edgeDomain>`, one DNS label.
 */
export function defaultHosts({
  service,
  environment,
  edgeDomain,
}: {
  service: Pick<Service, 'id' | 'name'>;
  environment: Pick<Environment, 'name'>;
  edgeDomain: string;
}): string[] {
  const suffix = dnsLabel(service.id.slice(-6), 6) || 'x';
  // 63 is the DNS label limit; the suffix keeps hosts of same-named services apart.
  const head = dnsLabel(`${service.name}-${environment.name}`, 63 - suffix.length - 1);
  const label = head ? `${head}-${suffix}` : suffix;
  return [`${label}.${edgeDomain.toLowerCase().replace(/\.$/, '')}`];
}

/** The steps a release of `service` runs, in order: a worker's skip the edge (no route to switch). */
export function releasePlan(
  service: Pick<Service, 'kind'>,
): readonly (
  'build' | 'start_candidate' | 'migrate' | 'health_check' | 'switch_traffic' | 'complete'
)[] {
  const all = [
    'build',
    'start_candidate',
    'migrate',
    'health_check',
    'switch_traffic',
    'complete',
  ] as const;
  return service.kind === 'worker' ? all.filter((s) => s !== 'switch_traffic') : all;
}

/**
 * A worker's health gate as data: how long it must stay up with its engine restart count
 * unchanged, how often to look, the command (as `sh -c`) that must exit 0 when set, and who
 * runs it: selfdevop by exec once the worker is stable, or on a Swarm (`onSwarm`) the task's
 * own health check (`workerHealthCheck`), which had passed when Swarm reported the task
 * running, and which Swarm keeps running.
 */
export function planWorkerGate(
  service: Pick<Service, 'workerHealth' | 'health'>,
  onSwarm = false,
): {
  stableMs: number;
  pollMs: number;
  deadlineMs: number;
  command: string[] | null;
  commandRunBy: 'exec' | 'swarm_health_check';
} {
  const wh = service.workerHealth ?? { stableSeconds: 10, command: null };
  const stableMs = wh.stableSeconds * 1000;
  return {
    stableMs,
    pollMs: Math.min(1000, stableMs),
    // Long enough to see it stable once after a slow start, bounded by the service's deadline.
    deadlineMs: Math.max(service.health.deadlineMs, stableMs * 2),
    command: wh.command ? ['sh', '-c', wh.command] : null,
    commandRunBy: onSwarm ? 'swarm_health_check' : 'exec',
  };
}
