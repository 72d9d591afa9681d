/** Store contract: custom domains within an org. */
import { describe, expect, it } from 'vitest';
import { ids, at, aDomain, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function domainCases(): void {
  describe('domains', () => {
    it('round-trips, updates, lists by service and deletes', async () => {
      const d = aDomain(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.domains.insert(d));
      expect(await inA((r) => r.domains.get(d.id))).toEqual(d);
      await inA((r) =>
        r.domains.update(d.id, {
          status: 'dns_verified',
          dnsStatus: 'verified',
          checkedAt: at(8),
          lastError: null,
          certNotAfter: at(90),
          certIssuer: 'Pebble Intermediate CA',
        }),
      );
      const updated = {
        ...d,
        status: 'dns_verified' as const,
        dnsStatus: 'verified' as const,
        checkedAt: at(8),
        certNotAfter: at(90),
        certIssuer: 'Pebble Intermediate CA',
      };
      expect(await inA((r) => r.domains.get(d.id))).toEqual(updated);
      expect(
        (await inA((r) => r.domains.list({ limit: 5 }, { serviceId: a.serviceId }))).items,
      ).toEqual([updated]);
      expect(
        (await inA((r) => r.domains.list({ limit: 5 }, { projectId: a.projectId }))).items,
      ).toEqual([updated]);
      expect(
        (await inA((r) => r.domains.list({ limit: 5 }, { serviceId: 'svc_other' }))).items,
      ).toEqual([]);
      await rejectsWith(
        inA((r) => r.domains.update('dom_missing', { status: 'failed' })),
        'domain_not_found',
      );
      expect(await store.withOrg(b.orgId, (r) => r.domains.delete(d.id))).toBe(false);
      expect(await inA((r) => r.domains.delete(d.id))).toBe(true);
      expect(await inA((r) => r.domains.delete(d.id))).toBe(false);
      expect(await inA((r) => r.domains.get(d.id))).toBeNull();
    });

    it('lets several orgs claim a hostname pending; the first to verify holds it, whatever its case', async () => {
      const host = `www-${ids
        .newSecret(4)
        .toLowerCase()
        .replace(/[^a-z0-9]/g, 'x')}.example.test`;
      const theirs = aDomain(b.orgId, b.serviceId, b.environmentId, { hostname: host });
      const ours = aDomain(a.orgId, a.serviceId, a.environmentId, {
        hostname: host.toUpperCase(),
      });
      await store.withOrg(b.orgId, (r) => r.domains.insert(theirs));
      await inA((r) => r.domains.insert(ours));
      // One claim per org and name.
      const dup = await rejectsWith(
        inA((r) =>
          r.domains.insert(aDomain(a.orgId, a.serviceId, a.environmentId, { hostname: host })),
        ),
        'domain_exists',
      );
      expect(dup.message).toBe(`domain ${host} already exists`);
      await store.withOrg(b.orgId, (r) => r.domains.update(theirs.id, { status: 'dns_verified' }));
      const taken = await rejectsWith(
        inA((r) => r.domains.update(ours.id, { status: 'dns_verified' })),
        'hostname_taken',
      );
      expect(taken.message).not.toContain(b.orgId);
      expect(await inA((r) => r.domains.get(ours.id))).toMatchObject({ status: 'pending_dns' });
      // Once the holder lets go, the name is free to verify.
      await store.withOrg(b.orgId, (r) => r.domains.delete(theirs.id));
      await inA((r) => r.domains.update(ours.id, { status: 'dns_verified' }));
      const mine = aDomain(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.domains.insert(mine));
      await rejectsWith(
        inA((r) => r.domains.update(mine.id, { hostname: host })),
        'domain_exists',
      );
    });
  });
}
