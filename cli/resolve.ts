import { existsSync } from 'node:fs';
import type { ApiClient } from './client.ts';
import { CliError } from './config.ts';
import { defaultManifestFile, readManifest } from './manifest.ts';
import type {
  Domain as DomainRecord,
  Project as ProjectRecord,
  Release as ReleaseRecord,
  ReleaseStep,
  Service as ServiceRecord,
} from '../core/models.ts';
import { releaseStatuses } from '../core/models.ts';
import { isTerminal } from '../core/releases/state-machine.ts';

/** The API's replies as the CLI reads them: the core's records plus the fields views add. */
export type Project = ProjectRecord & { environments?: { id: string; name: string }[] };
export type Service = ServiceRecord & { hosts?: { environment: string; host: string }[] };
export type Step = ReleaseStep;
export type Release = ReleaseRecord & { steps?: Step[] };
export type Domain = Omit<DomainRecord, 'verificationToken'> & {
  records: { type: string; name: string; value: string }[];
  certDaysLeft: number | null;
};

/** Statuses a release does not leave. */
export const terminalStatuses: string[] = releaseStatuses.filter(isTerminal);

export const isId = (value: string, prefix: string) =>
  new RegExp(`^${prefix}_[0-9a-z]+$`).test(value);

export async function findProject(api: ApiClient, name: string): Promise<Project | null> {
  if (isId(name, 'prj')) return api.call<Project>('GET', `/api/projects/${name}`);
  const all = await api.all<Project>('/api/projects');
  return all.find((p) => p.name === name) ?? null;
}

/** The project named by --project, else by ./selfdevop.yml when there is one. */
async function projectHint(api: ApiClient, project: string | undefined): Promise<Project | null> {
  const name =
    project ?? (existsSync(defaultManifestFile) ? (await readManifest()).project : undefined);
  if (!name) return null;
  const found = await findProject(api, name);
  if (!found) throw new CliError(`project ${name} not found`);
  return found;
}

/** A service by id, or by name within --project (or selfdevop.yml's project, or the only one so named). */
export async function resolveService(
  api: ApiClient,
  service: string | undefined,
  project?: string,
): Promise<Service> {
  if (!service) {
    const hint = existsSync(defaultManifestFile) ? await readManifest() : null;
    const names = hint ? Object.keys(hint.services) : [];
    if (names.length !== 1) throw new CliError('which service? pass --service NAME (or an id)', 2);
    service = names[0]!;
  }
  if (isId(service, 'svc')) return api.call<Service>('GET', `/api/services/${service}`);
  const p = await projectHint(api, project);
  const all = await api.all<Service>(p ? `/api/services?projectId=${p.id}` : '/api/services');
  const matches = all.filter((s) => s.name === service);
  if (matches.length === 0)
    throw new CliError(`service ${service} not found${p ? ` in project ${p.name}` : ''}`);
  if (matches.length > 1)
    throw new CliError(
      `several services are named ${service}: pass --project NAME or the service id`,
    );
  return api.call<Service>('GET', `/api/services/${matches[0]!.id}`);
}

/** Releases of a service, oldest first (as the API lists them). */
export function releasesOf(api: ApiClient, serviceId: string): Promise<Release[]> {
  return api.all<Release>(`/api/releases?serviceId=${serviceId}`);
}
