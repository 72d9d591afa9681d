import type { ApiKey, ApiKeyWithHash, Page } from '../../../core/models.ts';
import type { ApiKeyRepo } from '../../../core/ports.ts';
import { table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const apiKeysTable = table<ApiKeyWithHash>('api_keys', [
  'id',
  'orgId',
  'name',
  'role',
  'prefix',
  'keyHash',
  'createdAt',
  'revokedAt',
]);

export const pgApiKeyRepo = (t: TenantSql): ApiKeyRepo => ({
  insert: (key) => t.insert(apiKeysTable, key),
  list: async (page): Promise<Page<ApiKey>> => {
    const p = await t.page(apiKeysTable, [], page);
    return {
      items: p.items.map(({ keyHash: _keyHash, ...key }) => key),
      nextCursor: p.nextCursor,
    };
  },
  revoke: async (id, at) => {
    const r = await t.tx.query(
      'update api_keys set revoked_at = $1 where id = $2 and org_id = $3 and revoked_at is null',
      [at, id, t.orgId],
    );
    return r.rowCount > 0;
  },
});
