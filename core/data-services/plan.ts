import type { DataEngine, DataService, DataServiceSettings } from '../models.ts';
import type { ContainerSpec } from '../ports.ts';

/**
 * Data services' plans as data: the server container, its readiness check, the project
 * network and the URL a link hands to app containers. Tested by exact equality.
 */

/** Each engine with the versions this build's images carry (built by selfhost/build-images.sh --data). */
export const dataEngineImages: Record<
  DataEngine,
  { versions: Record<string, string>; defaultVersion: string }
> = {
  redis: { versions: { '7': 'selfdevop/redis:7' }, defaultVersion: '7' },
  // Debian bookworm ships 10.11, the version the issue asks for.
  mariadb: { versions: { '10.11': 'selfdevop/mariadb:10.11' }, defaultVersion: '10.11' },
  postgres: { versions: { '15': 'selfdevop/postgres:15' }, defaultVersion: '15' },
};

/** What a link's env var is called unless the caller names it. */
export const defaultLinkEnvName: Record<DataEngine, string> = {
  redis: 'REDIS_URL',
  mariadb: 'DATABASE_URL',
  postgres: 'DATABASE_URL',
};

/** Redis's settings when none are given: explicit, never Redis's own unbounded default. */
export const defaultRedisSettings: Required<DataServiceSettings> = {
  maxmemoryMb: 256,
  evictionPolicy: 'noeviction',
  persistence: 'rdb',
};

const ports: Record<DataEngine, number> = { redis: 6379, mariadb: 3306, postgres: 5432 };
const dataPaths: Record<DataEngine, string> = {
  redis: '/data',
  mariadb: '/var/lib/mysql',
  postgres: '/var/lib/postgresql/data',
};

/** The network a project's app and data containers share; nothing else joins it. */
export const projectNetworkName = (projectId: string): string =>
  `sdo-net-${projectId.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-')}`;

/** The container's name, which is also its host name on the project network. */
export const dataContainerName = (d: Pick<DataService, 'id'>): string =>
  `sdo-data-${d.id.toLowerCase().replace(/[^a-z0-9_.-]+/g, '-')}`;

export const dataVolumeName = (d: Pick<DataService, 'id'>): string =>
  `${dataContainerName(d)}-data`;

/** The database and user inside MariaDB and PostgreSQL: one per data service, named `app`. */
const dbName = 'app';

export const dataServiceSecretContext = (orgId: string, id: string): string =>
  `${orgId}:data-service:${id}`;

export function dataServiceLabels(d: Pick<DataService, 'orgId' | 'projectId' | 'id'>) {
  return {
    'selfdevop.org': d.orgId,
    'selfdevop.project': d.projectId,
    'selfdevop.data-service': d.id,
    'selfdevop.role': 'data',
  };
}

/** The long-running server: on the project network only, its port published nowhere. */
export function planDataContainer(d: DataService, password: string): ContainerSpec {
  const image = dataEngineImages[d.engine].versions[d.version];
  if (!image) throw new Error(`no image for ${d.engine} ${d.version}`);
  const env: Record<string, string> =
    d.engine === 'redis'
      ? {
          REDIS_PASSWORD: password,
          REDIS_MAXMEMORY: `${d.settings.maxmemoryMb ?? defaultRedisSettings.maxmemoryMb}mb`,
          REDIS_MAXMEMORY_POLICY: d.settings.evictionPolicy ?? defaultRedisSettings.evictionPolicy,
          REDIS_PERSISTENCE: d.settings.persistence ?? defaultRedisSettings.persistence,
        }
      : d.engine === 'mariadb'
        ? { MARIADB_DATABASE: dbName, MARIADB_USER: dbName, MARIADB_PASSWORD: password }
        : { POSTGRES_DB: dbName, POSTGRES_USER: dbName, POSTGRES_PASSWORD: password };
  return {
    name: dataContainerName(d),
    image,
    env,
    labels: dataServiceLabels(d),
    restartPolicy: 'unless-stopped',
    network: projectNetworkName(d.projectId),
    volumes: [`${dataVolumeName(d)}:${dataPaths[d.engine]}`],
  };
}

/**
 * A one-off client on the project network that exits 0 once the server answers an
 * authenticated query: proves the server is up, the password right and the network joined.
 */
export function planReadinessCheck(d: DataService, password: string): ContainerSpec {
  const host = dataContainerName(d);
  const base = planDataContainer(d, password);
  const probe: Record<DataEngine, { entrypoint: string[]; env: Record<string, string> }> = {
    redis: {
      // REDISCLI_AUTH keeps the password off the command line.
      entrypoint: ['redis-cli', '-h', host, '-p', '6379', 'ping'],
      env: { REDISCLI_AUTH: password },
    },
    mariadb: {
      entrypoint: ['mariadb', '-h', host, '-u', dbName, dbName, '-e', 'select 1'],
      env: { MYSQL_PWD: password },
    },
    postgres: {
      entrypoint: ['psql', '-h', host, '-U', dbName, '-d', dbName, '-c', 'select 1'],
      env: { PGPASSWORD: password },
    },
  };
  return {
    name: `${host}-ready`,
    image: base.image,
    env: probe[d.engine].env,
    labels: { ...dataServiceLabels(d), 'selfdevop.role': 'data-check' },
    entrypoint: probe[d.engine].entrypoint,
    restartPolicy: 'no',
    network: base.network!,
  };
}

/**
 * The URL a link hands to app containers; reachable only on the project network (or, with
 * `host`, a drill's restored copy on the drill's own network).
 */
export function connectionUrl(
  d: Pick<DataService, 'id' | 'engine'>,
  password: string,
  host = dataContainerName(d),
): string {
  const pw = encodeURIComponent(password);
  if (d.engine === 'redis') return `redis://:${pw}@${host}:${ports.redis}/0`;
  if (d.engine === 'mariadb') return `mysql://${dbName}:${pw}@${host}:${ports.mariadb}/${dbName}`;
  return `postgres://${dbName}:${pw}@${host}:${ports.postgres}/${dbName}`;
}
