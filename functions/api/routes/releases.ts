import * as z from 'zod';
import type { ReleaseLogLine } from '../../../core/models.ts';
import { createReleaseInput } from '../../../core/releases/create.ts';
import {
  cancelRelease,
  createRelease,
  getRelease,
  listReleaseLogs,
  listReleases,
  rollbackRelease,
} from '../../../core/releases/engine.ts';
import { isTerminal } from '../../../core/releases/state-machine.ts';
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

/** How often the live log stream looks for new lines and status changes. */
const streamPollMs = 250;
/** A stream ends by itself after this long, so an abandoned client holds nothing for ever. */
const streamMaxMs = 30 * 60_000;

/**
 * `Accept: text/event-stream`: the release's log lines as they are written (`event: log`),
 * each status change (`event: status`), and an `event: end` once the release is finished.
 * Reconnecting with `Last-Event-ID` resumes after the last line received.
 */
function streamLogs(
  deps: ApiDeps,
  principal: Principal,
  id: string,
  after: number,
  signal: AbortSignal,
): Response {
  const encoder = new TextEncoder();
  let seq = after;
  let lastStatus: string | null = null;
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (event: string, data: unknown, eventId?: number) =>
        controller.enqueue(
          encoder.encode(
            `${eventId !== undefined ? `id: ${eventId}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`,
          ),
        );
      const deadline = Date.now() + streamMaxMs;
      try {
        while (!signal.aborted && Date.now() < deadline) {
          const release = await getRelease(deps.release, principal, id);
          const lines: ReleaseLogLine[] = await listReleaseLogs(
            deps.release,
            principal,
            id,
            seq,
            1000,
          );
          for (const line of lines) {
            send('log', line, line.seq);
            seq = line.seq;
          }
          if (release.status !== lastStatus) {
            lastStatus = release.status;
            send('status', { status: release.status, error: release.error });
          }
          if (isTerminal(release.status) && lines.length === 0) {
            send('end', { status: release.status });
            break;
          }
          if (lines.length < 1000)
            await deps.clock.sleep(streamPollMs, signal).catch(() => undefined);
        }
      } catch (e) {
        send('error', { message: e instanceof Error ? e.message : String(e) });
      } finally {
        controller.close();
      }
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
    status: 200,
    handle: ({ deps, principal, params, ctx }) =>
      cancelRelease(deps.release, principal, { releaseId: params.id! }, ctx),
  }),
];
