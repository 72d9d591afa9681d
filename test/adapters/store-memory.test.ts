import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { runStoreContract, seedTenant, aProject } from '../contracts/store.case.ts';

runStoreContract({ make: () => new MemoryStore() });

describe('MemoryStore', () => {
  it('runs a withOrg started inside another one instead of waiting for it forever', async () => {
    const store = new MemoryStore();
    const t = await seedTenant(store);
    const p = aProject(t.orgId);
    await store.withOrg(t.orgId, async () => {
      await store.withOrg(t.orgId, (r) => r.projects.insert(p));
    });
    expect(await store.withOrg(t.orgId, (r) => r.projects.get(p.id))).toEqual(p);
  });

  it('hands out copies, so changing a returned record changes nothing stored', async () => {
    const store = new MemoryStore();
    const t = await seedTenant(store);
    const got = await store.withOrg(t.orgId, (r) => r.services.get(t.serviceId));
    got!.env.INJECTED = 'yes';
    expect((await store.withOrg(t.orgId, (r) => r.services.get(t.serviceId)))?.env).toEqual({});
  });

  it('refuses work once closed', async () => {
    const store = new MemoryStore();
    await store.close();
    await expect(store.ping()).rejects.toThrow('store is closed');
    await expect(store.withOrg('org_1', async () => 1)).rejects.toThrow('store is closed');
  });
});
