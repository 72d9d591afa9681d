import * as z from 'zod';
import { createReleaseInput } from '../../../core/releases/create.ts';
import {
  cancelRelease,
  createRelease,
  getRelease,
  listReleaseLogs,
  listReleases,
  rollbackRelease,
} from '../../../core/releases/engine.ts';
import { ReleaseLogFeeds, type FeedEvent } from '../../../core/releases/log-feed.ts';
import { readReleaseProgress } from '../../../core/releases/queries.ts';
import * as s from '../../../core/schemas.ts';
import type { Principal } from '../../../core/deps.ts';
import type { ApiDeps } from '../../../core/system.ts';
import { route } from '../route.ts';

const releaseFilter = s.pageQuery.extend({
  serviceId: s.id.optional(),
  environmentId: s.id.optional(),
});
const logQuery = z.object({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(5000).optional(),
});

/** A stream ends by itself after this long, so an abandoned client holds nothing for ever. */
const streamMaxMs = 30 * 60_000;

// One set of feeds per API (tests run several in one process); each shares a poller per release.
const feedsOf = new WeakMap<ApiDeps, ReleaseLogFeeds>();
const feeds = (deps: ApiDeps) => {
  let f = feedsOf.get(deps);
  if (!f) feedsOf.set(deps, (f = new ReleaseLogFeeds({ clock: deps.clock })));
  return f;
};

/**
 * `Accept: text/event-stream`: the release's log lines as they are written (`event: log`),
 * each status change (`event: status`), and an `event: end` once the release is finished.
 * Reconnecting with `Last-Event-ID` resumes after the last line received. Throws
 * TooManyStreams (429) when the caller already holds the most streams one caller may.
 */
function streamLogs(
  deps: ApiDeps,
  principal: Principal,
  id: string,
  after: number,
  signal: AbortSignal,
): Response {
  const encoder = new TextEncoder();
  const stop = new AbortController();
  const abort = () => stop.abort();
  signal.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(abort, streamMaxMs);
  const clear = () => {
    clearTimeout(timer);
    signal.removeEventListener('abort', abort);
  };
  let events: AsyncIterable<FeedEvent>;
  try {
    events = feeds(deps).open(
      `${principal.actorType}:${principal.actorId}`,
      `${principal.orgId}:${id}`,
      (afterSeq, limit) => readReleaseProgress(deps.release, principal, id, afterSeq, limit),
      after,
      stop.signal,
    );
  } catch (e) {
    clear();
    throw e;
  }
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (event: string, data: unknown, eventId?: number) =>
        controller.enqueue(
          encoder.encode(
            `${eventId !== undefined ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`,
          ),
        );
      try {
        for await (const e of events) {
          if (e.type === 'log') send('log', e.line, e.line.seq);
          else if (e.type === 'status') send('status', { status: e.status, error: e.error });
          else if (e.type === 'end') send('end', { status: e.status });
          else send('error', { message: e.message });
        }
      } catch (e) {
        send('error', { message: e instanceof Error ? e.message : String(e) });
      } finally {
        clear();
        controller.close();
      }
    },
    cancel() {
      stop.abort();
    },
  });
  return new Response(body, {
    headers: {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    },
  });
}

export const releaseRoutes = [
  route({
    method: 'post',
    path: '/api/releases',
    summary:
      'Deploy an image to a service environment; 409 while another release of it is in flight',
    tag: 'releases',
    auth: true,
    permission: 'deploy',
    body: createReleaseInput,
    status: 202,
    handle: ({ deps, principal, body, ctx }) => createRelease(deps.release, principal, body, ctx),
  }),
  route({
    method: 'get',
    path: '/api/releases',
    summary: 'List releases, oldest first; filter by service and environment',
    tag: 'releases',
    auth: true,
    permission: 'read',
    query: releaseFilter,
    status: 200,
    handle: ({ deps, principal, query }) =>
      listReleases(deps.release, principal, query, {
        serviceId: query.serviceId,
        environmentId: query.environmentId,
      }),
  }),
  route({
    method: 'get',
    path: '/api/releases/{id}',
    summary: 'A release with its steps (status, timings, error)',
    tag: 'releases',
    auth: true,
    permission: 'read',
    status: 200,
    handle: ({ deps, principal, params }) => getRelease(deps.release, principal, params.id!),
  }),
  route({
    method: 'get',
    path: '/api/releases/{id}/logs',
    summary:
      'The release log; with Accept: text/event-stream, streamed live until the release ends',
    tag: 'releases',
    auth: true,
    permission: 'read',
    query: logQuery,
    status: 200,
    handle: async ({ deps, principal, params, query, request }) => {
      if (request.headers.get('accept')?.includes('text/event-stream')) {
        // Fail before streaming: an unknown or foreign id is a plain 404.
        await getRelease(deps.release, principal, params.id!);
        const resumeFrom = Number(request.headers.get('last-event-id') ?? query.after) || 0;
        return streamLogs(deps, principal, params.id!, resumeFrom, request.signal);
      }
      const items = await listReleaseLogs(
        deps.release,
        principal,
        params.id!,
        query.after,
        query.limit,
      );
      return { items, nextAfter: items.at(-1)?.seq ?? query.after };
    },
  }),
  route({
    method: 'post',
    path: '/api/releases/{id}/rollback',
    summary: 'Return traffic to the release before this one (at once when it is still warm)',
    tag: 'releases',
    auth: true,
    permission: 'deploy',
    status: 202,
    handle: ({ deps, principal, params, ctx }) =>
      rollbackRelease(deps.release, principal, { releaseId: params.id! }, ctx),
  }),
  route({
    method: 'post',
    path: '/api/releases/{id}/cancel',
    summary:
      'Cancel a release not yet switching traffic: failed ("cancelled by …"), its candidate removed; 409 once switching or finished',
    tag: 'releases',
    auth: true,
    permission: 'deploy',
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      cancelRelease(deps.release, principal, { releaseId: params.id! }, ctx),
  }),
];
