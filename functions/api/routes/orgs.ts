import * as s from '../../../core/schemas.ts';
import { createOrg, getOrg } from '../../../core/orgs/use-cases.ts';
import { route } from '../route.ts';

export const orgRoutes = [
  route({
    method: 'post',
    path: '/api/orgs',
    summary: 'Create an org; the caller becomes its owner',
    tag: 'orgs',
    auth: true,
    permission: 'signed-in',
    body: s.createOrgInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createOrg(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/orgs/{orgId}',
    summary: 'The org',
    tag: 'orgs',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getOrg(deps, principal, params.orgId!),
  }),
];
