import * as s from '../../../core/schemas.ts';
import {
  createEnvironment,
  deleteEnvironment,
  getEnvironment,
  listEnvironments,
  updateEnvironment,
} from '../../../core/environments/use-cases.ts';
import { promoteEnvironment } from '../../../core/releases/promote.ts';
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
  route({
    method: 'patch',
    path: '/api/environments/{id}',
    summary:
      'Rename an environment (applies now; production keeps its name). New default hosts join the edge within a minute, the old ones keep serving',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    body: s.updateEnvironmentInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateEnvironment(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/environments/{id}',
    summary:
      'Delete an environment (?confirm=<its name>) with its releases, secrets and domains; the worker removes its routes and containers. 409 while a release in it is in flight',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    query: s.confirmQuery,
    status: 204,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteEnvironment(deps, principal, params.id!, query.confirm, ctx),
  }),
  route({
    method: 'post',
    path: '/api/environments/{id}/promote',
    summary:
      'Promote what this environment serves to another of the project (`to`): for each service named in `serviceIds`, or every service serving here, a release of the same image (digest or built sha). 202 with the releases; all or nothing (409 naming a release in flight)',
    tag: 'projects',
    auth: true,
    permission: 'deploy',
    body: s.promoteInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      promoteEnvironment(deps.release, principal, params.id!, body, ctx),
  }),
];
