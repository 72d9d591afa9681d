/**
 * The store under test and two seeded tenants, fresh for every case. The case files read
 * these live bindings, which `useStore` reassigns before each test, so a case's body reads
 * as if it were written inside the runner.
 */
import { afterEach, beforeEach } from 'vitest';
import type { OrgRepos, Store } from '../../../core/ports.ts';
import { seedTenant, type Tenant } from './builders.ts';

export let store: Store;
export let a: Tenant;
export let b: Tenant;

/** Runs fn in tenant a's withOrg. */
export const inA = <T>(fn: (r: OrgRepos) => Promise<T>): Promise<T> => store.withOrg(a.orgId, fn);

/** Makes a store and seeds two tenants before each test of the enclosing describe; closes it after. */
export function useStore(make: () => Store | Promise<Store>): void {
  beforeEach(async () => {
    store = await make();
    a = await seedTenant(store);
    b = await seedTenant(store);
  });
  afterEach(async () => {
    await store.close();
  });
}
