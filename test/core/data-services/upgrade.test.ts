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
  releaseLine,
} from '../../../core/data-services/plan.ts';

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
});
