import * as s from '../../../core/schemas.ts';
import {
  createEnvironment,
  getEnvironment,
  listEnvironments,
} from '../../../core/environments/use-cases.ts';
import { route } from '../route.ts';

const byProject = s.pageQuery.extend({ projectId: s.id.optional() });

export const environmentRoutes = [
  route({
    method: 'post',
    path: '/api/environments',
    summary: 'Add an environment to a project',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    body: s.createEnvironmentInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createEnvironment(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/environments',
    summary: 'List environments',
    tag: 'projects',
    auth: true,
    permission: 'read',
    query: byProject,
    status: 200,
    handle: ({ deps, principal, query }) =>
      listEnvironments(deps, principal, query, { projectId: query.projectId }),
  }),
  route({
    method: 'get',
    path: '/api/environments/{id}',
    summary: 'An environment',
    tag: 'projects',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getEnvironment(deps, principal, params.id!),
  }),
];
