/** Store contract: projects, environments, services and nodes. */
import { describe, expect, it } from 'vitest';
import { at, aProject, anEnvironment, aService, aNode, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function projectCases(): void {
  describe('projects, environments, services, nodes', () => {
    it('round-trips a project; names are unique per org, not across orgs', async () => {
      const p = aProject(a.orgId, { name: 'shop' });
      await inA((r) => r.projects.insert(p));
      expect(await inA((r) => r.projects.get(p.id))).toEqual(p);
      await store.withOrg(b.orgId, (r) => r.projects.insert(aProject(b.orgId, { name: 'shop' })));
      const e = await rejectsWith(
        inA((r) => r.projects.insert(aProject(a.orgId, { name: 'shop' }))),
        'project_exists',
      );
      expect(e.message).toBe('project shop already exists');
      await rejectsWith(
        inA((r) => r.projects.insert({ ...p, name: 'other' })),
        'project_exists',
      );
      expect(await inA((r) => r.projects.get('prj_missing'))).toBeNull();
    });

    it('round-trips environments, finds them by name and filters by project', async () => {
      const p2 = aProject(a.orgId);
      const staging = anEnvironment(a.orgId, p2.id, { name: 'staging' });
      await inA(async (r) => {
        await r.projects.insert(p2);
        await r.environments.insert(staging);
      });
      expect(await inA((r) => r.environments.get(staging.id))).toEqual(staging);
      expect(await inA((r) => r.environments.findByName(p2.id, 'staging'))).toEqual(staging);
      expect(await inA((r) => r.environments.findByName(p2.id, 'production'))).toBeNull();
      const page = await inA((r) => r.environments.list({ limit: 10 }, { projectId: p2.id }));
      expect(page.items.map((e) => e.id)).toEqual([staging.id]);
      expect((await inA((r) => r.environments.list({ limit: 10 }))).items).toHaveLength(2);
      await rejectsWith(
        inA((r) => r.environments.insert(anEnvironment(a.orgId, p2.id, { name: 'staging' }))),
        'environment_exists',
      );
    });

    it('refuses an environment or service in an unknown project or one of another org', async () => {
      const e1 = await rejectsWith(
        inA((r) => r.environments.insert(anEnvironment(a.orgId, 'prj_missing'))),
        'project_not_found',
      );
      expect(e1.message).toBe('project prj_missing not found');
      await rejectsWith(
        inA((r) => r.environments.insert(anEnvironment(a.orgId, b.projectId, { name: 'staging' }))),
        'project_not_found',
      );
      await rejectsWith(
        inA((r) => r.services.insert(aService(a.orgId, b.projectId))),
        'project_not_found',
      );
    });

    it('round-trips every service field', async () => {
      const s = aService(a.orgId, a.projectId, {
        name: 'api',
        migrateCommand: 'npm run migrate',
        strategy: 'replace',
        replicas: 3,
        env: { NODE_ENV: 'production', EMPTY: '' },
        memoryMb: 512,
        cpus: 0.5,
        health: { intervalMs: 250, timeoutMs: 1000, successes: 3, deadlineMs: 90_000 },
        warmSeconds: 600,
        drainSeconds: 120,
        sticky: true,
      });
      await inA((r) => r.services.insert(s));
      expect(await inA((r) => r.services.get(s.id))).toEqual(s);
      await rejectsWith(
        inA((r) => r.services.insert(aService(a.orgId, a.projectId, { name: 'api' }))),
        'service_exists',
      );
      const filtered = await inA((r) => r.services.list({ limit: 10 }, { projectId: a.projectId }));
      expect(filtered.items.map((x) => x.id).sort()).toEqual([a.serviceId, s.id].sort());
    });

    it('round-trips nodes; names are unique per org', async () => {
      const n = aNode(a.orgId, {
        name: 'node-1',
        labels: { zone: 'eu-1', gpu: 'no' },
        drainMode: true,
        dockerHost: 'tcp://10.0.0.2:2376',
      });
      await inA((r) => r.nodes.insert(n));
      expect(await inA((r) => r.nodes.get(n.id))).toEqual(n);
      expect((await inA((r) => r.nodes.list({ limit: 10 }))).items).toEqual([n]);
      await rejectsWith(
        inA((r) => r.nodes.insert(aNode(a.orgId, { name: 'node-1' }))),
        'node_exists',
      );
    });

    it("replaces a node's sealed credentials, only in its own org", async () => {
      const n = aNode(a.orgId, { dockerHost: 'tcp://10.0.0.3:2376', sealedTls: 'sealed-1' });
      await inA((r) => r.nodes.insert(n));
      expect(await inA((r) => r.nodes.get(n.id))).toEqual(n);
      const rotated = { sealedTls: 'sealed-2', sealedSsh: null, credentialsUpdatedAt: at(5) };
      await inA((r) => r.nodes.setCredentials(n.id, rotated));
      expect(await inA((r) => r.nodes.get(n.id))).toEqual({ ...n, ...rotated });
      await rejectsWith(
        store.withOrg(b.orgId, (r) =>
          r.nodes.setCredentials(n.id, { ...rotated, sealedTls: 'theirs' }),
        ),
        'node_not_found',
      );
      await rejectsWith(
        inA((r) => r.nodes.setCredentials('nod_missing', rotated)),
        'node_not_found',
      );
      expect((await inA((r) => r.nodes.get(n.id)))?.sealedTls).toBe('sealed-2');
    });
  });
}
