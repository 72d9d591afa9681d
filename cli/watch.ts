import type { ApiClient } from './client.ts';
import { duration, type Output } from './output.ts';
import { terminalStatuses, type Release } from './resolve.ts';

/** How long the CLI follows one release before it gives up waiting (the API's own stream limit). */
const followMaxMs = 30 * 60_000;

/**
 * Prints a release's steps as they start and finish, and (with `logs`) its log lines as
 * they are written, until it is finished. Returns the finished release.
 */
export async function followRelease(
  api: ApiClient,
  id: string,
  o: Output,
  options: { logs: boolean; afterSeq?: number },
): Promise<Release> {
  const printed = new Map<string, string>();
  const showSteps = (r: Release) => {
    for (const s of r.steps ?? []) {
      if (printed.get(s.name) === s.status) continue;
      printed.set(s.name, s.status);
      if (s.status === 'running') o.out(`→ ${s.name}`);
      else if (s.status === 'succeeded')
        o.out(`✓ ${s.name} (${duration(s.startedAt, s.finishedAt)})`);
      else o.out(`✗ ${s.name} (${duration(s.startedAt, s.finishedAt)}): ${s.error ?? 'failed'}`);
    }
  };
  const get = () => api.call<Release>('GET', `/api/releases/${id}`);
  let lastLook = 0;
  const deadline = Date.now() + followMaxMs;
  try {
    for await (const e of api.events(`/api/releases/${id}/logs?after=${options.afterSeq ?? 0}`)) {
      if (e.event === 'log' && options.logs) {
        const line = e.data as { line: string; stream: string };
        o.out(`    ${line.stream === 'system' ? '' : `[${line.stream}] `}${line.line}`);
      }
      // Steps change with statuses; a look every second between them catches the rest.
      if (e.event === 'status' || e.event === 'end' || Date.now() - lastLook > 1000) {
        lastLook = Date.now();
        showSteps(await get());
      }
      if (e.event === 'end' || Date.now() > deadline) break;
    }
  } catch (e) {
    o.err(`live log stream ended early (${(e as Error).message}); polling the release instead`);
  }
  // The stream may end early (proxy timeout, restart): poll until the release is finished.
  let release = await get();
  while (!terminalStatuses.includes(release.status) && Date.now() < deadline) {
    showSteps(release);
    await new Promise((r) => setTimeout(r, 1000));
    release = await get();
  }
  showSteps(release);
  return release;
}

/** The step that failed, or the release's own error when no step row says so. */
export function failure(release: Release): { step: string; error: string } {
  const step = release.steps?.find((s) => s.status === 'failed');
  return {
    step: step?.name ?? release.status,
    error: step?.error ?? release.error ?? 'no reason recorded',
  };
}
