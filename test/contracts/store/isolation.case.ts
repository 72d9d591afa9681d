/** Store contract: one org never sees or changes another's rows. */
import { describe, expect, it } from 'vitest';
import {
  at,
  aNode,
  aRelease,
  aDomain,
  anApiKey,
  aSecret,
  aWebhook,
  anAuditEvent,
  aDeployJob,
  aStep,
  rejectsWith,
} from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function isolationCases(): void {
  describe('org isolation', () => {
    it("never shows org B's rows inside org A", async () => {
      // Give B one of everything.
      const bRel = aRelease(b.orgId, b.serviceId, b.environmentId);
      const bNode = aNode(b.orgId);
      const bDomain = aDomain(b.orgId, b.serviceId, b.environmentId);
      const bJob = aDeployJob(b.orgId, bRel.id);
      const bKey = anApiKey(b.orgId);
      await store.withOrg(b.orgId, async (r) => {
        await r.nodes.insert(bNode);
        await r.releases.insert(bRel);
        await r.releaseSteps.upsert(aStep(b.orgId, bRel.id));
        await r.releaseLogs.append(bRel.id, [{ at: at(), stream: 'stdout', line: 'b' }]);
        await r.deployJobs.insert(bJob);
        await r.domains.insert(bDomain);
        await r.secrets.put(aSecret(b.orgId, b.serviceId, b.environmentId));
        await r.webhooks.insert(aWebhook(b.orgId));
        await r.audit.append(anAuditEvent(b.orgId));
        await r.apiKeys.insert(bKey);
      });
      const page = { limit: 200 };
      await inA(async (r) => {
        expect((await r.orgs.get())?.id).toBe(a.orgId);
        expect((await r.projects.list(page)).items.map((x) => x.id)).toEqual([a.projectId]);
        expect((await r.environments.list(page)).items.map((x) => x.id)).toEqual([a.environmentId]);
        expect((await r.services.list(page)).items.map((x) => x.id)).toEqual([a.serviceId]);
        expect((await r.nodes.list(page)).items).toEqual([]);
        expect((await r.releases.list(page)).items).toEqual([]);
        expect((await r.deployJobs.list(page)).items).toEqual([]);
        expect((await r.domains.list(page)).items).toEqual([]);
        expect((await r.apiKeys.list(page)).items).toEqual([]);
        expect((await r.audit.list(page)).items).toEqual([]);
        expect(await r.webhooks.list()).toEqual([]);
        expect(await r.memberships.list()).toEqual([]);
        expect(await r.projects.get(b.projectId)).toBeNull();
        expect(await r.environments.get(b.environmentId)).toBeNull();
        expect(await r.environments.findByName(b.projectId, 'production')).toBeNull();
        expect(await r.services.get(b.serviceId)).toBeNull();
        expect(await r.nodes.get(bNode.id)).toBeNull();
        expect(await r.releases.get(bRel.id)).toBeNull();
        expect(await r.releases.inFlight(b.serviceId, b.environmentId)).toBeNull();
        expect(await r.releases.latest(b.serviceId, b.environmentId, ['queued'])).toBeNull();
        expect(await r.releaseSteps.list(bRel.id)).toEqual([]);
        expect(await r.releaseLogs.list(bRel.id)).toEqual([]);
        expect(await r.deployJobs.get(bJob.id)).toBeNull();
        expect(await r.domains.get(bDomain.id)).toBeNull();
        expect(await r.secrets.list(b.serviceId, b.environmentId)).toEqual([]);
        expect(await r.releases.transition(bRel.id, 'queued', { status: 'failed' })).toBe(false);
      });
      await rejectsWith(
        inA((r) => r.domains.update(bDomain.id, { status: 'failed' })),
        'domain_not_found',
      );
      await rejectsWith(
        inA((r) => r.deployJobs.update(bJob.id, { attempts: 9 })),
        'deploy_job_not_found',
      );
      // B's data is untouched by all of that.
      expect(await store.withOrg(b.orgId, (r) => r.releases.get(bRel.id))).toEqual(bRel);
      expect(await store.withOrg(b.orgId, (r) => r.deployJobs.get(bJob.id))).toEqual(bJob);
    });
  });
}
