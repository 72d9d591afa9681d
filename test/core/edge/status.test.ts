/**
 * The edge status use case with the in-memory ports: certificates with days left (the real
 * edge is in test/integration/edge-status.test.ts), an edge without certificate reads, and
 * domains not yet routed left out.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import type { OrgPrincipal } from '../../../core/deps.ts';
import { getEdgeStatus } from '../../../core/edge/use-cases.ts';
import type { EdgeCertificate } from '../../../core/ports.ts';
import {
  aDomain,
  aProject,
  aService,
  anEnvironment,
  anOrg,
} from '../../contracts/store/builders.ts';

describe('edge status', () => {
  const orgId = 'org_e';
  const member: OrgPrincipal = {
    actorType: 'user',
    actorId: 'usr_1',
    userId: 'usr_1',
    orgId,
    role: 'viewer',
  };
  let store: MemoryStore;
  const clock = new ManualClock('2027-01-15T12:00:00Z');

  beforeEach(async () => {
    store = new MemoryStore();
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      const p = aProject(orgId);
      await r.projects.insert(p);
      const env = anEnvironment(orgId, p.id);
      await r.environments.insert(env);
      const svc = aService(orgId, p.id);
      await r.services.insert(svc);
      for (const [hostname, status] of [
        ['a.customer.test', 'active'],
        ['b.customer.test', 'cert_pending'],
        ['c.customer.test', 'pending_dns'],
      ] as const)
        await r.domains.insert(aDomain(orgId, svc.id, env.id, { hostname, status }));
    });
  });

  it('reads each routed domain’s certificate with its days left, and leaves unrouted ones out', async () => {
    const edge = new MemoryEdgeRouter();
    const certs: Record<string, EdgeCertificate> = {
      'a.customer.test': {
        status: 'active',
        issuer: 'Test CA',
        notAfter: '2027-01-25T12:00:00.000Z',
        detail: null,
      },
      'b.customer.test': {
        status: 'missing',
        issuer: null,
        notAfter: null,
        detail: 'no certificate for b.customer.test',
      },
    };
    Object.assign(edge, { certificate: async (h: string) => certs[h]! });
    const s = await getEdgeStatus({ store, clock, release: { edge } }, member);
    expect(s.reachable).toBe(true);
    expect(s.routes).toEqual({ expected: 0, present: 0, missing: [] });
    expect(s.lastRebuild).toBeNull();
    expect(s.certificates.map((c) => [c.hostname, c.status, c.daysLeft, c.detail])).toEqual([
      ['a.customer.test', 'active', 10, null],
      ['b.customer.test', 'missing', null, 'no certificate for b.customer.test'],
    ]);
    await store.edgeRebuilds.record({
      at: '2027-01-15T11:59:00.000Z',
      restoredRoutes: 2,
      restoredHosts: 0,
    });
    expect((await getEdgeStatus({ store, clock, release: { edge } }, member)).lastRebuild).toEqual({
      at: '2027-01-15T11:59:00.000Z',
      restoredRoutes: 2,
      restoredHosts: 0,
    });
  });

  it('says unknown for certificates an edge cannot be asked for', async () => {
    const s = await getEdgeStatus(
      { store, clock, release: { edge: new MemoryEdgeRouter() } },
      member,
    );
    expect(s.certificates.map((c) => [c.status, c.detail])).toEqual([
      ['unknown', 'this edge cannot be asked for certificates'],
      ['unknown', 'this edge cannot be asked for certificates'],
    ]);
  });
});
