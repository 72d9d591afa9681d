/** Store contract: cron jobs and their runs. */
import { describe, expect, it } from 'vitest';
import { aJob, aJobRun, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function jobCases(): void {
  describe('jobs', () => {
    it('inserts, reads, lists by service, updates and deletes, one org only', async () => {
      const job = aJob(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.jobs.insert(job));
      expect(await inA((r) => r.jobs.get(job.id))).toEqual(job);
      expect(await store.withOrg(b.orgId, (r) => r.jobs.get(job.id))).toBeNull();
      expect(
        (await inA((r) => r.jobs.list({ limit: 10 }, { serviceId: a.serviceId }))).items,
      ).toEqual([job]);
      expect(
        (await inA((r) => r.jobs.list({ limit: 10 }, { projectId: a.projectId }))).items,
      ).toEqual([job]);
      expect(
        (await inA((r) => r.jobs.list({ limit: 10 }, { serviceId: 'svc_other' }))).items,
      ).toEqual([]);
      await inA((r) => r.jobs.update(job.id, { schedule: '0 * * * *', retries: 0 }));
      expect(await inA((r) => r.jobs.get(job.id))).toEqual({
        ...job,
        schedule: '0 * * * *',
        retries: 0,
      });
      await rejectsWith(
        store.withOrg(b.orgId, (r) => r.jobs.update(job.id, { retries: 1 })),
        'job_not_found',
      );
      expect(await store.withOrg(b.orgId, (r) => r.jobs.delete(job.id))).toBe(false);
      expect(await inA((r) => r.jobs.delete(job.id))).toBe(true);
      expect(await inA((r) => r.jobs.get(job.id))).toBeNull();
    });

    it("refuses a second job of one name in a service environment, and another org's service", async () => {
      const job = aJob(a.orgId, a.serviceId, a.environmentId, { name: 'nightly' });
      await inA((r) => r.jobs.insert(job));
      await rejectsWith(
        inA((r) => r.jobs.insert(aJob(a.orgId, a.serviceId, a.environmentId, { name: 'nightly' }))),
        'job_exists',
      );
      const foreign = store.withOrg(a.orgId, (r) =>
        r.jobs.insert(aJob(a.orgId, b.serviceId, b.environmentId)),
      );
      await expect(foreign).rejects.toThrow();
    });

    it('holds one running exclusive run per job, any number of allowed ones, and lists them oldest first', async () => {
      const job = aJob(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.jobs.insert(job));
      const first = aJobRun(a.orgId, job.id);
      expect(await inA((r) => r.jobRuns.start(first))).toBe(true);
      // A second exclusive run while the first runs is not recorded: the firing is skipped.
      expect(await inA((r) => r.jobRuns.start(aJobRun(a.orgId, job.id)))).toBe(false);
      const allowed = aJobRun(a.orgId, job.id, { exclusive: false });
      expect(await inA((r) => r.jobRuns.start(allowed))).toBe(true);
      expect((await inA((r) => r.jobRuns.running(job.id))).map((x) => x.id)).toEqual([
        first.id,
        allowed.id,
      ]);
      const done = {
        status: 'succeeded' as const,
        exitCode: 0,
        finishedAt: new Date(Date.parse(first.startedAt) + 1500).toISOString(),
        durationMs: 1500,
        logTail: 'done',
        error: null,
      };
      await inA((r) => r.jobRuns.finish(first.id, done));
      // The slot is free again once the running one finished.
      const next = aJobRun(a.orgId, job.id);
      expect(await inA((r) => r.jobRuns.start(next))).toBe(true);
      const runs = (await inA((r) => r.jobRuns.list(job.id, { limit: 10 }))).items;
      expect(runs).toEqual([{ ...first, ...done }, allowed, next]);
      expect(
        (await store.withOrg(b.orgId, (r) => r.jobRuns.list(job.id, { limit: 10 }))).items,
      ).toEqual([]);
      // Runs go with their job.
      await inA((r) => r.jobs.delete(job.id));
      expect((await inA((r) => r.jobRuns.list(job.id, { limit: 10 }))).items).toEqual([]);
    });
  });
}
