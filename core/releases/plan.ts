import type { ContainerSpec, RouteSpec } from '../ports.ts';
import type { Environment, NodeRecord, Release, Service } from '../models.ts';

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

/** Labels that let an operator (and a reconciler) find selfdevop's containers. */
export function releaseLabels(
  release: Pick<Release, 'orgId' | 'serviceId' | 'environmentId' | 'id'>,
  role: 'web' | 'migrate',
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
}: CandidateInput): ContainerSpec {
  return {
    ...(network ? { network } : {}),
    name: replicaContainerName(
      { serviceId: service.id, environmentId: environment.id, id: release.id },
      index,
    ),
    image: releaseImage(release),
    // PORT comes last: the edge reaches the app on containerPort, whatever env says.
    env: { ...env, PORT: String(service.containerPort) },
    labels: releaseLabels(release, 'web'),
    containerPort: service.containerPort,
    publishIp: node.address,
    memoryMb: service.memoryMb,
    cpus: service.cpus,
    restartPolicy: 'unless-stopped',
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
    env: { ...env, PORT: String(service.containerPort) },
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
