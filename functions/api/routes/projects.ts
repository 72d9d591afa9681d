import * as s from '../../../core/schemas.ts';
import {
  createProject,
  deleteProject,
  getProject,
  listProjects,
  updateProject,
} from '../../../core/projects/use-cases.ts';
import { getProjectMetrics } from '../../../core/projects/metrics.ts';
import { route } from '../route.ts';

export const projectRoutes = [
  route({
    method: 'post',
    path: '/api/projects',
    summary: 'Create a project with a production environment',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    body: s.createProjectInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createProject(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/projects',
    summary: 'List projects',
    tag: 'projects',
    auth: true,
    permission: 'read',
    query: s.pageQuery,
    status: 200,
    handle: ({ deps, principal, query }) => listProjects(deps, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/projects/{id}',
    summary: 'A project with its environments',
    tag: 'projects',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getProject(deps, principal, params.id!),
  }),
  route({
    method: 'get',
    path: '/api/projects/{id}/metrics',
    summary:
      "Request and 5xx rates, p95 latency, open connections, CPU and memory of all the project's service environments together over the last hour, day or week (range=1h|1d|1w); without a metrics backend, what to install",
    tag: 'projects',
    auth: true,
    permission: 'read',
    query: s.projectMetricsQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      getProjectMetrics(deps, principal, params.id!, query),
  }),
  route({
    method: 'patch',
    path: '/api/projects/{id}',
    summary: 'Rename a project (applies now)',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    body: s.updateProjectInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateProject(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/projects/{id}',
    summary:
      'Delete a project (?confirm=<its name>) with its environments and services; the worker removes their routes and containers. 409 while a release is in flight or data services remain',
    tag: 'projects',
    auth: true,
    permission: 'manage-resources',
    query: s.confirmQuery,
    status: 204,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteProject(deps, principal, params.id!, query.confirm, ctx),
  }),
];
