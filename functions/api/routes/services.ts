import * as s from '../../../core/schemas.ts';
import {
  createDeployKey,
  createService,
  getService,
  listServices,
  updateService,
} from '../../../core/services/use-cases.ts';
import { getPushHook, receivePush, rotatePushHook } from '../../../core/services/push-hook.ts';
import { route } from '../route.ts';
import { getServiceHealth } from '../../../core/services/health.ts';
import { getServiceMetrics } from '../../../core/services/metrics.ts';

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
    method: 'patch',
    path: '/api/services/{id}',
    permission: 'manage-resources',
    summary:
      'Change a service: the fields given replace its own; `git` sets its git source (its `token` is write-only), `git: null` removes it',
    tag: 'services',
    auth: true,
    body: s.updateServiceInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateService(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'post',
    path: '/api/services/{id}/deploy-key',
    permission: 'manage-resources',
    summary:
      'Make a new ed25519 SSH deploy key for the service’s git repository and answer its public half (the private half is sealed, never shown); it replaces any token or earlier key',
    tag: 'services',
    auth: true,
    status: 201,
    handle: ({ deps, principal, params, ctx }) => createDeployKey(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'post',
    path: '/api/services/{id}/push-hook',
    permission: 'manage-resources',
    summary:
      'Make the service’s push-to-deploy webhook, or rotate its secret (the URL stays): answers the URL for GitHub, GitLab or Gitea and the secret, shown this once',
    tag: 'services',
    auth: true,
    status: 201,
    handle: ({ deps, principal, params, ctx }) => rotatePushHook(deps, principal, params.id!, ctx),
  }),
  route({
    method: 'get',
    path: '/api/services/{id}/push-hook',
    permission: 'read',
    summary: 'The service’s push-to-deploy webhook URL (never its secret); 404 when it has none',
    tag: 'services',
    auth: true,
    status: 200,
    handle: ({ deps, principal, params }) => getPushHook(deps, principal, params.id!),
  }),
  route({
    method: 'post',
    path: '/api/hooks/push/{hookId}',
    // No bearer: the signature over the body is the credential (401 when it does not match).
    permission: 'anyone',
    summary:
      'A git host’s push (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token, Gitea X-Gitea-Signature): a push to the followed branch deploys its commit; anything else, or a replayed delivery, is answered 202 with the reason and does nothing',
    tag: 'services',
    auth: false,
    status: 202,
    handle: async ({ deps, params, ctx, request }) =>
      receivePush(
        deps,
        deps.release,
        params.hookId!,
        (name) => request.headers.get(name) ?? undefined,
        new Uint8Array(await request.arrayBuffer()),
        ctx,
      ),
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
  route({
    method: 'get',
    path: '/api/services/{id}/health',
    summary:
      "The app's health in one environment, read live from its node (the serving container's state, restarts and health check), apart from how its last deploy ended",
    tag: 'services',
    auth: true,
    permission: 'read',
    query: s.serviceHealthQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      getServiceHealth(deps, principal, params.id!, query.environment),
  }),
  route({
    method: 'get',
    path: '/api/services/{id}/metrics',
    summary:
      'Request rate, p50/p95 latency, 4xx/5xx rates, CPU and memory of one environment over the last hour, day or week (range=1h|1d|1w); without a metrics backend, what to install',
    tag: 'services',
    auth: true,
    permission: 'read',
    query: s.serviceMetricsQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      getServiceMetrics(deps, principal, params.id!, query),
  }),
];
