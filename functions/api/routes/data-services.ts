import * as s from '../../../core/schemas.ts';
import {
  createDataService,
  deleteDataService,
  getDataService,
  linkDataService,
  listDataServiceLinks,
  listDataServices,
  unlinkDataService,
} from '../../../core/data-services/use-cases.ts';
import { route } from '../route.ts';

const byProject = s.pageQuery.extend({ projectId: s.id.optional() });

export const dataServiceRoutes = [
  route({
    method: 'post',
    path: '/api/data-services',
    summary:
      'Create a Redis, MariaDB or PostgreSQL service in a project (202: poll until status is ready or failed)',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.createDataServiceInput,
    status: 202,
    handle: ({ deps, principal, body, ctx }) => createDataService(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services',
    summary: "The org's data services (never their passwords), optionally of one project",
    tag: 'data-services',
    auth: true,
    permission: 'read',
    query: byProject,
    status: 200,
    handle: ({ deps, principal, query }) => listDataServices(deps, principal, query),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}',
    summary: 'A data service: status, node, host on the project network, settings and links',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getDataService(deps, principal, params.id!),
  }),
  route({
    method: 'delete',
    path: '/api/data-services/{id}',
    summary:
      'Delete a data service (?confirm=<its name>; ?volume=keep (default) keeps its data volume, remove deletes it); 202 while the worker removes it',
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    query: s.deleteDataServiceQuery,
    status: 202,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteDataService(deps, principal, params.id!, query, ctx),
  }),
  route({
    method: 'post',
    path: '/api/data-services/{id}/links',
    summary:
      "Link an app service of the same project: its URL arrives as envName (REDIS_URL / DATABASE_URL by default) from the service's next release on",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    body: s.createDataServiceLinkInput,
    status: 201,
    handle: ({ deps, principal, params, body, ctx }) =>
      linkDataService(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/data-services/{id}/links',
    summary: 'The app services a data service is linked to',
    tag: 'data-services',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => listDataServiceLinks(deps, principal, params.id!),
  }),
  route({
    method: 'delete',
    path: '/api/data-services/{id}/links/{linkId}',
    summary: "Unlink; the env var leaves the service's containers from its next release on",
    tag: 'data-services',
    auth: true,
    permission: 'manage-resources',
    status: 204,
    handle: ({ deps, principal, params, ctx }) =>
      unlinkDataService(deps, principal, params.id!, params.linkId!, ctx),
  }),
];
