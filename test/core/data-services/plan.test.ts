import { describe, expect, it } from 'vitest';
import {
  connectionUrl,
  planDataContainer,
  planReadinessCheck,
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
