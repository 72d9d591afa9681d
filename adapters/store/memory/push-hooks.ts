import type { PushHook, PushHookLookup, PushHookRepo } from '../../../core/ports.ts';
import { clone } from './overlay.ts';
import type { Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memoryPushHookRepo = (t: TenantView): PushHookRepo => ({
  save: async (hook) => {
    const existing = t.mine('pushHooks').find((r) => r.serviceId === hook.serviceId);
    if (!existing) {
      t.insert('pushHooks', hook);
      return clone(hook);
    }
    t.patch('pushHooks', String(existing.id), { sealedSecret: hook.sealedSecret }, ['id']);
    return t.getOwn<PushHook>('pushHooks', String(existing.id))!;
  },
  forService: async (serviceId) =>
    (t.mine('pushHooks').find((r) => r.serviceId === serviceId) as PushHook | undefined) ?? null,
  claimDelivery: async (hookId, deliveryId, at) => {
    if (t.view.get('pushDeliveries', `${hookId}|${deliveryId}`)) return false;
    t.insert('pushDeliveries', { orgId: t.orgId, hookId, deliveryId, receivedAt: at });
    return true;
  },
  want: async (hookId, sha) => {
    t.patch('pushHooks', hookId, { wantedSha: sha }, ['id']);
  },
  takeWanted: async (serviceId) => {
    const row = t.mine('pushHooks').find((r) => r.serviceId === serviceId && r.wantedSha);
    if (!row) return null;
    t.view.put('pushHooks', String(row.id), { ...row, wantedSha: null });
    return { hookId: String(row.id), sha: String(row.wantedSha) };
  },
  putBackWanted: async (hookId, sha) => {
    t.patch('pushHooks', hookId, { wantedSha: sha }, ['id'], (r) => !r.wantedSha);
  },
  forgetDelivery: async (hookId, deliveryId) => {
    t.view.delete('pushDeliveries', `${hookId}|${deliveryId}`);
  },
});

export const memoryPushHookLookup = (tables: Tables): PushHookLookup => ({
  findPushHook: async (id) => {
    const row = tables.pushHooks.get(id);
    return row ? (clone(row) as unknown as PushHook) : null;
  },
});
