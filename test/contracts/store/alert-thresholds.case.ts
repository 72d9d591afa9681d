/** Store contract: per-service alert thresholds, and the alert targets read across orgs. */
import { describe, expect, it } from 'vitest';
import { aDomain, aRelease, at } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function alertThresholdCases(): void {
  describe('alert thresholds', () => {
    it('sets, replaces and removes one threshold per service and rule', async () => {
      const base = { orgId: a.orgId, serviceId: a.serviceId, updatedAt: at() };
      await inA((r) => r.alertThresholds.set({ ...base, rule: 'latency_p95', value: 2 }));
      await inA((r) => r.alertThresholds.set({ ...base, rule: 'http_5xx_spike', value: 0.1 }));
      await inA((r) =>
        r.alertThresholds.set({ ...base, rule: 'latency_p95', value: 0.5, updatedAt: at(5) }),
      );
      expect(await inA((r) => r.alertThresholds.list({ serviceId: a.serviceId }))).toEqual([
        { ...base, rule: 'http_5xx_spike', value: 0.1 },
        { ...base, rule: 'latency_p95', value: 0.5, updatedAt: at(5) },
      ]);
      expect(await inA((r) => r.alertThresholds.remove(a.serviceId, 'latency_p95'))).toBe(true);
      expect(await inA((r) => r.alertThresholds.remove(a.serviceId, 'latency_p95'))).toBe(false);
      expect((await inA((r) => r.alertThresholds.list())).map((t) => t.rule)).toEqual([
        'http_5xx_spike',
      ]);
    });

    it("shows another org nothing, and refuses a threshold on another org's service", async () => {
      await inA((r) =>
        r.alertThresholds.set({
          orgId: a.orgId,
          serviceId: a.serviceId,
          rule: 'crash_loop',
          value: 5,
          updatedAt: at(),
        }),
      );
      expect(await store.withOrg(b.orgId, (r) => r.alertThresholds.list())).toEqual([]);
      expect(
        await store.withOrg(b.orgId, (r) => r.alertThresholds.remove(a.serviceId, 'crash_loop')),
      ).toBe(false);
      await expect(
        store.withOrg(b.orgId, (r) =>
          r.alertThresholds.set({
            orgId: b.orgId,
            serviceId: a.serviceId,
            rule: 'crash_loop',
            value: 1,
            updatedAt: at(),
          }),
        ),
      ).rejects.toThrow();
    });

    it('lists each live service environment across orgs with its org, routed hosts and thresholds', async () => {
      const live = aRelease(a.orgId, a.serviceId, a.environmentId, {
        status: 'completed',
        upstream: '10.0.0.5:32001',
      });
      const routed = aDomain(a.orgId, a.serviceId, a.environmentId, { status: 'active' });
      const pending = aDomain(a.orgId, a.serviceId, a.environmentId, { status: 'pending_dns' });
      await inA(async (r) => {
        await r.releases.insert(live);
        await r.domains.insert(routed);
        await r.domains.insert(pending);
        await r.alertThresholds.set({
          orgId: a.orgId,
          serviceId: a.serviceId,
          rule: 'latency_p95',
          value: 3,
          updatedAt: at(),
        });
      });
      // b's service has only a queued release: not live, not watched.
      await store.withOrg(b.orgId, (r) =>
        r.releases.insert(aRelease(b.orgId, b.serviceId, b.environmentId)),
      );
      const targets = (await store.alertTargetLookup!.alertTargets()).filter(
        (t) => t.serviceId === a.serviceId || t.serviceId === b.serviceId,
      );
      expect(targets).toEqual([
        {
          orgId: a.orgId,
          serviceId: a.serviceId,
          serviceName: expect.any(String),
          environmentId: a.environmentId,
          environmentName: expect.any(String),
          customHosts: [routed.hostname],
          thresholds: { latency_p95: 3 },
        },
      ]);
    });
  });
}
