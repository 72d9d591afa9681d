import { describe, expect, it } from 'vitest';
import {
  connectionUrl,
  dataEndpoint,
  planDataContainer,
  planReadinessCheck,
  planSharedDatabase,
  projectNetworkName,
} from '../../../core/data-services/plan.ts';
import type { DataService } from '../../../core/models.ts';

const aDataService = (patch: Partial<DataService> = {}): DataService => ({
  id: 'dat_000001',
  orgId: 'org_000001',
  projectId: 'prj_000001',
  name: 'cache',
  engine: 'redis',
  version: '7',
  nodeId: 'nod_000001',
  status: 'provisioning',
  error: null,
  settings: { maxmemoryMb: 128, evictionPolicy: 'allkeys-lru', persistence: 'aof' },
  sealedPassword: 'sealed',
  removeVolume: false,
  backupSchedule: '0 3 * * *',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...patch,
});

const labels = {
  'selfdevop.org': 'org_000001',
  'selfdevop.project': 'prj_000001',
  'selfdevop.data-service': 'dat_000001',
  'selfdevop.role': 'data',
};

describe('planDataContainer', () => {
  it('plans Redis with its memory limit, eviction and persistence, on the project network only', () => {
    expect(planDataContainer(aDataService(), 'pw')).toEqual({
      name: 'sdo-data-dat_000001',
      image: 'selfdevop/redis:7',
      env: {
        REDIS_PASSWORD: 'pw',
        REDIS_MAXMEMORY: '128mb',
        REDIS_MAXMEMORY_POLICY: 'allkeys-lru',
        REDIS_PERSISTENCE: 'aof',
      },
      labels,
      restartPolicy: 'unless-stopped',
      network: 'sdo-net-prj_000001',
      volumes: ['sdo-data-dat_000001-data:/data'],
    });
  });

  it('plans MariaDB and PostgreSQL with one database and user, data on a named volume', () => {
    const maria = planDataContainer(
      aDataService({ engine: 'mariadb', version: '10.11', settings: {} }),
      'pw',
    );
    expect([maria.image, maria.env, maria.volumes]).toEqual([
      'selfdevop/mariadb:10.11',
      { MARIADB_DATABASE: 'app', MARIADB_USER: 'app', MARIADB_PASSWORD: 'pw' },
      ['sdo-data-dat_000001-data:/var/lib/mysql'],
    ]);
    const pg = planDataContainer(
      aDataService({ engine: 'postgres', version: '15', settings: {} }),
      'pw',
    );
    expect([pg.image, pg.env, pg.volumes]).toEqual([
      'selfdevop/postgres:15',
      { POSTGRES_DB: 'app', POSTGRES_USER: 'app', POSTGRES_PASSWORD: 'pw' },
      ['sdo-data-dat_000001-data:/var/lib/postgresql/data'],
    ]);
    // No plan publishes a port: containerPort and publishIp are absent.
    expect('containerPort' in pg || 'publishIp' in pg || 'containerPort' in maria).toBe(false);
  });

  it('refuses a version no image carries', () => {
    expect(() => planDataContainer(aDataService({ version: '6' }), 'pw')).toThrow(
      'no image for redis 6',
    );
  });
});

describe('planReadinessCheck', () => {
  it('asks the server an authenticated question, the password in the env only', () => {
    expect(planReadinessCheck(aDataService(), 'pw')).toEqual({
      name: 'sdo-data-dat_000001-ready',
      image: 'selfdevop/redis:7',
      env: { REDISCLI_AUTH: 'pw' },
      labels: { ...labels, 'selfdevop.role': 'data-check' },
      entrypoint: ['redis-cli', '-h', 'sdo-data-dat_000001', '-p', '6379', 'ping'],
      restartPolicy: 'no',
      network: 'sdo-net-prj_000001',
    });
    const pg = planReadinessCheck(aDataService({ engine: 'postgres', version: '15' }), 'pw');
    expect([pg.env, pg.entrypoint]).toEqual([
      { PGPASSWORD: 'pw' },
      ['psql', '-h', 'sdo-data-dat_000001', '-U', 'app', '-d', 'app', '-c', 'select 1'],
    ]);
  });
});

describe('connectionUrl', () => {
  it('names the container on the project network, the password escaped', () => {
    expect(connectionUrl(aDataService(), 'a/b')).toBe('redis://:a%2Fb@sdo-data-dat_000001:6379/0');
    expect(connectionUrl(aDataService({ engine: 'mariadb' }), 'pw')).toBe(
      'mysql://app:pw@sdo-data-dat_000001:3306/app',
    );
    expect(connectionUrl(aDataService({ engine: 'postgres' }), 'pw')).toBe(
      'postgres://app:pw@sdo-data-dat_000001:5432/app',
    );
    expect(projectNetworkName('PRJ_01ABC')).toBe('sdo-net-prj_01abc');
  });
});

describe('shared servers', () => {
  const server = aDataService({ id: 'dat_srv', engine: 'mariadb', version: '10.11', settings: {} });
  const onServer = aDataService({
    id: 'dat_01AB',
    engine: 'mariadb',
    version: '10.11',
    settings: {},
    sharedServerId: 'dat_srv',
  });

  it('reaches a shared data service as its own user and database on the server container', () => {
    expect(dataEndpoint(onServer)).toEqual({
      host: 'sdo-data-dat_srv',
      database: 'sdo_dat_01ab',
      user: 'sdo_dat_01ab',
    });
    expect(dataEndpoint(server)).toEqual({
      host: 'sdo-data-dat_srv',
      database: 'app',
      user: 'app',
    });
    expect(connectionUrl(onServer, 'pw')).toBe(
      'mysql://sdo_dat_01ab:pw@sdo-data-dat_srv:3306/sdo_dat_01ab',
    );
    expect(connectionUrl({ ...onServer, engine: 'postgres' }, 'pw')).toBe(
      'postgres://sdo_dat_01ab:pw@sdo-data-dat_srv:5432/sdo_dat_01ab',
    );
    // A drill's copy is a fresh server of its own: user and database `app` there.
    expect(connectionUrl(onServer, 'pw', 'drill-host')).toBe('mysql://app:pw@drill-host:3306/app');
    const check = planReadinessCheck(onServer, 'pw');
    expect(check.entrypoint).toEqual([
      'mariadb',
      '-h',
      'sdo-data-dat_srv',
      '-u',
      'sdo_dat_01ab',
      'sdo_dat_01ab',
      '-e',
      'select 1',
    ]);
    expect(check.name).toBe('sdo-data-dat_01ab-ready');
  });

  it('starts a shareable MariaDB with an init file granting its admin the other databases', () => {
    const plain = planDataContainer(server, 'pw');
    expect(plain.entrypoint).toBeUndefined();
    const shareable = planDataContainer({ ...server, shareable: true }, 'pw');
    expect(shareable.entrypoint).toEqual([
      'sh',
      '-c',
      `echo "GRANT ALL PRIVILEGES ON *.* TO 'app'@'%' WITH GRANT OPTION;" >/tmp/sdo-shareable.sql\nexec /usr/local/bin/selfdevop-mariadb --init-file=/tmp/sdo-shareable.sql`,
    ]);
    // PostgreSQL's app already has CREATEROLE: nothing changes there.
    expect(
      planDataContainer({ ...server, engine: 'postgres', version: '15', shareable: true }, 'pw')
        .entrypoint,
    ).toBeUndefined();
  });

  it("creates and drops the database as the server's admin, passwords in env only", () => {
    const create = planSharedDatabase(server, onServer, 'admin-pw', 'create', 'tenant-pw');
    expect(create).toMatchObject({
      name: 'sdo-data-dat_srv-db-create-dat_01ab',
      image: 'selfdevop/mariadb:10.11',
      env: { U: 'sdo_dat_01ab', DB_PASSWORD: 'tenant-pw', MYSQL_PWD: 'admin-pw' },
      network: 'sdo-net-prj_000001',
      restartPolicy: 'no',
    });
    expect(create.entrypoint).toEqual([
      'sh',
      '-ec',
      [
        'mariadb -h sdo-data-dat_srv -u app <<SQL',
        'CREATE DATABASE IF NOT EXISTS $U;',
        "CREATE USER IF NOT EXISTS '$U'@'%' IDENTIFIED BY '$DB_PASSWORD';",
        "ALTER USER '$U'@'%' IDENTIFIED BY '$DB_PASSWORD';",
        "GRANT ALL PRIVILEGES ON $U.* TO '$U'@'%';",
        'SQL',
      ].join('\n'),
    ]);
    expect(JSON.stringify(create.entrypoint)).not.toContain('pw');
    const pg = { ...server, engine: 'postgres' as const, version: '15' };
    const drop = planSharedDatabase(pg, onServer, 'admin-pw', 'drop');
    expect(drop.env).toEqual({ U: 'sdo_dat_01ab', DB_PASSWORD: '', PGPASSWORD: 'admin-pw' });
    expect(drop.entrypoint![2]).toBe(
      [
        `psql -h sdo-data-dat_srv -U app -d app -v ON_ERROR_STOP=1 -q -v u="$U" -v pw="$DB_PASSWORD" <<'SQL'`,
        "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', :'u') \\gexec",
        "SELECT format('DROP ROLE %I', :'u') WHERE EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'u') \\gexec",
        'SQL',
      ].join('\n'),
    );
    expect(planSharedDatabase(server, onServer, 'a', 'disable').entrypoint![2]).toContain(
      "DROP USER IF EXISTS '$U'@'%';",
    );
  });
});
