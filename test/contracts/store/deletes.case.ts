/** Store contract: renames, and deleting a service, environment or project with what is theirs. */
import { describe, expect, it } from 'vitest';
import type { OrgRepos } from '../../../core/ports.ts';
import {
  aDataService,
  aDeployJob,
  aDomain,
  aNode,
  aProject,
  aRelease,
  aSecret,
  aService,
  aStep,
  anEnvironment,
  at,
  rejectsWith,
} from './builders.ts';
import { a, b, inA, store } from './context.ts';

/** A project with production and staging, two services, and history in each pair. */
async function aProjectWithHistory() {
  const p = aProject(a.orgId);
  const prod = anEnvironment(a.orgId, p.id, { name: 'production' });
  const staging = anEnvironment(a.orgId, p.id, { name: 'staging' });
  const web = aService(a.orgId, p.id, { name: 'web' });
  const api = aService(a.orgId, p.id, { name: 'api' });
  const node = aNode(a.orgId);
  const releases: string[] = [];
  await inA(async (r) => {
    await r.projects.insert(p);
    await r.environments.insert(prod);
    await r.environments.insert(staging);
    await r.services.insert(web);
    await r.services.insert(api);
    await r.nodes.insert(node);
    for (const s of [web, api])
      for (const e of [prod, staging]) {
        const first = aRelease(a.orgId, s.id, e.id, { status: 'completed', nodeId: node.id });
        const second = aRelease(a.orgId, s.id, e.id, {
          status: 'completed',
          nodeId: node.id,
          previousReleaseId: first.id,
        });
        for (const rel of [first, second]) {
          await r.releases.insert(rel);
          await r.releaseSteps.upsert(aStep(a.orgId, rel.id, { status: 'succeeded' }));
          await r.releaseLogs.append(rel.id, [{ at: at(), stream: 'system', line: 'hello' }]);
          await r.deployJobs.insert(aDeployJob(a.orgId, rel.id));
          releases.push(rel.id);
        }
        await r.secrets.put(aSecret(a.orgId, s.id, e.id, { name: 'TOKEN' }));
        await r.domains.insert(aDomain(a.orgId, s.id, e.id));
      }
  });
  return { p, prod, staging, web, api, node, releases };
}

const count = async (r: OrgRepos, serviceId: string, environmentId: string) => ({
  releases: (await r.releases.list({ limit: 100 }, { serviceId, environmentId })).items.length,
  secrets: (await r.secrets.list(serviceId, environmentId)).length,
  domains: (await r.domains.list({ limit: 100 }, { serviceId, environmentId })).items.length,
});

export function deleteCases(): void {
  describe('renames and deletes', () => {
    it('renames a project, an environment and a node; a taken name is a conflict', async () => {
      const { p, staging, node } = await aProjectWithHistory();
      await inA((r) => r.projects.update(p.id, { name: `${p.name}-2` }));
      expect((await inA((r) => r.projects.get(p.id)))?.name).toBe(`${p.name}-2`);
      await inA((r) => r.environments.update(staging.id, { name: 'qa' }));
      expect((await inA((r) => r.environments.findByName(p.id, 'qa')))?.id).toBe(staging.id);
      await rejectsWith(
        inA((r) => r.environments.update(staging.id, { name: 'production' })),
        'environment_exists',
      );
      await inA((r) => r.nodes.update(node.id, { labels: { role: 'app' }, address: '10.0.0.9' }));
      expect(await inA((r) => r.nodes.get(node.id))).toMatchObject({
        labels: { role: 'app' },
        address: '10.0.0.9',
        name: node.name,
      });
      // Another org's rows are not found, and not changed.
      await rejectsWith(
        store.withOrg(b.orgId, (r) => r.projects.update(p.id, { name: 'stolen' })),
        'project_not_found',
      );
      await rejectsWith(
        store.withOrg(b.orgId, (r) => r.nodes.update(node.id, { name: 'stolen' })),
        'node_not_found',
      );
    });

    it('deletes a service with its releases, steps, logs, jobs, secrets and domains, and nothing else', async () => {
      const { prod, staging, web, api, releases } = await aProjectWithHistory();
      expect(await store.withOrg(b.orgId, (r) => r.services.delete(web.id))).toBe(false);
      expect(await inA((r) => r.services.delete(web.id))).toBe(true);
      expect(await inA((r) => r.services.get(web.id))).toBeNull();
      for (const e of [prod, staging]) {
        expect(await inA((r) => count(r, web.id, e.id))).toEqual({
          releases: 0,
          secrets: 0,
          domains: 0,
        });
        expect(await inA((r) => count(r, api.id, e.id))).toEqual({
          releases: 2,
          secrets: 1,
          domains: 1,
        });
      }
      const [gone, kept] = [releases[0]!, releases.at(-1)!];
      expect(await inA((r) => r.releases.get(gone))).toBeNull();
      expect(await inA((r) => r.releaseSteps.list(gone))).toEqual([]);
      expect(await inA((r) => r.releaseLogs.list(gone))).toEqual([]);
      expect(await inA((r) => r.releaseSteps.list(kept))).toHaveLength(1);
      expect(await inA((r) => r.services.delete(web.id))).toBe(false);
    });

    it('deletes an environment with what every service had in it', async () => {
      const { p, prod, staging, web, api } = await aProjectWithHistory();
      expect(await inA((r) => r.environments.delete(staging.id))).toBe(true);
      expect(await inA((r) => r.environments.findByName(p.id, 'staging'))).toBeNull();
      for (const s of [web, api]) {
        expect(await inA((r) => count(r, s.id, staging.id))).toEqual({
          releases: 0,
          secrets: 0,
          domains: 0,
        });
        expect((await inA((r) => count(r, s.id, prod.id))).releases).toBe(2);
      }
    });

    it('deletes a project with its environments and services; a data service holds it', async () => {
      const { p, web, prod, node } = await aProjectWithHistory();
      const ds = aDataService(a.orgId, p.id, node.id);
      await inA((r) => r.dataServices.insert(ds));
      await expect(inA((r) => r.projects.delete(p.id))).rejects.toThrow();
      expect(await inA((r) => r.services.get(web.id))).not.toBeNull();
      await inA((r) => r.dataServices.delete(ds.id));
      expect(await inA((r) => r.projects.delete(p.id))).toBe(true);
      expect(await inA((r) => r.projects.get(p.id))).toBeNull();
      expect(await inA((r) => r.services.get(web.id))).toBeNull();
      expect(await inA((r) => r.environments.get(prod.id))).toBeNull();
      expect(await inA((r) => r.nodes.get(node.id))).not.toBeNull();
    });
    it("deletes a node: releases that ran on it keep their history, a data service holds it, another org's is not found", async () => {
      const { p, web, prod, node, releases } = await aProjectWithHistory();
      const ds = aDataService(a.orgId, p.id, node.id);
      await inA((r) => r.dataServices.insert(ds));
      await expect(inA((r) => r.nodes.delete(node.id))).rejects.toThrow();
      expect(await inA((r) => r.nodes.get(node.id))).not.toBeNull();
      await inA((r) => r.dataServices.delete(ds.id));
      await expect(store.withOrg(b.orgId, (r) => r.nodes.delete(node.id))).resolves.toBe(false);
      expect(await inA((r) => r.nodes.get(node.id))).not.toBeNull();
      expect(await inA((r) => r.nodes.delete(node.id))).toBe(true);
      expect(await inA((r) => r.nodes.get(node.id))).toBeNull();
      expect(await inA((r) => r.nodes.delete(node.id))).toBe(false);
      const kept = await inA((r) =>
        r.releases.list({ limit: 100 }, { serviceId: web.id, environmentId: prod.id }),
      );
      expect(kept.items.map((x) => [x.id, x.nodeId]).sort()).toEqual(
        releases.slice(0, 2).map((id) => [id, null]),
      );
    });
  });
}
