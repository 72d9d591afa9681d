import { keyHasherOf } from '../hash.ts';
import { Forbidden, NotFound } from '../errors.ts';
import type { ApiKey, Page, PageRequest, Role } from '../models.ts';
import { assertCan, canGrant } from '../roles.ts';
import { apiKeyPrefix } from '../auth/use-cases.ts';
import {
  recordAudit,
  requireSameOrg,
  type CoreDeps,
  type Principal,
  type RequestContext,
} from '../deps.ts';

export async function createApiKey(
  deps: CoreDeps,
  principal: Principal,
  orgId: string,
  input: { name: string; role: Role },
  ctx: RequestContext,
): Promise<{ id: string; key: string; name: string; role: Role; prefix: string }> {
  const p = requireSameOrg(principal, orgId);
  assertCan(p.role, 'manage-keys');
  if (!canGrant(p.role, input.role))
    throw new Forbidden(`create a key with role ${input.role}`, p.role);
  const key = `${apiKeyPrefix}${deps.ids.newSecret(32)}`;
  const record = {
    id: deps.ids.newId('key'),
    orgId,
    name: input.name,
    role: input.role,
    prefix: key.slice(0, 12),
    keyHash: keyHasherOf(deps).sha256Hex(key),
    createdAt: deps.clock.now().toISOString(),
    revokedAt: null,
  };
  await deps.store.withOrg(orgId, async (repos) => {
    await repos.apiKeys.insert(record);
    // The key itself never reaches the audit trail or the logs: only its id and prefix.
    await recordAudit(deps, repos, p, ctx, {
      action: 'api_key.created',
      targetType: 'api_key',
      targetId: record.id,
      data: { name: record.name, role: record.role, prefix: record.prefix },
    });
  });
  return { id: record.id, key, name: record.name, role: record.role, prefix: record.prefix };
}

export async function listApiKeys(
  deps: CoreDeps,
  principal: Principal,
  orgId: string,
  page: PageRequest,
): Promise<Page<ApiKey>> {
  const p = requireSameOrg(principal, orgId);
  assertCan(p.role, 'manage-keys');
  return deps.store.withOrg(orgId, (repos) => repos.apiKeys.list(page));
}

export async function revokeApiKey(
  deps: CoreDeps,
  principal: Principal,
  orgId: string,
  keyId: string,
  ctx: RequestContext,
): Promise<void> {
  const p = requireSameOrg(principal, orgId);
  assertCan(p.role, 'manage-keys');
  await deps.store.withOrg(orgId, async (repos) => {
    if (!(await repos.apiKeys.revoke(keyId, deps.clock.now().toISOString())))
      throw new NotFound('api_key', keyId);
    await recordAudit(deps, repos, p, ctx, {
      action: 'api_key.revoked',
      targetType: 'api_key',
      targetId: keyId,
    });
  });
  // Only after the commit: cleared earlier, a request in between would read the row as it
  // was (not yet revoked) and cache it again for the whole TTL.
  deps.apiKeyCache?.deleteWhere((k) => k.id === keyId);
}
