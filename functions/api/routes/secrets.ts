import * as s from '../../../core/schemas.ts';
import { deleteSecret, listSecrets, putSecret } from '../../../core/secrets/use-cases.ts';
import { InvalidInput } from '../../../core/errors.ts';
import { route } from '../route.ts';

function secretName(name: string): string {
  const parsed = s.envVarName.safeParse(name);
  if (!parsed.success)
    throw new InvalidInput(`name: ${parsed.error.issues[0]?.message ?? 'is not valid'}`, {
      field: 'name',
    });
  return parsed.data;
}

export const secretRoutes = [
  route({
    method: 'post',
    path: '/api/services/{id}/secrets',
    summary: 'Set a secret of a service environment; the value is write-only and stored encrypted',
    tag: 'secrets',
    auth: true,
    permission: 'manage-secrets',
    body: s.putSecretInput,
    status: 201,
    handle: ({ deps, principal, params, body, ctx }) =>
      putSecret(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/services/{id}/secrets',
    summary: 'Secret names of a service environment (never their values)',
    tag: 'secrets',
    auth: true,
    permission: 'read',
    query: s.environmentQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      listSecrets(deps, principal, params.id!, query.environment),
  }),
  route({
    method: 'delete',
    path: '/api/services/{id}/secrets/{name}',
    summary: 'Delete a secret; the next release runs without it',
    tag: 'secrets',
    auth: true,
    permission: 'manage-secrets',
    query: s.environmentQuery,
    status: 204,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteSecret(deps, principal, params.id!, secretName(params.name!), query.environment, ctx),
  }),
];
