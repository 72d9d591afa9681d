/**
 * The app's health apart from its last deploy, with the in-memory ports: the verdicts that
 * need no Docker (the real ones are in test/integration/service-health.test.ts), and the
 * cloud API's honest `unknown` (its Lambda reaches no Docker engine).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { NoEngineRuntime } from '../../../adapters/runtime/none.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import type { CoreDeps, OrgPrincipal } from '../../../core/deps.ts';
import type { ContainerRuntime } from '../../../core/ports.ts';
import { getServiceHealth } from '../../../core/services/health.ts';
import {
  aNode,
  aProject,
  aRelease,
  anAuditEvent,
  aService,
  anEnvironment,
  anOrg,
} from '../../contracts/store/builders.ts';

describe('service health', () => {
  const orgId = 'org_h';
  const viewer: OrgPrincipal = {
    actorType: 'user',
    actorId: 'usr_1',
    userId: 'usr_1',
    orgId,
    role: 'viewer',
  };
  let store: MemoryStore;
  let serviceId: string;
  let environmentId: string;
  const clock = new ManualClock(new Date('2027-01-15T13:00:00.000Z'));

  const depsWith = (runtime: ContainerRuntime) =>
    ({
      store,
      clock,
      config: { signupMode: 'open', edgeDomain: 'apps.example.test' },
      release: { runtime, probe: new MemoryHealthProbe(), vault: new MemoryKeyVault() },
    }) as unknown as CoreDeps & {
      release: { runtime: ContainerRuntime; probe: MemoryHealthProbe; vault: MemoryKeyVault };
    };

  beforeEach(async () => {
    store = new MemoryStore();
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      const p = aProject(orgId);
      await r.projects.insert(p);
      const env = anEnvironment(orgId, p.id);
      await r.environments.insert(env);
      environmentId = env.id;
      const svc = aService(orgId, p.id);
      await r.services.insert(svc);
      serviceId = svc.id;
      const node = aNode(orgId, { name: 'edge-1' });
      await r.nodes.insert(node);
      await r.releases.insert(
        aRelease(orgId, svc.id, env.id, {
          id: 'rel_0001',
          status: 'completed',
          nodeId: node.id,
          containerId: 'ctr_1',
          upstream: '127.0.0.1:1',
          finishedAt: '2027-01-15T12:00:00.000Z',
        }),
      );
    });
  });

  it('says unknown, and why, where this process reaches no Docker engine (the cloud API)', async () => {
    const h = await getServiceHealth(
      depsWith(new NoEngineRuntime()),
      viewer,
      serviceId,
      'production',
    );
    expect(h.app.status).toBe('unknown');
    expect(h.app.reason).toMatch(/^node edge-1 did not answer: .*does not reach Docker engines/);
    expect(h.lastDeploy).toMatchObject({ releaseId: 'rel_0001', status: 'completed' });
  });

  it('says down when the serving container is gone', async () => {
    const h = await getServiceHealth(
      depsWith(new MemoryRuntime()),
      viewer,
      serviceId,
      'production',
    );
    expect(h.app).toMatchObject({ status: 'down', reason: 'the serving container is gone' });
  });

  it("never checks where the engine claims the container is: a binding off the node's address is unknown", async () => {
    // The node's engine lies about where the serving container is bound (hole 2).
    const lying = {
      inspect: async () => ({
        id: 'ctr_1',
        name: 'sdo-web',
        state: 'running',
        labels: {},
        published: '169.254.169.254:80',
        ports: [{ containerPort: 8080, hostIp: '169.254.169.254', hostPort: '80' }],
      }),
    } as unknown as ContainerRuntime;
    const deps = depsWith(lying);
    const h = await getServiceHealth(deps, viewer, serviceId, 'production');
    expect(h.app.status).toBe('unknown');
    expect(h.app.reason).toContain("not on the node's address 127.0.0.1");
    expect(deps.release.probe.calls).toEqual([]);
  });

  it('lists the replicas reported crash-looping within the last 15 minutes, newest per replica', async () => {
    const report = (at: string, replica: string, restarts: number) =>
      anAuditEvent(orgId, {
        action: 'replica.crash_looping',
        actorType: 'system',
        actorId: 'usage-collector',
        targetType: 'service',
        targetId: serviceId,
        createdAt: at,
        data: {
          serviceId,
          environmentId,
          releaseId: 'rel_0001',
          replica,
          nodeId: 'nod_1',
          containerId: `ctr_${replica}`,
          restarts,
          restartsInWindow: 3,
          windowSeconds: 900,
          threshold: 3,
        },
      });
    await store.withOrg(orgId, async (r) => {
      // Older than the window: over.
      await r.audit.append(report('2027-01-15T12:40:00.000Z', '2', 3));
      await r.audit.append(report('2027-01-15T12:50:00.000Z', '1', 3));
      await r.audit.append(report('2027-01-15T12:55:00.000Z', '1', 9));
      // Another environment's replica is not this one's.
      await r.audit.append({
        ...report('2027-01-15T12:56:00.000Z', '0', 4),
        data: { ...report('', '0', 4).data, environmentId: 'env_other' },
      });
    });
    const h = await getServiceHealth(
      depsWith(new MemoryRuntime()),
      viewer,
      serviceId,
      'production',
    );
    expect(h.crashLoops).toEqual([
      {
        releaseId: 'rel_0001',
        replica: '1',
        nodeId: 'nod_1',
        restarts: 9,
        restartsInWindow: 3,
        threshold: 3,
        reportedAt: '2027-01-15T12:55:00.000Z',
      },
    ]);
  });
});
