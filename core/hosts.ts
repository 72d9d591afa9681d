import type { Environment, Service } from './models.ts';

/**
 * The default host a service environment is served at, under the edge domain:
 * `<service>-<environment>-<6 chars of the service id>.<edgeDomain>`. The id part keeps
 * hosts of same-named services in different orgs apart.
 */
export function defaultHost(
  service: Pick<Service, 'id' | 'name'>,
  environment: Pick<Environment, 'name'>,
  edgeDomain: string,
): string {
  const suffix = service.id.slice(-6).toLowerCase();
  return `${service.name}-${environment.name}-${suffix}.${edgeDomain}`.toLowerCase();
}
