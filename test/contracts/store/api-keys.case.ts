/** Store contract: API keys. */
import { describe, expect, it } from 'vitest';
import { at, anApiKey, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function apiKeyCases(): void {
  describe('api keys', () => {
    it('lists keys without their hashes, and names are unique per org', async () => {
      const key = anApiKey(a.orgId, { name: 'deploy-bot' });
      await inA((r) => r.apiKeys.insert(key));
      await store.withOrg(b.orgId, (r) =>
        r.apiKeys.insert(anApiKey(b.orgId, { name: 'deploy-bot' })),
      );
      const page = await inA((r) => r.apiKeys.list({ limit: 10 }));
      const { keyHash: _h, ...visible } = key;
      expect(page).toEqual({ items: [visible], nextCursor: null });
      const e = await rejectsWith(
        inA((r) => r.apiKeys.insert(anApiKey(a.orgId, { name: 'deploy-bot' }))),
        'api_key_exists',
      );
      expect(e.message).toBe('api_key deploy-bot already exists');
    });

    it('revokes once, and never a key of another org', async () => {
      const key = anApiKey(a.orgId);
      await inA((r) => r.apiKeys.insert(key));
      expect(await store.withOrg(b.orgId, (r) => r.apiKeys.revoke(key.id, at(5)))).toBe(false);
      expect(await inA((r) => r.apiKeys.revoke(key.id, at(5)))).toBe(true);
      expect(await inA((r) => r.apiKeys.revoke(key.id, at(6)))).toBe(false);
      expect(await inA((r) => r.apiKeys.revoke('key_missing', at(6)))).toBe(false);
      expect((await inA((r) => r.apiKeys.list({ limit: 10 }))).items[0]?.revokedAt).toBe(at(5));
    });
  });
}
