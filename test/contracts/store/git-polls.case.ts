/** Store contract: what polls of a followed branch saw, the commit they want, and which are due. */
import { describe, expect, it } from 'vitest';
import type { GitSource, Service } from '../../../core/models.ts';
import { aService, at } from './builders.ts';
import { store, a, b, inA } from './context.ts';

const git = (pollIntervalSeconds: number | null): GitSource => ({
  url: 'https://git.example.test/shop/web.git',
  ref: 'main',
  subdir: '',
  dockerfile: 'Dockerfile',
  buildArgs: {},
  pollIntervalSeconds,
});

async function aPolledService(interval: number | null, tenant: typeof a = a): Promise<Service> {
  const svc = aService(tenant.orgId, tenant.projectId, { git: git(interval) });
  await store.withOrg(tenant.orgId, (r) => r.services.insert(svc));
  return svc;
}

export function gitPollCases(): void {
  describe('git polls', () => {
    it('records each poll, keeping the head and release a failed poll did not replace', async () => {
      const svc = await aPolledService(60);
      expect(await inA((r) => r.gitPolls.get(svc.id))).toBeNull();
      await inA((r) =>
        r.gitPolls.record(svc.id, {
          polledAt: at(1),
          error: null,
          sha: 'a'.repeat(40),
          releaseId: 'rel_1',
        }),
      );
      await inA((r) => r.gitPolls.record(svc.id, { polledAt: at(61), error: 'unreachable' }));
      expect(await inA((r) => r.gitPolls.get(svc.id))).toEqual({
        serviceId: svc.id,
        polledAt: at(61),
        sha: 'a'.repeat(40),
        error: 'unreachable',
        releaseId: 'rel_1',
      });
      // Another org sees nothing of it.
      expect(await store.withOrg(b.orgId, (r) => r.gitPolls.get(svc.id))).toBeNull();
    });

    it('takes the wanted commit once; a put-back never replaces a newer one', async () => {
      const svc = await aPolledService(60);
      expect(await inA((r) => r.gitPolls.takeWanted(svc.id))).toBeNull();
      await inA((r) => r.gitPolls.want(svc.id, 'a'.repeat(40)));
      await inA((r) => r.gitPolls.want(svc.id, 'b'.repeat(40)));
      const taken = await Promise.all([
        inA((r) => r.gitPolls.takeWanted(svc.id)),
        inA((r) => r.gitPolls.takeWanted(svc.id)),
      ]);
      expect(taken.filter(Boolean)).toEqual(['b'.repeat(40)]);
      await inA((r) => r.gitPolls.want(svc.id, 'c'.repeat(40)));
      await inA((r) => r.gitPolls.putBackWanted(svc.id, 'b'.repeat(40)));
      expect(await inA((r) => r.gitPolls.takeWanted(svc.id))).toBe('c'.repeat(40));
      await inA((r) => r.gitPolls.putBackWanted(svc.id, 'b'.repeat(40)));
      expect(await inA((r) => r.gitPolls.takeWanted(svc.id))).toBe('b'.repeat(40));
      // Wanting keeps what the polls saw.
      expect(await inA((r) => r.gitPolls.get(svc.id))).toMatchObject({ polledAt: null });
    });

    it('lists as due, across orgs, services never polled or polled their interval ago, longest waiting first', async () => {
      const never = await aPolledService(60);
      const ofB = await aPolledService(300, b);
      const recent = await aPolledService(60);
      const old = await aPolledService(120);
      const off = await aPolledService(null);
      await inA((r) => r.gitPolls.record(recent.id, { polledAt: at(100), error: null }));
      await inA((r) => r.gitPolls.record(old.id, { polledAt: at(0), error: null }));
      const mine = new Set([never.id, ofB.id, recent.id, old.id, off.id]);
      const due = async (s: number) =>
        (await store.gitPollLookup!.duePolls(at(s), 1000)).filter((d) => mine.has(d.serviceId));
      expect(await due(119)).toEqual(
        expect.arrayContaining([
          { orgId: a.orgId, serviceId: never.id },
          { orgId: b.orgId, serviceId: ofB.id },
        ]),
      );
      expect(await due(119)).toHaveLength(2);
      const at160 = await due(160);
      expect(at160).toHaveLength(4);
      // Never polled first, then by the time of the last poll.
      expect(at160.slice(2)).toEqual([
        { orgId: a.orgId, serviceId: old.id },
        { orgId: a.orgId, serviceId: recent.id },
      ]);
    });

    it('goes with its service', async () => {
      const svc = await aPolledService(60);
      await inA((r) => r.gitPolls.record(svc.id, { polledAt: at(1), error: null }));
      await inA((r) => r.services.delete(svc.id));
      expect(await inA((r) => r.gitPolls.get(svc.id))).toBeNull();
    });
  });
}
