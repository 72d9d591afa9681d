import * as s from '../../../core/schemas.ts';
import {
  createRegistry,
  deleteRegistry,
  listRegistries,
} from '../../../core/registries/use-cases.ts';
import { route } from '../route.ts';

export const registryRoutes = [
  route({
    method: 'post',
    path: '/api/registries',
    summary:
      "Store the org's credential for an image registry (host[:port]; docker.io for Docker Hub): pulls of its images send it. The password or token is sealed and never shown again",
    tag: 'registries',
    auth: true,
    permission: 'manage-registries',
    body: s.createRegistryInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) => createRegistry(deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/registries',
    summary: "The org's registry credentials: server and username, never the password",
    tag: 'registries',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal }) => listRegistries(deps, principal),
  }),
  route({
    method: 'delete',
    path: '/api/registries/{id}',
    summary: 'Delete a registry credential; later pulls from that registry go without it',
    tag: 'registries',
    auth: true,
    permission: 'manage-registries',
    status: 204,
    handle: ({ deps, principal, params, ctx }) => deleteRegistry(deps, principal, params.id!, ctx),
  }),
];
