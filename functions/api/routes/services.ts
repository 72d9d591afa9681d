import * as s from '../../../core/schemas.ts';
import { createService, getService, listServices } from '../../../core/services/use-cases.ts';
import { route } from '../route.ts';

const byProject = s.pageQuery.extend({ projectId: s.id.optional() });

export const serviceRoutes = [
  route({
    method: 'post',
    path: '/api/services',
    summary: 'Create a service; each environment serves it at a default host under the edge domain',
    tag: 'services',
    auth: true,
    permission: 'manage-resources',
    body: s.createServiceInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createService(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/services',
    summary: 'List services',
    tag: 'services',
    auth: true,
    permission: 'read',
    query: byProject,
    status: 200,
    handle: ({ deps, principal, query }) =>
      listServices(deps, principal, query, { projectId: query.projectId }),
  }),
  route({
    method: 'get',
    path: '/api/services/{id}',
    summary: 'A service with its hosts',
    tag: 'services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getService(deps, principal, params.id!),
  }),
];
