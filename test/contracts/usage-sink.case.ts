import { expect, it } from 'vitest';
import type { UsageSink, UsageSnapshot } from '../../core/ports.ts';

/** What a sink's backend would chart from what it was given, read back from its output. */
export interface UsageRead {
  /** Memory summed over a service environment's replicas, by `org/service/environment`. */
  serviceMemory: Record<string, number>;
  /** Restarts summed likewise. */
  serviceRestarts: Record<string, number>;
  /** Node ratios by `org/node`, only those measured. */
  nodes: Record<string, { cpu?: number; memory?: number; disk?: number }>;
  /** Failed backups or drills in a row by `org/data service`. */
  backups: Record<string, number>;
  /** Days left on each active domain's certificate at the snapshot's time, by `org/service/domain`. */
  certificateDaysLeft: Record<string, number>;
}

export const usageSnapshot: UsageSnapshot = {
  at: '2026-12-02T10:00:00.000Z',
  replicas: [
    {
      orgId: 'org_a',
      serviceId: 'svc_web',
      environmentId: 'env_prod',
      replica: '0',
      nodeId: 'node_1',
      cpuSeconds: 12.5,
      cpuCores: 0.25,
      memoryBytes: 1000,
      restarts: 0,
    },
    {
      orgId: 'org_a',
      serviceId: 'svc_web',
      environmentId: 'env_prod',
      replica: '1',
      nodeId: 'node_2',
      cpuSeconds: null,
      cpuCores: null,
      memoryBytes: null,
      restarts: 4,
    },
    {
      orgId: 'org_b',
      serviceId: 'svc_api',
      environmentId: 'env_prod',
      replica: '0',
      nodeId: 'node_3',
      cpuSeconds: 3,
      cpuCores: 0.5,
      memoryBytes: 2000,
      restarts: 1,
    },
  ],
  nodes: [
    { orgId: 'org_a', nodeId: 'node_1', cpuRatio: 0.5, memoryUsedRatio: 0.25, diskUsedRatio: 0.9 },
    { orgId: 'org_b', nodeId: 'node_3', cpuRatio: null, memoryUsedRatio: 0.5, diskUsedRatio: 0.1 },
  ],
  backups: [
    { orgId: 'org_a', dataServiceId: 'dsv_cache', failuresInARow: 0 },
    { orgId: 'org_b', dataServiceId: 'dsv_db', failuresInARow: 2 },
  ],
  certificates: [
    {
      orgId: 'org_a',
      serviceId: 'svc_web',
      environmentId: 'env_prod',
      hostname: 'shop.example.test',
      notAfter: '2026-12-11T22:00:00.000Z',
    },
    {
      orgId: 'org_b',
      serviceId: 'svc_api',
      environmentId: 'env_prod',
      hostname: 'api.example.test',
      notAfter: '2027-01-01T10:00:00.000Z',
    },
  ],
};

/**
 * Every UsageSink: what it was given comes out per service environment and per node, a
 * figure not measured never comes out as 0, and each org's figures stay under its own id.
 */
export function runUsageSinkContract(make: () => { sink: UsageSink; read(): UsageRead }) {
  it('exports each service environment’s memory and restarts over its replicas', async () => {
    const { sink, read } = make();
    await sink.publish(usageSnapshot);
    const r = read();
    expect(r.serviceMemory).toEqual({
      'org_a/svc_web/env_prod': 1000,
      'org_b/svc_api/env_prod': 2000,
    });
    expect(r.serviceRestarts).toEqual({
      'org_a/svc_web/env_prod': 4,
      'org_b/svc_api/env_prod': 1,
    });
  });

  it('exports each node’s measured ratios and leaves out the unmeasured', async () => {
    const { sink, read } = make();
    await sink.publish(usageSnapshot);
    expect(read().nodes).toEqual({
      'org_a/node_1': { cpu: 0.5, memory: 0.25, disk: 0.9 },
      'org_b/node_3': { memory: 0.5, disk: 0.1 },
    });
  });

  it('exports each data service’s failed backups or drills in a row, 0 included', async () => {
    const { sink, read } = make();
    await sink.publish(usageSnapshot);
    expect(read().backups).toEqual({ 'org_a/dsv_cache': 0, 'org_b/dsv_db': 2 });
  });

  it('exports each active domain’s certificate expiry, under its own org and service', async () => {
    const { sink, read } = make();
    await sink.publish(usageSnapshot);
    expect(read().certificateDaysLeft).toEqual({
      'org_a/svc_web/shop.example.test': 9.5,
      'org_b/svc_api/api.example.test': 30,
    });
  });

  it('exports nothing of a replica that is gone in the next snapshot', async () => {
    const { sink, read } = make();
    await sink.publish(usageSnapshot);
    await sink.publish({
      ...usageSnapshot,
      at: '2026-12-02T10:00:15.000Z',
      replicas: usageSnapshot.replicas.filter((r) => r.orgId === 'org_b'),
      nodes: [],
    });
    expect(read().serviceMemory['org_b/svc_api/env_prod']).toBe(2000);
  });
}
