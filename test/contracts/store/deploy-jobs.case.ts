/** Store contract: deploy jobs. */
import { describe, expect, it } from 'vitest';
import { at, aRelease, aDeployJob, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function deployJobCases(): void {
  describe('deploy jobs', () => {
    it('round-trips, updates and lists jobs', async () => {
      const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
      const job = aDeployJob(a.orgId, rel.id);
      await inA(async (r) => {
        await r.releases.insert(rel);
        await r.deployJobs.insert(job);
      });
      await inA((r) =>
        r.deployJobs.update(job.id, { status: 'running', attempts: 1, updatedAt: at(4) }),
      );
      const updated = { ...job, status: 'running' as const, attempts: 1, updatedAt: at(4) };
      expect(await inA((r) => r.deployJobs.get(job.id))).toEqual(updated);
      expect(await inA((r) => r.deployJobs.list({ limit: 5 }))).toEqual({
        items: [updated],
        nextCursor: null,
      });
      await rejectsWith(
        inA((r) => r.deployJobs.update('job_missing', { attempts: 2 })),
        'deploy_job_not_found',
      );
      await rejectsWith(
        inA((r) => r.deployJobs.insert(aDeployJob(a.orgId, 'rel_missing'))),
        'release_not_found',
      );
      expect(await store.withOrg(b.orgId, (r) => r.deployJobs.get(job.id))).toBeNull();
    });
  });
}
