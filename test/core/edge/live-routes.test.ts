import { describe, expect, it } from 'vitest';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { MemoryRouteCatalog } from '../../../adapters/edge/route-catalog-memory.ts';
import { desiredRoutes, rebuildEdgeRoutes } from '../../../core/edge/live-routes.ts';
import type { LiveRoute, RouteCatalog } from '../../../core/ports.ts';
import { edgeRebuildJob, scheduledJobs, type WorkerSystem } from '../../../core/queues.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';

const live = (o: Partial<LiveRoute> = {}): LiveRoute => ({
  serviceId: 'svc_0000000abc123',
  serviceName: 'web',
  environmentId: 'env_1',
  environmentName: 'production',
  sticky: false,
  drainSeconds: 30,
  loadBalancing: null,
  upstreams: ['10.0.0.5:30001'],
  customHosts: [],
  ...o,
});

const catalogOf = (routes: LiveRoute[]): RouteCatalog => ({ liveRoutes: async () => routes });

describe('desiredRoutes', () => {
  it('plans each live service environment: default host, then its custom hosts', () => {
    expect(
      desiredRoutes(
        [
          live({
            customHosts: ['shop.example.com', 'www.example.com'],
            sticky: true,
            drainSeconds: 600,
          }),
          live({
            environmentId: 'env_2',
            environmentName: 'staging',
            upstreams: ['10.0.0.6:30002', '10.0.0.7:30003'],
            loadBalancing: 'least_conn',
          }),
        ],
        'apps.example.test',
      ),
    ).toStrictEqual([
      {
        id: 'sdo-svc_0000000abc123-env_1',
        hosts: ['web-production-abc123.apps.example.test', 'shop.example.com', 'www.example.com'],
        upstreams: ['10.0.0.5:30001'],
        sticky: true,
        drainSeconds: 600,
      },
      {
        id: 'sdo-svc_0000000abc123-env_2',
        hosts: ['web-staging-abc123.apps.example.test'],
        upstreams: ['10.0.0.6:30002', '10.0.0.7:30003'],
        sticky: false,
        drainSeconds: 30,
        loadBalancing: 'least_conn',
      },
    ]);
  });

  it('plans nothing when nothing is live', () => {
    expect(desiredRoutes([], 'apps.example.test')).toStrictEqual([]);
  });
});

describe('rebuildEdgeRoutes', () => {
  it('puts back missing routes and missing hosts, and leaves a switched upstream alone', async () => {
    const edge = new MemoryEdgeRouter();
    // A deploy switched this route after the database was read; a custom host is missing.
    await edge.put({
      id: 'sdo-svc_0000000abc123-env_1',
      hosts: ['web-production-abc123.apps.example.test'],
      upstreams: ['10.0.0.9:31000'],
      sticky: false,
      drainSeconds: 30,
    });
    const restored = await rebuildEdgeRoutes({
      catalog: catalogOf([
        live({ customHosts: ['shop.example.com'] }),
        live({ environmentId: 'env_2', environmentName: 'staging' }),
      ]),
      edge,
      edgeDomain: 'apps.example.test',
    });
    expect(restored).toStrictEqual({
      routes: ['sdo-svc_0000000abc123-env_2'],
      hosts: ['shop.example.com on sdo-svc_0000000abc123-env_1'],
    });
    expect(await edge.get('sdo-svc_0000000abc123-env_1')).toStrictEqual({
      id: 'sdo-svc_0000000abc123-env_1',
      hosts: ['web-production-abc123.apps.example.test', 'shop.example.com'],
      upstreams: ['10.0.0.9:31000'],
      sticky: false,
      drainSeconds: 30,
    });
    expect((await edge.get('sdo-svc_0000000abc123-env_2'))?.upstreams).toStrictEqual([
      '10.0.0.5:30001',
    ]);
    // All there now: nothing to put back, no change made.
    const changes = edge.changes.length;
    expect(
      await rebuildEdgeRoutes({
        catalog: catalogOf([
          live({ customHosts: ['shop.example.com'] }),
          live({ environmentId: 'env_2', environmentName: 'staging' }),
        ]),
        edge,
        edgeDomain: 'apps.example.test',
      }),
    ).toStrictEqual({ routes: [], hosts: [] });
    expect(edge.changes).toHaveLength(changes);
  });

  it('hands the planned routes to an edge that restores in one change', async () => {
    const seen: unknown[] = [];
    const edge = Object.assign(new MemoryEdgeRouter(), {
      restore: async (routes: unknown[]) => {
        seen.push(routes);
        return { routes: ['x'], hosts: [] };
      },
    });
    const catalog = new MemoryRouteCatalog();
    expect(
      await rebuildEdgeRoutes({ catalog, edge, edgeDomain: 'apps.example.test' }),
    ).toStrictEqual({
      routes: ['x'],
      hosts: [],
    });
    expect(seen).toStrictEqual([[]]);
  });
});

describe('the edge-rebuild job', () => {
  const systemOf = (edge: MemoryEdgeRouter, extra: Partial<WorkerSystem>) =>
    ({
      release: {
        edge,
        config: { edgeDomain: 'apps.example.test' },
        store: {},
        clock: new ManualClock(new Date('2026-01-01T00:00:00.000Z')),
      },
      logger: new MemoryLogger(),
      ...extra,
    }) as unknown as WorkerSystem;

  it('puts the control parts back before the routes, where the mode owns them', async () => {
    const edge = new MemoryEdgeRouter();
    const order: string[] = [];
    const job = scheduledJobs(
      systemOf(edge, {
        routeCatalog: {
          liveRoutes: async () => {
            order.push('routes');
            return [live()];
          },
        },
        edgeControl: async () => {
          order.push('control');
          return ['control route (any host) → api:3000'];
        },
      }),
    ).find((j) => j.name === edgeRebuildJob);
    await job?.run();
    expect(order).toStrictEqual(['control', 'routes']);
    expect(await edge.get('sdo-svc_0000000abc123-env_1')).not.toBeNull();
  });

  it('is not in the table without a route catalog', () => {
    const names = scheduledJobs(systemOf(new MemoryEdgeRouter(), {})).map((j) => j.name);
    expect(names).not.toContain(edgeRebuildJob);
  });
});
