import * as s from '../../../core/schemas.ts';
import { createProject, getProject, listProjects } from '../../../core/projects/use-cases.ts';
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
];
