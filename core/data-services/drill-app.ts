/**
 * A restore drill that starts the linked apps (issue 15): when a data service is linked to
 * app services, the drill's restored server runs on a network of the drill's own (Docker's
 * `Internal`: no route out, nothing else on it), each linked service's current image starts
 * on it with its env and the link's URL pointing at the restored copy, and its health check
 * runs from a one-off on that network. Plans here are data (tested by equality); the worker
 * part (`checkLinkedApps`) runs them and says why an app did not come up.
 */
import type { DataService, Release, Service } from '../models.ts';
import type { ContainerSpec, DockerTarget, KeyVault, OrgRepos, Store } from '../ports.ts';
import { releaseImage } from '../releases/plan.ts';
import { secretContext } from '../secrets/use-cases.ts';
import type { DataServiceDeps } from './deps.ts';
import { linkedDataEnv } from './links.ts';
import { connectionUrl, dataEngineImages, dataServiceLabels } from './plan.ts';

/** The drill's own network: only its server, the apps and their probe join it. */
export const drillNetworkName = (backupId: string): string =>
  `sdo-drill-${backupId.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-')}`;

/**
 * The restored server's container name, which is also its host name on the drill network:
 * short enough for one DNS label (63), which the data service's name and the backup's would not be.
 */
export const drillServerName = (_d: Pick<DataService, 'id'>, backupId: string): string =>
  `${drillNetworkName(backupId)}-data`;

/** A linked service as a drill starts it: its newest completed release and the link's env name. */
export interface DrillApp {
  service: Service;
  release: Release;
  envName: string;
}

const drillLabels = (d: DataService, extra: Record<string, string> = {}) => ({
  ...dataServiceLabels(d),
  'selfdevop.role': 'data-drill',
  ...extra,
});

/**
 * The app's container in the drill: the release's image with `env` (the link's URL already
 * pointing at the restored copy), on the drill network only, nothing published, never restarted.
 */
export function planDrillApp(
  d: DataService,
  app: DrillApp,
  env: Record<string, string>,
  backupId: string,
  index: number,
): ContainerSpec {
  const { service, release } = app;
  return {
    name: `${drillNetworkName(backupId)}-app-${index}`,
    image: releaseImage(release),
    env: service.containerPort === null ? env : { ...env, PORT: String(service.containerPort) },
    labels: drillLabels(d, { 'selfdevop.service': service.id, 'selfdevop.release': release.id }),
    restartPolicy: 'no',
    network: drillNetworkName(backupId),
    internalNetwork: true,
    memoryMb: service.memoryMb,
    cpus: service.cpus,
  };
}

/**
 * The app's health check, run from a one-off on the drill network (the control plane cannot
 * reach an internal network on a node): bash's /dev/tcp sends `GET <path>` as the release's
 * gate would, every `intervalMs`, until `successes` consecutive 2xx/3xx answers or
 * `deadlineMs`. Host, port and path arrive in env, never inside the script. It prints the last
 * status line, and exits 0 only when healthy.
 */
export function planDrillProbe(
  d: DataService,
  app: DrillApp,
  backupId: string,
  index: number,
): ContainerSpec {
  const image = dataEngineImages[d.engine].versions[d.version];
  if (!image) throw new Error(`no image for ${d.engine} ${d.version}`);
  const { health, containerPort, healthcheckPath } = app.service;
  const seconds = (ms: number) => (Math.max(ms, 1) / 1000).toFixed(3);
  return {
    name: `${drillNetworkName(backupId)}-probe-${index}`,
    image,
    env: {
      H: `${drillNetworkName(backupId)}-app-${index}`,
      P: String(containerPort),
      U: healthcheckPath,
      T: seconds(health.timeoutMs),
      I: seconds(health.intervalMs),
      S: String(Math.max(1, health.successes)),
      D: String(Math.max(1, Math.ceil(health.deadlineMs / 1000))),
    },
    labels: drillLabels(d, { 'selfdevop.service': app.service.id }),
    restartPolicy: 'no',
    network: drillNetworkName(backupId),
    internalNetwork: true,
    entrypoint: [
      'bash',
      '-c',
      [
        'end=$(( $(date +%s) + D )); ok=0; last="no answer"; n=0',
        // Bounded by time and by count (a clock that does not move cannot hold it forever).
        'while [ "$(date +%s)" -lt "$end" ] && [ "$n" -lt 100000 ]; do',
        '  n=$((n+1))',
        '  line=$(timeout "$T" bash -c \'exec 3<>"/dev/tcp/$H/$P" || exit 1; printf "GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n" "$U" "$H" >&3; head -n 1 <&3\' 2>/dev/null | tr -d "\\r") || line=""',
        '  case "$line" in',
        '    HTTP/*" "[23][0-9][0-9]*) ok=$((ok+1)); last="$line" ;;',
        '    "") ok=0; last="no answer" ;;',
        '    *) ok=0; last="$line" ;;',
        '  esac',
        '  if [ "$ok" -ge "$S" ]; then echo "healthy: $last"; exit 0; fi',
        '  sleep "$I"',
        'done',
        'echo "unhealthy: $last"; exit 1',
      ].join('\n'),
    ],
  };
}

/** The linked services that have a completed release (the newest, across environments). */
export async function drillApps(store: Store, ds: DataService): Promise<DrillApp[]> {
  return store.withOrg(ds.orgId, async (repos) => {
    const out: DrillApp[] = [];
    for (const link of await repos.dataServiceLinks.list({ dataServiceId: ds.id })) {
      const service = await repos.services.get(link.serviceId);
      if (!service) continue;
      const release = await newestCompleted(repos, service);
      if (release) out.push({ service, release, envName: link.envName });
    }
    return out;
  });
}

async function newestCompleted(repos: OrgRepos, service: Service): Promise<Release | null> {
  const envs = await repos.environments.list({ limit: 100 }, { projectId: service.projectId });
  let newest: Release | null = null;
  for (const env of envs.items) {
    const r = await repos.releases.latest(service.id, env.id, ['completed']);
    if (r && (!newest || (r.finishedAt ?? r.createdAt) > (newest.finishedAt ?? newest.createdAt)))
      newest = r;
  }
  return newest;
}

/**
 * The env an app gets in the drill: what its release runs with (plain env, its environment's
 * secrets, its other links) and, last, this link's URL to the restored copy with the drill's
 * password. Other data services stay unreachable: the drill network holds none of them.
 */
export async function drillAppEnv(
  deps: { store: Store; vault: KeyVault },
  ds: DataService,
  app: DrillApp,
  drillPassword: string,
  backupId: string,
): Promise<Record<string, string>> {
  const { service, release } = app;
  const secrets = await deps.store.withOrg(ds.orgId, (repos) =>
    repos.secrets.list(service.id, release.environmentId),
  );
  const env: Record<string, string> = { ...service.env };
  for (const s of secrets)
    env[s.name] = await deps.vault.open(
      s.sealed,
      secretContext(ds.orgId, service.id, release.environmentId, s.name),
    );
  Object.assign(env, (await linkedDataEnv(deps, ds.orgId, service.id)).env);
  env[app.envName] = connectionUrl(ds, drillPassword, drillServerName(ds, backupId));
  return env;
}

/**
 * Starts each app against the restored copy and runs its health check; answers why one did
 * not come up (its probe's last answer, or how its container ended), or null when all did. A
 * worker service (nothing to probe) passes when it is still running after its interval.
 * Removes the apps and probes it started, whatever happened.
 */
export async function checkLinkedApps(
  deps: Pick<DataServiceDeps, 'store' | 'vault' | 'runtime' | 'clock'>,
  target: DockerTarget,
  ds: DataService,
  apps: DrillApp[],
  drillPassword: string,
  backupId: string,
): Promise<string | null> {
  const started: string[] = [];
  try {
    for (const [i, app] of apps.entries()) {
      const env = await drillAppEnv(deps, ds, app, drillPassword, backupId);
      const spec = planDrillApp(ds, app, env, backupId, i);
      const what = `app ${app.service.name} (${spec.image})`;
      started.push(spec.name);
      try {
        await deps.runtime.start(target, spec);
      } catch (e) {
        return `${what} could not start against the restored copy: ${e instanceof Error ? e.message : String(e)}`;
      }
      if (app.service.containerPort === null) {
        await deps.clock.sleep(Math.max(1000, app.service.health.intervalMs));
      } else {
        const probe = planDrillProbe(ds, app, backupId, i);
        const r = await deps.runtime.runOnce(target, probe, app.service.health.deadlineMs + 60_000);
        if (r.exitCode === 0) continue;
        const seen = r.output.trim().split('\n').pop() ?? '';
        const after = await ended(deps, target, spec.name);
        return `${what} did not become healthy against the restored copy: GET ${app.service.healthcheckPath} ${seen.replace(/^unhealthy: /, '') || 'gave no answer'}${after}`;
      }
      const info = await deps.runtime.inspect(target, spec.name);
      if (info?.state !== 'running')
        return `${what} did not keep running against the restored copy${await ended(deps, target, spec.name)}`;
    }
    return null;
  } finally {
    for (const name of started) await deps.runtime.remove(target, name).catch(() => undefined);
  }
}

/** `; it exited` when the app's container is no longer running, else nothing. */
async function ended(
  deps: Pick<DataServiceDeps, 'runtime'>,
  target: DockerTarget,
  name: string,
): Promise<string> {
  const info = await deps.runtime.inspect(target, name).catch(() => null);
  if (!info) return '; its container is gone';
  return info.state === 'running' ? '' : `; its container is ${info.state}`;
}
