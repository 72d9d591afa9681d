/**
 * What an in-place upgrade accepts, as data: the engines' release lines, version order, and
 * the catalog (this build's images plus those an operator adds with DATA_IMAGES). The swap
 * and the rollback run for real in test/integration/data-upgrade.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { checkUpgrade } from '../../../core/data-services/upgrade.ts';
import {
  addDataImages,
  compareVersions,
  dataEngineImages,
  planReadinessCheck,
  planVersionQuery,
  releaseLine,
  serverVersionOf,
  versionMatches,
} from '../../../core/data-services/plan.ts';
import { aDataService } from '../../contracts/store/builders.ts';

const refusal = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return 'accepted';
};

describe('minor upgrades', () => {
  it('names release lines per engine: MariaDB major.minor, PostgreSQL and Redis the first number', () => {
    expect(releaseLine('mariadb', '10.11.9')).toBe('10.11');
    expect(releaseLine('mariadb', '11.4')).toBe('11.4');
    expect(releaseLine('postgres', '15.8')).toBe('15');
    expect(releaseLine('redis', '7.2.4')).toBe('7');
  });

  it('orders versions numerically, a missing part being 0', () => {
    expect(compareVersions('15.10', '15.9')).toBeGreaterThan(0);
    expect(compareVersions('15', '15.0')).toBe(0);
    expect(compareVersions('10.11', '10.11.1')).toBeLessThan(0);
  });

  it('accepts a newer minor the catalog has, and refuses another line, an unknown or an older version', () => {
    addDataImages([
      { engine: 'mariadb', version: '10.11.99', image: 'x/mariadb:10.11.99' },
      { engine: 'mariadb', version: '11.4', image: 'x/mariadb:11.4' },
    ]);
    expect(dataEngineImages.mariadb.versions['10.11.99']).toBe('x/mariadb:10.11.99');
    const ds = { engine: 'mariadb' as const, version: '10.11' };
    expect(refusal(() => checkUpgrade(ds, '10.11.99'))).toBe('accepted');
    expect(refusal(() => checkUpgrade(ds, '11.4'))).toMatch(
      /^version: mariadb 10\.11 → 11\.4 changes the release line \(10\.11 → 11\.4\)/,
    );
    expect(refusal(() => checkUpgrade(ds, '10.11.50'))).toMatch(
      /^version: mariadb 10\.11\.50 is not available; available: 10\.11, 10\.11\.99/,
    );
    expect(refusal(() => checkUpgrade({ ...ds, version: '10.11.99' }, '10.11'))).toMatch(
      /is not newer than 10\.11\.99/,
    );
  });

  it("asks the running server its version with each engine's own query, password never on the command line", () => {
    const queries = (['postgres', 'mariadb', 'redis'] as const).map((engine) => {
      const d = aDataService('org_1', 'prj_1', 'nod_1', {
        engine,
        version: dataEngineImages[engine].defaultVersion,
      });
      const spec = planVersionQuery(d, 's3cret');
      const check = planReadinessCheck(d, 's3cret');
      expect(spec).toMatchObject({
        image: check.image,
        network: check.network,
        env: check.env,
        restartPolicy: 'no',
        labels: { 'selfdevop.role': 'data-version' },
      });
      expect(spec.name).not.toBe(check.name);
      expect(spec.entrypoint!.join(' ')).not.toContain('s3cret');
      return spec.entrypoint!.slice(-3).join(' ');
    });
    expect(queries).toEqual([
      '-At -c SHOW server_version',
      '-B -e SELECT VERSION()',
      '6379 INFO server',
    ]);
  });

  it("reads the version from each engine's answer, and nothing from an answer without one", () => {
    expect(serverVersionOf('postgres', '15.18 (Debian 15.18-0+deb12u1)\n')).toBe('15.18');
    expect(serverVersionOf('mariadb', '10.11.18-MariaDB-0+deb12u1\n')).toBe('10.11.18');
    expect(
      serverVersionOf('redis', '# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n'),
    ).toBe('7.0.15');
    expect(serverVersionOf('postgres', 'psql: error: connection refused')).toBeNull();
    expect(serverVersionOf('redis', 'NOAUTH Authentication required.')).toBeNull();
  });

  it('matches every part the catalog names, and only those', () => {
    expect(versionMatches('15', '15.18')).toBe(true);
    expect(versionMatches('15.18', '15.18')).toBe(true);
    expect(versionMatches('10.11', '10.11.18')).toBe(true);
    expect(versionMatches('10.11.18', '10.11.18')).toBe(true);
    expect(versionMatches('15.99', '15.18')).toBe(false);
    expect(versionMatches('15.1', '15.18')).toBe(false);
    expect(versionMatches('10.11.19', '10.11.18')).toBe(false);
    expect(versionMatches('7.2', '7.0.15')).toBe(false);
    expect(versionMatches('15.18.1', '15.18')).toBe(false);
  });
});
