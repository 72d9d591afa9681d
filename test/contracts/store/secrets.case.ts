/** Store contract: secrets. */
import { describe, expect, it } from 'vitest';
import { at, aSecret, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function secretCases(): void {
  describe('secrets', () => {
    it('puts, replaces the value by name, lists by name and deletes', async () => {
      const s1 = aSecret(a.orgId, a.serviceId, a.environmentId, {
        name: 'TOKEN',
        sealed: 'v1.a',
      });
      const s2 = aSecret(a.orgId, a.serviceId, a.environmentId, {
        name: 'API_KEY',
        sealed: 'v1.b',
      });
      await inA(async (r) => {
        await r.secrets.put(s1);
        await r.secrets.put(s2);
      });
      await inA((r) =>
        r.secrets.put(
          aSecret(a.orgId, a.serviceId, a.environmentId, {
            name: 'TOKEN',
            sealed: 'v1.c',
            updatedAt: at(7),
          }),
        ),
      );
      const updated = { ...s1, sealed: 'v1.c', updatedAt: at(7) };
      expect(await inA((r) => r.secrets.list(a.serviceId, a.environmentId))).toEqual([s2, updated]);
      expect(
        await store.withOrg(b.orgId, (r) => r.secrets.list(a.serviceId, a.environmentId)),
      ).toEqual([]);
      expect(
        await store.withOrg(b.orgId, (r) =>
          r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'),
        ),
      ).toBe(false);
      expect(await inA((r) => r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'))).toBe(true);
      expect(await inA((r) => r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'))).toBe(false);
      expect(await inA((r) => r.secrets.list(a.serviceId, a.environmentId))).toEqual([s2]);
    });

    it('refuses a secret for an unknown service', async () => {
      await rejectsWith(
        inA((r) => r.secrets.put(aSecret(a.orgId, 'svc_missing', a.environmentId))),
        'service_not_found',
      );
    });
  });
}
