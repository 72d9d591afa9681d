import * as s from '../../../core/schemas.ts';
import { createApiKey, listApiKeys, revokeApiKey } from '../../../core/api-keys/use-cases.ts';
import { route } from '../route.ts';

export const apiKeyRoutes = [
  route({
    method: 'post',
    path: '/api/orgs/{orgId}/api-keys',
    summary: 'Create an API key; the key is shown once and stored hashed',
    tag: 'orgs',
    auth: true,
    permission: 'manage-keys',
    body: s.createApiKeyInput,
    status: 201,
    handle: ({ deps, principal, params, body, ctx }) =>
      createApiKey(deps, principal, params.orgId!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/orgs/{orgId}/api-keys',
    summary: 'List API keys (never the keys themselves)',
    tag: 'orgs',
    auth: true,
    permission: 'manage-keys',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      listApiKeys(deps, principal, params.orgId!, query),
  }),
  route({
    method: 'delete',
    path: '/api/orgs/{orgId}/api-keys/{keyId}',
    summary: 'Revoke an API key',
    tag: 'orgs',
    auth: true,
    permission: 'manage-keys',
    status: 204,
    handle: ({ deps, principal, params, ctx }) =>
      revokeApiKey(deps, principal, params.orgId!, params.keyId!, ctx),
  }),
];
