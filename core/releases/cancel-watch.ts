import type { StepContext } from './context.ts';
import { isInFlight } from './state-machine.ts';

/** How often a running step asks whether its release was cancelled (or otherwise ended). */
export const defaultCancelPollMs = 1_000;

/** A step's view of a cancel: the signal its long calls take, and why it fired. */
export interface CancelWatch {
  /** Aborts once the release is no longer in flight (a cancel made it `failed`). */
  readonly signal: AbortSignal;
  /** The release's own reason (`cancelled by user …`) once the signal fired, else null. */
  reason(): string | null;
  stop(): void;
}

/**
 * Watches the release a step runs for and aborts when it leaves flight, so a cancel reaches
 * a build or an image move at once instead of after it (the clean-up a cancel queues runs
 * only once the step has ended, and the build held its node's slot until then). A cancel
 * is a row in the store, written by whichever process took the request (an API process, a
 * Lambda), so the watch reads the row: one small read a second while a step runs, in both
 * modes. The step's own moves keep the release in flight and never fire it.
 *
 * Real timers rather than the Clock port: a test clock's sleep returns at once, and a poll
 * on it would spin without ever letting the step's own timers run.
 */
export function watchCancel(
  c: Pick<StepContext, 'deps' | 'release'>,
  intervalMs: number = c.deps.config.cancelPollMs ?? defaultCancelPollMs,
): CancelWatch {
  const controller = new AbortController();
  const { orgId, id } = c.release;
  let reason: string | null = null;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    timer = setTimeout(() => void check(), intervalMs);
    // A watch never keeps a process alive on its own.
    timer.unref?.();
  };
  const check = async () => {
    timer = undefined;
    if (stopped) return;
    try {
      const now = await c.deps.store.withOrg(orgId, (repos) => repos.releases.get(id));
      if (stopped) return;
      if (!now || !isInFlight(now.status)) {
        reason = now ? (now.error ?? `the release is ${now.status}`) : 'the release was deleted';
        controller.abort(new Error(reason));
        return;
      }
    } catch {
      // The store did not answer this time: the step's own calls will say so; ask again.
    }
    if (!stopped) schedule();
  };
  schedule();
  return {
    signal: controller.signal,
    reason: () => reason,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
