import * as s from '../../../core/schemas.ts';
import {
  createDeployKey,
  createService,
  deleteService,
  getService,
  listServices,
  updateService,
} from '../../../core/services/use-cases.ts';
import { getPushHook, receivePush, rotatePushHook } from '../../../core/services/push-hook.ts';
import { route } from '../route.ts';
import { getServiceHealth } from '../../../core/services/health.ts';
import { getServiceMetrics } from '../../../core/services/metrics.ts';
import {
  openServiceLogs,
  serviceLogsQuery,
  type AppLogEvent,
} from '../../../core/services/logs.ts';
import {
  scaleService,
  scaleServiceInput,
  startServiceInput,
  stopServiceInput,
} from '../../../core/services/scale.ts';

/** A log stream ends by itself after this long, so an abandoned follow holds nothing for ever. */
const logStreamMaxMs = 30 * 60_000;

/**
 * App logs as they are read, never gathered first: Server-Sent Events (`event: log` per
 * line, `event: notice` for what could not be read, `event: more` when a range read stopped
 * at its limit, `event: end`) when the client asks for
 * `text/event-stream`, otherwise NDJSON, one JSON object per line. Closing the connection,
 * the 30-minute cap or the end of the read aborts the engines' streams.
 */
function streamLogs(
  open: (signal: AbortSignal) => Promise<AsyncIterable<AppLogEvent>>,
  request: Request,
): Promise<Response> {
  const sse = request.headers.get('accept')?.includes('text/event-stream') ?? false;
  const stop = new AbortController();
  const abort = () => stop.abort();
  request.signal.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, logStreamMaxMs);
  const finish = () => {
    clearTimeout(timer);
    request.signal.removeEventListener('abort', abort);
    stop.abort();
  };
  const encoder = new TextEncoder();
  const frame = (e: AppLogEvent | { type: 'end' }) => {
    if (!sse) return encoder.encode(`${JSON.stringify(e.type === 'line' ? e.line : e)}\n`);
    const data =
      e.type === 'line'
        ? e.line
        : e.type === 'notice'
          ? { message: e.message }
          : e.type === 'more'
            ? { since: e.since }
            : {};
    const name = e.type === 'line' ? 'log' : e.type;
    return encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  return open(stop.signal).then(
    (events) => {
      const it = events[Symbol.asyncIterator]();
      // pull(): one line read per chunk the client takes, so a slow reader slows the engines' reads.
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const r = await it.next();
            if (r.done) {
              controller.enqueue(frame({ type: 'end' }));
              controller.close();
              finish();
            } else controller.enqueue(frame(r.value));
          } catch (e) {
            const message = e instanceof Error ? e.message : String(e);
            controller.enqueue(frame({ type: 'notice', message }));
            controller.close();
            finish();
          }
        },
        cancel() {
          finish();
          void it.return?.()?.catch(() => undefined);
        },
      });
      return new Response(body, {
        headers: sse
          ? { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
          : { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' },
      });
    },
    (e: unknown) => {
      finish();
      throw e;
    },
  );
}
import { redeployService } from '../../../core/releases/promote.ts';

const byProject = s.pageQuery.extend({ projectId: s.id.optional() });

export const serviceRoutes = [
  route({
    method: 'post',
    path: '/api/services/{id}/scale',
    permission: 'deploy',
    summary:
      'Set the replicas (0…50) of a service environment without a deploy: new replicas join the edge once healthy, removed ones leave it first, then drain and stop (202; 409 when they cannot be placed, naming what is missing, or a release is in flight)',
    tag: 'services',
    auth: true,
    body: scaleServiceInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      scaleService(deps.release, principal, params.id!, body, ctx, 'scale'),
  }),
  route({
    method: 'post',
    path: '/api/services/{id}/stop',
    permission: 'deploy',
    summary: 'Stop a service environment: scale it to 0 (its route leaves the edge)',
    tag: 'services',
    auth: true,
    body: stopServiceInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      scaleService(deps.release, principal, params.id!, body, ctx, 'stop'),
  }),
  route({
    method: 'post',
    path: '/api/services/{id}/start',
    permission: 'deploy',
    summary: 'Start a stopped service environment with `replicas` (default 1)',
    tag: 'services',
    auth: true,
    body: startServiceInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      scaleService(deps.release, principal, params.id!, body, ctx, 'start'),
  }),
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
      'Change a service under the rules of its creation (not `replicas`): the fields given replace its own, `health` merges; `git` sets its git source (its `token` is write-only), `git: null` removes it. `applies` says per field whether it takes effect now (`name`) or with the next release (all a container or route is made of); 409 while a release is in flight',
    tag: 'services',
    auth: true,
    body: s.updateServiceInput,
    status: 200,
    handle: ({ deps, principal, params, body, ctx }) =>
      updateService(deps, principal, params.id!, body, ctx),
  }),
  route({
    method: 'delete',
    path: '/api/services/{id}',
    permission: 'manage-resources',
    summary:
      'Delete a service (?confirm=<its name>) with its releases, secrets, domains and push hook; the worker then removes its edge routes and containers. 409 while a release is in flight',
    tag: 'services',
    auth: true,
    query: s.confirmQuery,
    status: 204,
    handle: ({ deps, principal, params, query, ctx }) =>
      deleteService(deps, principal, params.id!, query.confirm, ctx),
  }),
  route({
    method: 'post',
    path: '/api/services/{id}/redeploy',
    permission: 'deploy',
    summary:
      'Deploy the serving release’s image (its digest, or the built sha) again with the service’s current settings; 202 with the release, 409 when nothing serves there or a release is in flight',
    tag: 'services',
    auth: true,
    body: s.redeployInput,
    status: 202,
    handle: ({ deps, principal, params, body, ctx }) =>
      redeployService(deps.release, principal, params.id!, body, ctx),
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
    path: '/api/services/{id}/logs',
    summary:
      "Every replica's stdout/stderr from its node's engine, merged in time order, each line with its replica, node and time: `since`/`until` (ISO or `1h`, at most 31 days), `grep` (substring; `regex=true` for a linear-time regular expression), `tail`, `follow`; a range read answers at most `limit` lines (≤ 5,000, oldest first) and then `{type: 'more', since}`, the next page's `since`; NDJSON, or Server-Sent Events with Accept: text/event-stream",
    tag: 'services',
    auth: true,
    permission: 'read',
    query: serviceLogsQuery,
    status: 200,
    handle: ({ deps, principal, params, query, request }) =>
      streamLogs((signal) => openServiceLogs(deps, principal, params.id!, query, signal), request),
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
      'Request rate, p50/p95 latency, 4xx/5xx rates, open connections (WebSockets), CPU, memory and the busiest replica’s restarts in 15 min of one environment over the last hour, day or week (range=1h|1d|1w); without a metrics backend, what to install',
    tag: 'services',
    auth: true,
    permission: 'read',
    query: s.serviceMetricsQuery,
    status: 200,
    handle: ({ deps, principal, params, query }) =>
      getServiceMetrics(deps, principal, params.id!, query),
  }),
];
