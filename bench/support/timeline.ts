/**
 * Where one deploy's time goes, from three clocks that are one clock here (the engine runs
 * in the bench's process, PostgreSQL on the same machine): the bench's POST, pg-boss's job
 * rows (created, fetched, completed) and the engine's step rows. The segments tile the
 * span from the POST to the end of the `switch_traffic` step, when the route points at the
 * candidate and the release moves to `traffic_shifted`.
 */
import type { ReleaseWire, StepJob } from './stack.ts';

export interface DeployTimeline {
  releaseId: string;
  image: string;
  /** POST sent → switch_traffic finished. */
  toSwitchMs: number;
  /** POST sent → release completed. */
  toCompletedMs: number | null;
  /** POST sent → 202 received. */
  apiMs: number;
  /** POST sent → first message inserted (the API's work before it answers). */
  apiToSendMs: number;
  /**
   * Per message (release status it was sent for): from when it could run (sent, and the
   * group's previous message done) to when a worker fetched it. The queue's share.
   */
  pickupMs: Record<string, number>;
  /** Per message: fetched → done (for health_validating: fetched → switch finished). */
  handlerMs: Record<string, number>;
  /** Step rows: started → finished. */
  stepMs: Record<string, number>;
  /** toSwitchMs minus every segment above; ~0 when the segments tile the span. */
  unaccountedMs: number;
  /** toSwitchMs without the queue's share: what the deploy would take if every message were fetched at once. */
  withoutPickupMs: number;
  /** When the route change ran (switch_traffic started, finished), ms since the epoch. */
  switchWindow: [number, number];
  retries: number;
}

/** The messages up to the switch, in order (`candidate_started` runs the no-op migrate). */
export const messagesToSwitch = [
  'queued',
  'artifact_ready',
  'candidate_started',
  'health_validating',
] as const;

export function deployTimeline(
  sent: { t0: number; tResp: number },
  release: ReleaseWire,
  jobs: StepJob[],
): DeployTimeline {
  const at = (iso: string | null | undefined) => (iso ? Date.parse(iso) : Number.NaN);
  const step = (name: string) => release.steps.find((s) => s.name === name);
  const switched = at(step('switch_traffic')?.finishedAt);
  if (Number.isNaN(switched))
    throw new Error(
      `release ${release.id} (${release.status}) has no finished switch_traffic step`,
    );
  const stepMs: Record<string, number> = {};
  for (const s of release.steps)
    if (s.finishedAt) stepMs[s.name] = at(s.finishedAt) - at(s.startedAt);

  const mine = jobs.filter((j) => j.releaseId === release.id);
  const pickupMs: Record<string, number> = {};
  const handlerMs: Record<string, number> = {};
  let previousDone: number | null = null;
  let accounted = 0;
  let firstSent = Number.NaN;
  for (const status of messagesToSwitch) {
    const job = mine.find((j) => j.status === status);
    if (!job || job.startedOn === null)
      throw new Error(`release ${release.id}: no fetched ${status} message in pg-boss`);
    if (status === 'queued') firstSent = job.createdOn;
    const runnable = Math.max(job.createdOn, previousDone ?? job.createdOn);
    pickupMs[status] = job.startedOn - runnable;
    const end = status === 'health_validating' ? switched : job.completedOn;
    if (end === null) throw new Error(`release ${release.id}: ${status} message not completed`);
    handlerMs[status] = end - job.startedOn;
    accounted += pickupMs[status] + handlerMs[status];
    previousDone = job.completedOn;
  }
  const apiToSendMs = firstSent - sent.t0;
  const toSwitchMs = switched - sent.t0;
  return {
    releaseId: release.id,
    image: release.image,
    toSwitchMs,
    toCompletedMs: release.finishedAt ? at(release.finishedAt) - sent.t0 : null,
    apiMs: sent.tResp - sent.t0,
    apiToSendMs,
    pickupMs,
    handlerMs,
    stepMs,
    unaccountedMs: toSwitchMs - apiToSendMs - accounted,
    withoutPickupMs: toSwitchMs - Object.values(pickupMs).reduce((a, b) => a + b, 0),
    switchWindow: [at(step('switch_traffic')?.startedAt), switched],
    retries: mine.reduce((n, j) => n + j.retryCount, 0),
  };
}
