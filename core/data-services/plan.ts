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

/**
 * Adds images the operator built (`DATA_IMAGES`: a newer minor of a line this build ships),
 * so data services can be created at or upgraded to them. The catalog is the process's
 * one list; adding the same entry again changes nothing.
 */
export function addDataImages(
  list: readonly { engine: DataEngine; version: string; image: string }[],
): void {
  for (const { engine, version, image } of list) dataEngineImages[engine].versions[version] = image;
}

/**
 * The engine's release line a version belongs to: what an in-place upgrade may not leave.
 * MariaDB's lines are `major.minor` (10.11.x are its minors); PostgreSQL's and Redis's the
 * first number (15.x, 7.x). Across a line the data files change format (PostgreSQL needs
 * pg_upgrade or a dump), so that is a restore into a new service, never a swap.
 */
export function releaseLine(engine: DataEngine, version: string): string {
  const parts = version.split('.');
  return engine === 'mariadb' ? parts.slice(0, 2).join('.') : parts[0]!;
}

/** Compares dotted versions numerically (a missing part is 0): negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

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

/**
 * The database and user inside a dedicated MariaDB or PostgreSQL server (and a shareable
 * server's own administering user): named `app`.
 */
const dbName = 'app';

/** Where a data service's data is reached: a server's container, a database and a user. */
export interface DataEndpoint {
  host: string;
  database: string;
  user: string;
}

/**
 * A dedicated data service is its own server, database and user `app`; one on a shared
 * server is the database and user named after its id on that server's container. Both
 * names fit MariaDB's 64/80 and PostgreSQL's 63 characters, and need no quoting.
 */
export function dataEndpoint(d: Pick<DataService, 'id' | 'sharedServerId'>): DataEndpoint {
  if (!d.sharedServerId) return { host: dataContainerName(d), database: dbName, user: dbName };
  const name = `sdo_${d.id.toLowerCase().replace(/[^a-z0-9]+/g, '_')}`.slice(0, 60);
  return { host: dataContainerName({ id: d.sharedServerId }), database: name, user: name };
}

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
    ...(d.shareable && d.engine === 'mariadb' ? { entrypoint: shareableMariadbEntrypoint } : {}),
  };
}

/**
 * A shareable MariaDB server's user `app` creates the databases and users of the apps it
 * holds. The image grants it its own database only and keeps root on the container's unix
 * socket, so the server starts with an init file (run by mariadbd itself at every start,
 * after the image's first-start initialisation made `app`) granting it the rest. PostgreSQL's
 * `app` already has CREATEROLE and gives itself CREATEDB (`planSharedDatabase`).
 */
const shareableMariadbEntrypoint = [
  'sh',
  '-c',
  [
    `echo "GRANT ALL PRIVILEGES ON *.* TO '${dbName}'@'%' WITH GRANT OPTION;" >/tmp/sdo-shareable.sql`,
    'exec /usr/local/bin/selfdevop-mariadb --init-file=/tmp/sdo-shareable.sql',
  ].join('\n'),
];

/**
 * A one-off on the project network that, as the shareable server's `app`, makes (`create`)
 * or removes a data service's database and user on it. `create` is idempotent (a redelivered
 * message sets the same password again) and revokes PUBLIC's access so no other app's user
 * connects to it. `drop` removes both; `disable` keeps the database (the delete's
 * `volume=keep`) and takes the user's login away. Passwords arrive in env, never on a
 * command line; the names are the endpoint's (`sdo_` + the id: no quoting needed).
 */
export function planSharedDatabase(
  server: DataService,
  d: Pick<DataService, 'id' | 'sharedServerId'>,
  serverPassword: string,
  action: 'create' | 'drop' | 'disable',
  password = '',
): ContainerSpec {
  const at = dataEndpoint(d);
  const host = dataContainerName(server);
  const image = dataEngineImages[server.engine].versions[server.version];
  if (!image) throw new Error(`no image for ${server.engine} ${server.version}`);
  const sql =
    server.engine === 'mariadb'
      ? {
          create: [
            'CREATE DATABASE IF NOT EXISTS $U;',
            "CREATE USER IF NOT EXISTS '$U'@'%' IDENTIFIED BY '$DB_PASSWORD';",
            "ALTER USER '$U'@'%' IDENTIFIED BY '$DB_PASSWORD';",
            "GRANT ALL PRIVILEGES ON $U.* TO '$U'@'%';",
          ],
          drop: ['DROP DATABASE IF EXISTS $U;', "DROP USER IF EXISTS '$U'@'%';"],
          disable: ["DROP USER IF EXISTS '$U'@'%';"],
        }[action]
      : {
          create: [
            `ALTER ROLE ${dbName} CREATEDB;`,
            "SELECT format('CREATE ROLE %I', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec",
            "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'u', :'pw') \\gexec",
            `SELECT format('GRANT %I TO ${dbName}', :'u') \\gexec`,
            "SELECT format('CREATE DATABASE %I OWNER %I', :'u', :'u') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'u') \\gexec",
            "SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'u') \\gexec",
            `REVOKE ALL ON DATABASE ${dbName} FROM PUBLIC;`,
          ],
          drop: [
            "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'u') \\gexec",
            "SELECT format('DROP ROLE %I', :'u') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec",
          ],
          disable: [
            "SELECT format('ALTER ROLE %I NOLOGIN PASSWORD NULL', :'u') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec",
          ],
        }[action];
  const client =
    server.engine === 'mariadb'
      ? `mariadb -h ${host} -u ${dbName} <<SQL`
      : `psql -h ${host} -U ${dbName} -d ${dbName} -v ON_ERROR_STOP=1 -q -v u="$U" -v pw="$DB_PASSWORD" <<'SQL'`;
  return {
    name: `${host}-db-${action}-${dataContainerName(d).slice('sdo-data-'.length)}`,
    image,
    env: {
      U: at.user,
      DB_PASSWORD: password,
      ...(server.engine === 'mariadb'
        ? { MYSQL_PWD: serverPassword }
        : { PGPASSWORD: serverPassword }),
    },
    labels: { ...dataServiceLabels(server), 'selfdevop.role': 'data-admin' },
    entrypoint: ['sh', '-ec', [client, ...sql, 'SQL'].join('\n')],
    restartPolicy: 'no',
    network: projectNetworkName(server.projectId),
  };
}

/**
 * A one-off client on the project network that exits 0 once the server answers an
 * authenticated query: proves the server is up, the password right and the network joined.
 */
export function planReadinessCheck(d: DataService, password: string): ContainerSpec {
  const { host, user, database } = dataEndpoint(d);
  const base = planDataContainer(d, password);
  const probe: Record<DataEngine, { entrypoint: string[]; env: Record<string, string> }> = {
    redis: {
      // REDISCLI_AUTH keeps the password off the command line.
      entrypoint: ['redis-cli', '-h', host, '-p', '6379', 'ping'],
      env: { REDISCLI_AUTH: password },
    },
    mariadb: {
      entrypoint: ['mariadb', '-h', host, '-u', user, database, '-e', 'select 1'],
      env: { MYSQL_PWD: password },
    },
    postgres: {
      entrypoint: ['psql', '-h', host, '-U', user, '-d', database, '-c', 'select 1'],
      env: { PGPASSWORD: password },
    },
  };
  return {
    name: `${dataContainerName(d)}-ready`,
    image: base.image,
    env: probe[d.engine].env,
    labels: { ...dataServiceLabels(d), 'selfdevop.role': 'data-check' },
    entrypoint: probe[d.engine].entrypoint,
    restartPolicy: 'no',
    network: base.network!,
  };
}

/**
 * A one-off that asks the running server its own version (an upgrade's proof that the new
 * image is what serves): PostgreSQL `SHOW server_version`, MariaDB `SELECT VERSION()`, Redis
 * `INFO server` (its `redis_version` line). Same image, network and credentials as the
 * readiness check; `serverVersionOf` reads the answer.
 */
export function planVersionQuery(d: DataService, password: string): ContainerSpec {
  const { host, user, database } = dataEndpoint(d);
  const check = planReadinessCheck(d, password);
  const entrypoint: Record<DataEngine, string[]> = {
    redis: ['redis-cli', '-h', host, '-p', '6379', 'INFO', 'server'],
    mariadb: ['mariadb', '-h', host, '-u', user, database, '-N', '-B', '-e', 'SELECT VERSION()'],
    postgres: ['psql', '-h', host, '-U', user, '-d', database, '-At', '-c', 'SHOW server_version'],
  };
  return {
    ...check,
    name: `${dataContainerName(d)}-version`,
    labels: { ...check.labels, 'selfdevop.role': 'data-version' },
    entrypoint: entrypoint[d.engine],
  };
}

/**
 * The dotted version in a version query's output (`15.14 (Debian 15.14-0+deb12u1)` → `15.14`,
 * `10.11.14-MariaDB-0+deb12u2` → `10.11.14`, `redis_version:7.0.15` → `7.0.15`); null when
 * the output holds none.
 */
export function serverVersionOf(engine: DataEngine, output: string): string | null {
  const line = engine === 'redis' ? /^redis_version:(\d+(?:\.\d+)*)/m : /^\s*(\d+(?:\.\d+)+)/m;
  return line.exec(output)?.[1] ?? null;
}

/**
 * Whether a server reporting `reported` runs `version` as the catalog names it: every part
 * the catalog gives must match (`15` is any 15.x, `10.11.14` only 10.11.14, `15.99` not 15.14).
 */
export function versionMatches(version: string, reported: string): boolean {
  const want = version.split('.');
  const got = reported.split('.');
  return want.every((part, i) => got[i] !== undefined && Number(got[i]) === Number(part));
}

/**
 * The URL a link hands to app containers; reachable only on the project network (or, with
 * `host`, a drill's restored copy on the drill's own network).
 */
export function connectionUrl(
  d: Pick<DataService, 'id' | 'engine' | 'sharedServerId'>,
  password: string,
  host?: string,
): string {
  const pw = encodeURIComponent(password);
  // A drill's copy (`host` given) is a fresh server of its own: database and user `app`.
  const at = host ? { host, database: dbName, user: dbName } : dataEndpoint(d);
  if (d.engine === 'redis') return `redis://:${pw}@${at.host}:${ports.redis}/0`;
  if (d.engine === 'mariadb')
    return `mysql://${at.user}:${pw}@${at.host}:${ports.mariadb}/${at.database}`;
  return `postgres://${at.user}:${pw}@${at.host}:${ports.postgres}/${at.database}`;
}
