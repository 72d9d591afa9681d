/** Store contract: push-to-deploy hooks, their deliveries and the commit a push wants. */
import { describe, expect, it } from 'vitest';
import type { PushHook } from '../../../core/ports.ts';
import { aService, at } from './builders.ts';
import { store, a, b, inA } from './context.ts';

let n = 0;
async function aHookedService(): Promise<PushHook> {
  const svc = aService(a.orgId, a.projectId);
  const hook: PushHook = {
    id: `ph_contract${process.pid}x${++n}x${Date.now()}`,
    orgId: a.orgId,
    serviceId: svc.id,
    sealedSecret: 'sealed-1',
    createdAt: at(),
  };
  await inA(async (r) => {
    await r.services.insert(svc);
    await r.pushHooks.save(hook);
  });
  return hook;
}

export function pushHookCases(): void {
  describe('push hooks', () => {
    it('keeps one hook per service: a rotation replaces the secret and keeps the id', async () => {
      const hook = await aHookedService();
      const rotated = await inA((r) =>
        r.pushHooks.save({ ...hook, id: 'ph_another', sealedSecret: 'sealed-2' }),
      );
      expect(rotated).toEqual({ ...hook, sealedSecret: 'sealed-2' });
      expect(await inA((r) => r.pushHooks.forService(hook.serviceId))).toEqual(rotated);
      expect(await store.pushHookLookup.findPushHook(hook.id)).toEqual(rotated);
      expect(await store.pushHookLookup.findPushHook('ph_another')).toBeNull();
      // Another org sees nothing of it, except through the look-up by id.
      expect(
        await store.withOrg(b.orgId, (r) => r.pushHooks.forService(hook.serviceId)),
      ).toBeNull();
    });

    it('claims a delivery id once per hook, and forgets it on request', async () => {
      const hook = await aHookedService();
      const other = await aHookedService();
      expect(await inA((r) => r.pushHooks.claimDelivery(hook.id, 'd-1', at()))).toBe(true);
      expect(await inA((r) => r.pushHooks.claimDelivery(hook.id, 'd-1', at()))).toBe(false);
      expect(await inA((r) => r.pushHooks.claimDelivery(other.id, 'd-1', at()))).toBe(true);
      await inA((r) => r.pushHooks.forgetDelivery(hook.id, 'd-1'));
      expect(await inA((r) => r.pushHooks.claimDelivery(hook.id, 'd-1', at()))).toBe(true);
    });

    it('takes the wanted commit once; a put-back never replaces a newer one', async () => {
      const hook = await aHookedService();
      expect(await inA((r) => r.pushHooks.takeWanted(hook.serviceId))).toBeNull();
      await inA((r) => r.pushHooks.want(hook.id, 'a'.repeat(40)));
      await inA((r) => r.pushHooks.want(hook.id, 'b'.repeat(40)));
      const taken = await Promise.all([
        inA((r) => r.pushHooks.takeWanted(hook.serviceId)),
        inA((r) => r.pushHooks.takeWanted(hook.serviceId)),
      ]);
      expect(taken.filter(Boolean)).toEqual([{ hookId: hook.id, sha: 'b'.repeat(40) }]);
      await inA((r) => r.pushHooks.want(hook.id, 'c'.repeat(40)));
      await inA((r) => r.pushHooks.putBackWanted(hook.id, 'b'.repeat(40)));
      expect(await inA((r) => r.pushHooks.takeWanted(hook.serviceId))).toEqual({
        hookId: hook.id,
        sha: 'c'.repeat(40),
      });
      await inA((r) => r.pushHooks.putBackWanted(hook.id, 'c'.repeat(40)));
      expect(await inA((r) => r.pushHooks.takeWanted(hook.serviceId))).toEqual({
        hookId: hook.id,
        sha: 'c'.repeat(40),
      });
    });
  });
}
