/** Store contract: releases, their steps and their logs. */
import { describe, expect, it, beforeEach } from 'vitest';
import { ReleaseAlreadyInFlight, type CoreError } from '../../../core/errors.ts';
import type { Release } from '../../../core/models.ts';
import { at, anEnvironment, aService, aNode, aRelease, aStep, rejectsWith } from './builders.ts';
import { store, a, b, inA } from './context.ts';

export function releaseCases(): void {
  describe('releases', () => {
    it('round-trips a release and finds it in flight', async () => {
      const n = aNode(a.orgId);
      const prev = aRelease(a.orgId, a.serviceId, a.environmentId, {
        status: 'completed',
        finishedAt: at(1),
      });
      const r1 = aRelease(a.orgId, a.serviceId, a.environmentId, {
        gitSha: 'abc123',
        nodeId: n.id,
        previousReleaseId: prev.id,
      });
      await inA(async (r) => {
        await r.nodes.insert(n);
        await r.releases.insert(prev);
        await r.releases.insert(r1);
      });
      expect(await inA((r) => r.releases.get(r1.id))).toEqual(r1);
      expect(await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId))).toEqual(r1);
      expect(await inA((r) => r.releases.get('rel_missing'))).toBeNull();
    });

    it('lists, across orgs, every node a release built from git ran a replica on (buildNodes)', async () => {
      const [n1, n2, n3] = [aNode(a.orgId), aNode(a.orgId), aNode(a.orgId)];
      const other = aNode(b.orgId);
      const replica = (nodeId: string, index: number) => ({
        index,
        nodeId,
        containerId: null,
        upstream: null,
        health: 'planned' as const,
      });
      await inA(async (r) => {
        for (const n of [n1, n2, n3]) await r.nodes.insert(n);
        await r.releases.insert(
          aRelease(a.orgId, a.serviceId, a.environmentId, {
            status: 'completed',
            gitSha: 'a'.repeat(40),
            nodeId: n1.id,
            replicaSet: { replicas: [replica(n1.id, 0), replica(n2.id, 1)] },
          }),
        );
        // An image release: its node built nothing.
        await r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId, { nodeId: n3.id }));
      });
      await store.withOrg(b.orgId, async (r) => {
        await r.nodes.insert(other);
        await r.releases.insert(
          aRelease(b.orgId, b.serviceId, b.environmentId, {
            gitSha: 'b'.repeat(40),
            nodeId: other.id,
          }),
        );
      });
      // Other tests' releases may share the database: only this test's nodes are judged.
      const mine = new Set([n1.id, n2.id, n3.id, other.id]);
      const found = (await store.releaseLookup.buildNodes!(5000)).filter((x) => mine.has(x.nodeId));
      const key = (x: { orgId: string; nodeId: string }) => `${x.orgId}/${x.nodeId}`;
      expect(found.map(key).sort()).toEqual(
        [
          { orgId: a.orgId, nodeId: n1.id },
          { orgId: a.orgId, nodeId: n2.id },
          { orgId: b.orgId, nodeId: other.id },
        ]
          .map(key)
          .sort(),
      );
      expect(await store.releaseLookup.buildNodes!(1)).toHaveLength(1);
    });

    it("hands out an engine's build slots up to the limit, fairly across orgs, and drops requests of releases no longer building (buildSlots)", async () => {
      const slots = store.buildSlots!;
      const engine = 'tcp://10.9.9.9:2376';
      const envs = [
        anEnvironment(a.orgId, a.projectId, { name: 'e2' }),
        anEnvironment(a.orgId, a.projectId, { name: 'e3' }),
      ];
      const building = { status: 'building' as const };
      const [a1, a2, a3] = [
        aRelease(a.orgId, a.serviceId, a.environmentId, building),
        aRelease(a.orgId, a.serviceId, envs[0]!.id, building),
        aRelease(a.orgId, a.serviceId, envs[1]!.id, building),
      ];
      const b1 = aRelease(b.orgId, b.serviceId, b.environmentId, building);
      await inA(async (r) => {
        for (const e of envs) await r.environments.insert(e);
        for (const x of [a1, a2, a3]) await r.releases.insert(x);
      });
      await store.withOrg(b.orgId, (r) => r.releases.insert(b1));
      const ask = (x: { id: string; orgId: string }, lease = 600) =>
        slots.take({ releaseId: x.id, orgId: x.orgId, engine }, 1, lease);
      expect(await ask(a1)).toEqual({ granted: true });
      expect(await ask(a2)).toEqual({
        granted: false,
        running: [{ releaseId: a1.id, orgId: a.orgId }],
        ahead: 0,
      });
      expect(await ask(b1)).toMatchObject({ granted: false, ahead: 1 });
      // Asking again while holding it renews it; another engine has its own slots.
      expect(await ask(a1)).toEqual({ granted: true });
      expect(
        await slots.take(
          { releaseId: a3.id, orgId: a.orgId, engine: 'tcp://10.9.9.8:2376' },
          1,
          600,
        ),
      ).toEqual({ granted: true });
      await slots.free(a3.id, a.orgId);
      // a1 ends: b, never served here, goes before a's older request.
      await slots.free(a1.id, a.orgId);
      expect(await ask(a2)).toMatchObject({ granted: false });
      expect(await ask(b1)).toEqual({ granted: true });
      // Another org cannot free b's slot.
      await slots.free(b1.id, a.orgId);
      expect(await ask(a2)).toMatchObject({ granted: false, running: [{ releaseId: b1.id }] });
      // b1 is cancelled: its slot goes, and a2 gets it.
      await store.withOrg(b.orgId, (r) =>
        r.releases.transition(b1.id, 'building', { status: 'failed', error: 'cancelled' }),
      );
      expect(await ask(a2)).toEqual({ granted: true });
      // A lease that ran out (a worker that died) frees the slot.
      await slots.free(a2.id, a.orgId);
      expect(await ask(a3, 0)).toEqual({ granted: true });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await ask(a1)).toEqual({ granted: true });
    });

    it('refuses a second release of a service environment in flight, naming the first', async () => {
      const first = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'migrating' });
      await inA((r) => r.releases.insert(first));
      const e = await rejectsWith(
        inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
        'release_in_flight',
      );
      expect(e).toBeInstanceOf(ReleaseAlreadyInFlight);
      expect(e.details).toEqual({ releaseId: first.id });
      // Another environment of the same service is free.
      const staging = anEnvironment(a.orgId, a.projectId, { name: 'staging' });
      await inA(async (r) => {
        await r.environments.insert(staging);
        await r.releases.insert(aRelease(a.orgId, a.serviceId, staging.id));
      });
      // Once the first is finished, the next may start.
      expect(
        await inA((r) =>
          r.releases.transition(first.id, 'migrating', {
            status: 'failed',
            error: 'boom',
            finishedAt: at(3),
          }),
        ),
      ).toBe(true);
      await inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId)));
    });

    it('lets only one of two concurrent releases of a service environment in', async () => {
      const results = await Promise.allSettled([
        inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
        inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
      ]);
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((x) => x.status === 'rejected');
      expect(rejected?.reason).toBeInstanceOf(ReleaseAlreadyInFlight);
      const holder = await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId));
      expect((rejected?.reason as CoreError).details).toEqual({ releaseId: holder?.id });
    });

    it('transitions by compare-and-set', async () => {
      const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.releases.insert(rel));
      expect(
        await inA((r) =>
          r.releases.transition(rel.id, 'queued', { status: 'building', updatedAt: at(1) }),
        ),
      ).toBe(true);
      expect(
        await inA((r) =>
          r.releases.transition(rel.id, 'queued', { status: 'building', updatedAt: at(2) }),
        ),
      ).toBe(false);
      expect(
        await inA((r) =>
          r.releases.transition(rel.id, 'building', {
            status: 'artifact_ready',
            imageDigest: 'sha256:abc',
            updatedAt: at(3),
          }),
        ),
      ).toBe(true);
      expect(await inA((r) => r.releases.get(rel.id))).toEqual({
        ...rel,
        status: 'artifact_ready',
        imageDigest: 'sha256:abc',
        updatedAt: at(3),
      });
      expect(
        await inA((r) => r.releases.transition('rel_missing', 'queued', { status: 'building' })),
      ).toBe(false);
      expect(
        await store.withOrg(b.orgId, (r) =>
          r.releases.transition(rel.id, 'artifact_ready', { status: 'failed' }),
        ),
      ).toBe(false);
    });

    it('lets only one of two concurrent transitions from the same status win', async () => {
      const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.releases.insert(rel));
      const results = await Promise.all([
        inA((r) => r.releases.transition(rel.id, 'queued', { status: 'building' })),
        inA((r) => r.releases.transition(rel.id, 'queued', { status: 'failed' })),
      ]);
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('refuses a transition back into flight while another release holds the service environment', async () => {
      const old = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'failed' });
      const current = aRelease(a.orgId, a.serviceId, a.environmentId);
      await inA(async (r) => {
        await r.releases.insert(old);
        await r.releases.insert(current);
      });
      const e = await rejectsWith(
        inA((r) => r.releases.transition(old.id, 'failed', { status: 'queued' })),
        'release_in_flight',
      );
      expect(e.details).toEqual({ releaseId: current.id });
    });

    it('updates fields but never the status, and refuses unknown releases', async () => {
      const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.releases.insert(rel));
      await inA((r) =>
        r.releases.update(rel.id, {
          containerId: 'c1',
          upstream: '127.0.0.1:32768',
          status: 'completed',
        } as Partial<Release>),
      );
      expect(await inA((r) => r.releases.get(rel.id))).toEqual({
        ...rel,
        containerId: 'c1',
        upstream: '127.0.0.1:32768',
      });
      await rejectsWith(
        inA((r) => r.releases.update('rel_missing', { error: 'x' })),
        'release_not_found',
      );
      await rejectsWith(
        store.withOrg(b.orgId, (r) => r.releases.update(rel.id, { error: 'x' })),
        'release_not_found',
      );
    });

    it('finds the newest release with given statuses and filters lists', async () => {
      const r1 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'completed' });
      const r2 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'rolled_back' });
      const r3 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'completed' });
      const s2 = aService(a.orgId, a.projectId);
      const other = aRelease(a.orgId, s2.id, a.environmentId, { status: 'completed' });
      await inA(async (r) => {
        for (const x of [r1, r2, r3]) await r.releases.insert(x);
        await r.services.insert(s2);
        await r.releases.insert(other);
      });
      expect(
        (await inA((r) => r.releases.latest(a.serviceId, a.environmentId, ['completed'])))?.id,
      ).toBe(r3.id);
      expect(
        (
          await inA((r) =>
            r.releases.latest(a.serviceId, a.environmentId, ['rolled_back', 'failed']),
          )
        )?.id,
      ).toBe(r2.id);
      expect(
        await inA((r) => r.releases.latest(a.serviceId, a.environmentId, ['queued'])),
      ).toBeNull();
      expect(await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId))).toBeNull();
      // The same question for every service environment at once, the org's only (other
      // tests of this file leave releases of their own in both orgs).
      const each = await inA((r) => r.releases.latestOfEach(['completed']));
      const ofPair = (xs: Release[], serviceId: string) =>
        xs.filter((x) => x.serviceId === serviceId && x.environmentId === a.environmentId);
      expect(ofPair(each, a.serviceId)).toEqual([await inA((r) => r.releases.get(r3.id))]);
      expect(ofPair(each, s2.id).map((x) => x.id)).toEqual([other.id]);
      expect(each.every((x) => x.orgId === a.orgId && x.status === 'completed')).toBe(true);
      expect(
        ofPair(await inA((r) => r.releases.latestOfEach(['rolled_back', 'failed'])), a.serviceId),
      ).toMatchObject([{ id: r2.id }]);
      expect(ofPair(await inA((r) => r.releases.latestOfEach(['queued'])), a.serviceId)).toEqual(
        [],
      );
      const inB = await store.withOrg(b.orgId, (r) => r.releases.latestOfEach(['completed']));
      expect(inB.every((x) => x.orgId === b.orgId)).toBe(true);
      const bySvc = await inA((r) => r.releases.list({ limit: 10 }, { serviceId: a.serviceId }));
      expect(bySvc.items.map((x) => x.id)).toEqual([r1.id, r2.id, r3.id]);
      const byProject = await inA((r) =>
        r.releases.list({ limit: 10 }, { projectId: a.projectId, environmentId: a.environmentId }),
      );
      expect(byProject.items.map((x) => x.id)).toEqual([r1.id, r2.id, r3.id, other.id]);
      expect(
        (await inA((r) => r.releases.list({ limit: 10 }, { projectId: b.projectId }))).items,
      ).toEqual([]);
    });

    it('refuses a release for an unknown service, environment, node or previous release', async () => {
      await rejectsWith(
        inA((r) => r.releases.insert(aRelease(a.orgId, 'svc_missing', a.environmentId))),
        'service_not_found',
      );
      await rejectsWith(
        inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, b.environmentId))),
        'environment_not_found',
      );
      await rejectsWith(
        inA((r) =>
          r.releases.insert(
            aRelease(a.orgId, a.serviceId, a.environmentId, { nodeId: 'nod_missing' }),
          ),
        ),
        'node_not_found',
      );
      await rejectsWith(
        inA((r) =>
          r.releases.insert(
            aRelease(a.orgId, a.serviceId, a.environmentId, { previousReleaseId: 'rel_missing' }),
          ),
        ),
        'release_not_found',
      );
    });
  });

  describe('release steps and logs', () => {
    let rel: Release;
    beforeEach(async () => {
      rel = aRelease(a.orgId, a.serviceId, a.environmentId);
      await inA((r) => r.releases.insert(rel));
    });

    it('upserts steps by name and lists them in start order', async () => {
      const build = aStep(a.orgId, rel.id, { name: 'build', startedAt: at(1) });
      const migrate = aStep(a.orgId, rel.id, { name: 'migrate', startedAt: at(2) });
      await inA(async (r) => {
        await r.releaseSteps.upsert(migrate);
        await r.releaseSteps.upsert(build);
      });
      const done = { ...build, status: 'succeeded' as const, attempt: 2, finishedAt: at(5) };
      await inA((r) => r.releaseSteps.upsert(done));
      expect(await inA((r) => r.releaseSteps.list(rel.id))).toEqual([done, migrate]);
      expect(await store.withOrg(b.orgId, (r) => r.releaseSteps.list(rel.id))).toEqual([]);
      await rejectsWith(
        inA((r) => r.releaseSteps.upsert(aStep(a.orgId, 'rel_missing'))),
        'release_not_found',
      );
    });

    it('numbers log lines from 1 and pages through them', async () => {
      const line = (n: number) => ({ at: at(n), stream: 'stdout' as const, line: `line ${n}` });
      await inA((r) => r.releaseLogs.append(rel.id, [line(1), line(2)]));
      await inA((r) => r.releaseLogs.append(rel.id, []));
      await inA((r) =>
        r.releaseLogs.append(rel.id, [{ at: at(3), stream: 'system', line: 'migrated ✓' }]),
      );
      const all = await inA((r) => r.releaseLogs.list(rel.id));
      expect(all).toEqual([
        { releaseId: rel.id, seq: 1, ...line(1) },
        { releaseId: rel.id, seq: 2, ...line(2) },
        { releaseId: rel.id, seq: 3, at: at(3), stream: 'system', line: 'migrated ✓' },
      ]);
      expect((await inA((r) => r.releaseLogs.list(rel.id, 1, 1))).map((l) => l.seq)).toEqual([2]);
      expect(await inA((r) => r.releaseLogs.list(rel.id, 3))).toEqual([]);
      expect(await store.withOrg(b.orgId, (r) => r.releaseLogs.list(rel.id))).toEqual([]);
    });

    it('gives concurrent appenders distinct, gapless numbers', async () => {
      const writers = Array.from({ length: 6 }, (_, w) =>
        inA((r) =>
          r.releaseLogs.append(
            rel.id,
            [0, 1, 2].map((i) => ({ at: at(i), stream: 'stdout' as const, line: `w${w}-${i}` })),
          ),
        ),
      );
      await Promise.all(writers);
      const lines = await inA((r) => r.releaseLogs.list(rel.id));
      expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
      // Each append's lines stay together and in order.
      for (let w = 0; w < 6; w++) {
        const seqs = lines.filter((l) => l.line.startsWith(`w${w}-`)).map((l) => l.seq);
        expect(seqs[2]! - seqs[0]!).toBe(2);
      }
    });

    it('refuses lines for an unknown release or one of another org', async () => {
      const line = [{ at: at(), stream: 'stderr' as const, line: 'x' }];
      await rejectsWith(
        inA((r) => r.releaseLogs.append('rel_missing', line)),
        'release_not_found',
      );
      await rejectsWith(
        store.withOrg(b.orgId, (r) => r.releaseLogs.append(rel.id, line)),
        'release_not_found',
      );
    });
  });
}
