import type { ApiKey, ApiKeyWithHash, Page } from '../../../core/models.ts';
import type { ApiKeyRepo } from '../../../core/ports.ts';
import type { TenantView } from './tenant.ts';

export const memoryApiKeyRepo = (t: TenantView): ApiKeyRepo => ({
  insert: async (key) => t.insert('apiKeys', key),
  list: async (page): Promise<Page<ApiKey>> => {
    const p = t.page<ApiKeyWithHash>('apiKeys', t.mine('apiKeys'), page);
    return {
      items: p.items.map(({ keyHash: _keyHash, ...key }) => key),
      nextCursor: p.nextCursor,
    };
  },
  revoke: async (id, at) =>
    t.patch(
      'apiKeys',
      id,
      { revokedAt: at },
      [],
      (r) => r.revokedAt === null || r.revokedAt === undefined,
    ),
});
