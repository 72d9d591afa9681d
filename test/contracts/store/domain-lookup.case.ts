/** Store contract: custom domains looked up across orgs. */
import { describe, expect, it } from 'vitest';
import type { Domain } from '../../../core/models.ts';
import { ids, at, aDomain } from './builders.ts';
import { store, a, b } from './context.ts';

export function domainLookupCases(): void {
  describe('domain lookup', () => {
    it('finds which org owns a hostname, in any case', async () => {
      const d = aDomain(b.orgId, b.serviceId, b.environmentId, {
        hostname: `shop-${ids.newSecret(4).toLowerCase()}.example.test`,
      });
      await store.withOrg(b.orgId, (r) => r.domains.insert(d));
      expect(await store.domainLookup.findDomainByHostname(d.hostname.toUpperCase())).toEqual({
        id: d.id,
        orgId: b.orgId,
        status: 'pending_dns',
      });
      expect(await store.domainLookup.findDomainByHostname('unknown.example.test')).toBeNull();
    });

    it('answers with the verified holder of a hostname several orgs claim, else the oldest claim', async () => {
      const hostname = `claimed-${ids.newSecret(4).toLowerCase()}.example.test`;
      const first = aDomain(a.orgId, a.serviceId, a.environmentId, { hostname, createdAt: at(1) });
      const second = aDomain(b.orgId, b.serviceId, b.environmentId, { hostname, createdAt: at(2) });
      await store.withOrg(a.orgId, (r) => r.domains.insert(first));
      await store.withOrg(b.orgId, (r) => r.domains.insert(second));
      expect(await store.domainLookup.findDomainByHostname(hostname)).toMatchObject({
        id: first.id,
      });
      await store.withOrg(b.orgId, (r) => r.domains.update(second.id, { status: 'dns_verified' }));
      expect(await store.domainLookup.findDomainByHostname(hostname)).toEqual({
        id: second.id,
        orgId: b.orgId,
        status: 'dns_verified',
      });
    });

    it('lists domains whose checks look stopped, across orgs: stalest first, failed ones never', async () => {
      const host = () => `sweep-${ids.newSecret(4).toLowerCase()}.example.test`;
      const inB = (o: Partial<Domain>) =>
        aDomain(b.orgId, b.serviceId, b.environmentId, { hostname: host(), ...o });
      const inA2 = (o: Partial<Domain>) =>
        aDomain(a.orgId, a.serviceId, a.environmentId, { hostname: host(), ...o });
      const pendingOld = inB({ checkedAt: at(-900_000) });
      const pendingRecent = inB({ checkedAt: at(-10) });
      const activeOld = inA2({ checkedAt: at(-990_000), status: 'active' });
      const activeRecent = inA2({ checkedAt: at(-900_000 + 1), status: 'active' });
      const failed = inB({ checkedAt: at(-999_000), status: 'failed' });
      const never = inA2({ checkedAt: null });
      const all = [pendingOld, pendingRecent, activeOld, activeRecent, failed, never];
      for (const d of all) await store.withOrg(d.orgId, (r) => r.domains.insert(d));
      const before = { active: at(-950_000), other: at(-100) };
      const due = await store.domainLookup.domainsToCheck(before, 1000);
      const mine = due.filter((d) => all.some((x) => x.id === d.id));
      expect(mine).toEqual([
        { id: never.id, orgId: a.orgId, status: 'pending_dns', checkedAt: null },
        { id: activeOld.id, orgId: a.orgId, status: 'active', checkedAt: at(-990_000) },
        { id: pendingOld.id, orgId: b.orgId, status: 'pending_dns', checkedAt: at(-900_000) },
      ]);
      expect((await store.domainLookup.domainsToCheck(before, 1)).length).toBe(1);
      expect(await store.domainLookup.domainsToCheck(before, 0)).toEqual([]);
    });
  });
}
