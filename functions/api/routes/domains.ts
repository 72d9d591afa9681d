import * as z from 'zod';
import { Unavailable } from '../../../core/errors.ts';
import {
  askDomain,
  createDomain,
  createDomainInput,
  deleteDomain,
  getDomain,
  listDomains,
  verifyDomain,
} from '../../../core/domains/engine.ts';
import * as s from '../../../core/schemas.ts';
import type { ApiDeps } from '../../../core/system.ts';
import { errorBody } from '../errors.ts';
import { route } from '../route.ts';

const domainFilter = s.pageQuery.extend({
  serviceId: s.id.optional(),
  environmentId: s.id.optional(),
});
const askQuery = z.object({ domain: z.string().max(300).optional() });

/** The custom-domain engine of this composition root; a mode without one answers 503. */
function domainsOf(deps: ApiDeps): NonNullable<ApiDeps['domains']> {
  if (!deps.domains)
    throw new Unavailable('domains', 'custom domains are not configured in this mode');
  return deps.domains;
}

export const domainRoutes = [
  // Before /api/domains/{id}: `ask` is a path of its own, not an id.
  route({
    method: 'get',
    path: '/api/domains/ask',
    summary:
      "Caddy's on-demand TLS permission check: 200 when a certificate may be obtained for ?domain=, 403 otherwise",
    tag: 'domains',
    auth: false,
    permission: 'anyone',
    query: askQuery,
    status: 200,
    handle: async ({ deps, query }) => {
      const domains = domainsOf(deps);
      const allowed = await askDomain(domains.deps, domains.gate, query.domain);
      return allowed
        ? Response.json({ allowed: true })
        : Response.json(
            errorBody(
              'domain_not_allowed',
              'no verified custom domain by that name, or its certificate attempts are backing off',
            ),
            {
              status: 403,
            },
          );
    },
  }),
  route({
    method: 'post',
    path: '/api/domains',
    summary: 'Add a custom hostname to a service environment; answers the DNS records to create',
    tag: 'domains',
    auth: true,
    permission: 'manage-resources',
    body: createDomainInput,
    status: 201,
    handle: ({ deps, principal, body, ctx }) =>
      createDomain(domainsOf(deps).deps, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/domains',
    summary: 'List custom domains; filter by service and environment',
    tag: 'domains',
    auth: true,
    permission: 'read',
    query: domainFilter,
    status: 200,
    handle: ({ deps, principal, query }) =>
      listDomains(domainsOf(deps).deps, principal, query, {
        serviceId: query.serviceId,
        environmentId: query.environmentId,
      }),
  }),
  route({
    method: 'get',
    path: '/api/domains/{id}',
    summary: 'A custom domain: status, dnsStatus, tlsStatus, lastError and the records to create',
    tag: 'domains',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getDomain(domainsOf(deps).deps, principal, params.id!),
  }),
  route({
    method: 'post',
    path: '/api/domains/{id}/verify',
    summary: 'Check the domain now instead of at its next poll (a failed domain starts over)',
    tag: 'domains',
    auth: true,
    permission: 'manage-resources',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      verifyDomain(domainsOf(deps).deps, principal, params.id!, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/domains/{id}',
    summary:
      'Remove a custom domain: its host leaves the route and its certificate is no longer allowed',
    tag: 'domains',
    auth: true,
    permission: 'manage-resources',
    status: 204,
    handle: async ({ deps, principal, params, ctx }) => {
      const domains = domainsOf(deps);
      await deleteDomain(domains.deps, principal, params.id!, ctx, domains.gate);
    },
  }),
];
