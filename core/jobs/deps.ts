import type { JobRunTrigger } from '../models.ts';

/** The queue a job's firings and manual runs travel on: one message per attempt. */
export const jobRunsQueue = 'job-runs';

/** What a schedule (or `POST /api/jobs/{id}/run`, or a retry) sends. */
export interface JobRunMessage {
  orgId: string;
  jobId: string;
  trigger: JobRunTrigger;
  /** 1 for a firing; retries count on. */
  attempt?: number;
}

/** Runs kept per job: the newest, so an every-minute job cannot grow the table. */
export const jobRunsKept = 100;

/** Output kept per run: its last bytes. */
export const jobLogTailBytes = 8 * 1024;

/** The Scheduler's name of a job's schedule. */
export const jobScheduleName = (jobId: string): string => `job-${jobId}`;

/** Longest timeout a job may ask for where no mode says less (pg-boss's lease is an hour). */
export const defaultMaxJobTimeoutSeconds = 3600;

/** How long a retry waits after a failed attempt: `base` (30 s) doubling, at most 10 minutes. */
export const retryDelaySeconds = (attempt: number, base = 30): number =>
  Math.min(600, base * 2 ** (attempt - 1));

export const jobWorkerActor = { actorType: 'system', actorId: 'job-runner' } as const;
