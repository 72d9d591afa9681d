import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  nodeSeriesKeys,
  projectSeriesKeys,
  serviceSeriesKeys,
  type MetricsQuery,
  type Series,
  type SeriesScope,
} from '../../core/ports.ts';

/** One service environment's steady traffic and usage over the fixture's window. */
export interface ServiceLoad {
  orgId: string;
  projectId: string;
  serviceId: string;
  environmentId: string;
  host: string;
  requestsPerSecond: number;
  share4xx: number;
  share5xx: number;
  /** Every request takes this long (in one histogram bucket). */
  latencySeconds: number;
  cpuCores: number;
  memoryBytes: number;
  /** Proxied connections open at every sample (WebSockets). */
  connections: number;
  /** Restarts of its one replica in every 15 minutes, at an even pace. */
  restartsIn15m: number;
}

export interface NodeLoad {
  orgId: string;
  nodeId: string;
  cpu: number;
  memory: number;
  disk: number;
}

/** What a backend holds, measured every `intervalSeconds` from `from` to `to` (unix seconds). */
export interface MetricsFixture {
  from: number;
  to: number;
  intervalSeconds: number;
  services: ServiceLoad[];
  nodes: NodeLoad[];
}

export interface MetricsQueryFixture {
  /** A MetricsQuery over a backend that holds exactly the fixture's measurements. */
  make(fixture: MetricsFixture): Promise<{ query: MetricsQuery; close?: () => Promise<void> }>;
}

const now = Math.floor(Date.now() / 1000 / 60) * 60;
export const metricsFixture: MetricsFixture = {
  from: now - 40 * 60,
  to: now - 5 * 60,
  intervalSeconds: 15,
  services: [
    {
      orgId: 'org_a',
      projectId: 'prj_a',
      serviceId: 'svc_a',
      environmentId: 'env_a',
      host: 'web-production-aaaaaa.apps.example.com',
      requestsPerSecond: 10,
      share4xx: 0.2,
      share5xx: 0.1,
      latencySeconds: 0.2,
      cpuCores: 0.5,
      memoryBytes: 64 * 1024 * 1024,
      connections: 5,
      restartsIn15m: 3,
    },
    {
      orgId: 'org_b',
      projectId: 'prj_b',
      serviceId: 'svc_b',
      environmentId: 'env_b',
      host: 'api-production-bbbbbb.apps.example.com',
      requestsPerSecond: 2,
      share4xx: 0,
      share5xx: 0.5,
      latencySeconds: 2,
      cpuCores: 1.5,
      memoryBytes: 256 * 1024 * 1024,
      connections: 7,
      restartsIn15m: 0,
    },
    // A second service of org_a's project: the project's series add it to svc_a's.
    {
      orgId: 'org_a',
      projectId: 'prj_a',
      serviceId: 'svc_c',
      environmentId: 'env_c',
      host: 'worker-staging-cccccc.apps.example.com',
      requestsPerSecond: 4,
      share4xx: 0,
      share5xx: 0.25,
      latencySeconds: 0.2,
      cpuCores: 0.25,
      memoryBytes: 32 * 1024 * 1024,
      connections: 3,
      restartsIn15m: 6,
    },
  ],
  nodes: [{ orgId: 'org_a', nodeId: 'node_a', cpu: 0.25, memory: 0.5, disk: 0.9 }],
};

const byKey = (series: Series[]) => new Map(series.map((s) => [s.key, s.points]));
const mid = (points: [number, number][]) => points[Math.floor(points.length / 2)]?.[1];

/** The behaviour every MetricsQuery (Prometheus, CloudWatch, memory) shares. */
export function runMetricsQueryContract({ make }: MetricsQueryFixture): void {
  describe('MetricsQuery contract', () => {
    let query: MetricsQuery;
    let close: (() => Promise<void>) | undefined;
    const f = metricsFixture;
    const a = f.services[0]!;
    const b = f.services[1]!;
    const window = {
      start: new Date((f.from + 600) * 1000),
      end: new Date(f.to * 1000),
      stepSeconds: 60,
    };
    const serviceScope = (s: ServiceLoad): SeriesScope => ({
      kind: 'service',
      orgId: s.orgId,
      serviceId: s.serviceId,
      environmentId: s.environmentId,
      hosts: [s.host],
    });

    beforeAll(async () => {
      ({ query, close } = await make(f));
    }, 120_000);
    afterAll(async () => {
      await close?.();
    });

    it('answers every series asked for, in order, with points inside the window', async () => {
      const series = await query.series({
        scope: serviceScope(a),
        keys: serviceSeriesKeys,
        ...window,
      });
      expect(series.map((s) => s.key)).toEqual([...serviceSeriesKeys]);
      for (const s of series) {
        expect(s.points.length, s.key).toBeGreaterThan(10);
        for (const [t] of s.points) {
          expect(t).toBeGreaterThanOrEqual(window.start.getTime() / 1000 - 60);
          expect(t).toBeLessThanOrEqual(window.end.getTime() / 1000);
        }
        const times = s.points.map(([t]) => t);
        expect(times).toEqual([...times].sort((x, y) => x - y));
      }
    });

    it('measures request rates per second, 4xx and 5xx apart', async () => {
      const m = byKey(
        await query.series({ scope: serviceScope(a), keys: serviceSeriesKeys, ...window }),
      );
      expect(mid(m.get('requests')!)).toBeCloseTo(a.requestsPerSecond, 0);
      expect(mid(m.get('errors_4xx')!)).toBeCloseTo(a.requestsPerSecond * a.share4xx, 0);
      expect(mid(m.get('errors_5xx')!)).toBeCloseTo(a.requestsPerSecond * a.share5xx, 0);
    });

    it('puts p50 and p95 latency in the range the requests took', async () => {
      const m = byKey(
        await query.series({ scope: serviceScope(a), keys: serviceSeriesKeys, ...window }),
      );
      // Prometheus interpolates inside the histogram bucket (0.1, 0.25]; CloudWatch is exact.
      for (const key of ['latency_p50', 'latency_p95'] as const) {
        const v = mid(m.get(key)!)!;
        expect(v, key).toBeGreaterThan(0.1);
        expect(v, key).toBeLessThanOrEqual(0.25);
      }
      const slow = byKey(
        await query.series({ scope: serviceScope(b), keys: ['latency_p95'], ...window }),
      );
      expect(mid(slow.get('latency_p95')!)!).toBeGreaterThan(1);
    });

    it('reads CPU in cores and memory in bytes of the service environment', async () => {
      const m = byKey(
        await query.series({ scope: serviceScope(a), keys: ['cpu', 'memory'], ...window }),
      );
      expect(mid(m.get('cpu')!)).toBeCloseTo(a.cpuCores, 1);
      expect(mid(m.get('memory')!)).toBe(a.memoryBytes);
    });

    it("reads restarts as the busiest replica's within 15 minutes", async () => {
      const m = byKey(
        await query.series({ scope: serviceScope(a), keys: ['restarts'], ...window }),
      );
      expect(mid(m.get('restarts')!)).toBeCloseTo(a.restartsIn15m, 0);
    });

    it("never reads another org's series: the same service id under another org is empty", async () => {
      const m = byKey(
        await query.series({
          scope: { ...serviceScope(a), orgId: b.orgId },
          keys: ['cpu', 'memory'],
          ...window,
        }),
      );
      expect(m.get('cpu')).toEqual([]);
      expect(m.get('memory')).toEqual([]);
      const other = byKey(
        await query.series({ scope: serviceScope(b), keys: ['memory'], ...window }),
      );
      expect(mid(other.get('memory')!)).toBe(b.memoryBytes);
    });

    it('reads a node’s CPU, memory and disk as shares', async () => {
      const n = f.nodes[0]!;
      const m = byKey(
        await query.series({
          scope: { kind: 'node', orgId: n.orgId, nodeId: n.nodeId },
          keys: nodeSeriesKeys,
          ...window,
        }),
      );
      expect(mid(m.get('cpu')!)).toBeCloseTo(n.cpu, 2);
      expect(mid(m.get('memory')!)).toBeCloseTo(n.memory, 2);
      expect(mid(m.get('disk')!)).toBeCloseTo(n.disk, 2);
    });

    const projectScope = (orgId: string, projectId: string): SeriesScope => {
      const members = f.services.filter((s) => s.orgId === orgId && s.projectId === projectId);
      return {
        kind: 'project',
        orgId,
        projectId,
        members: members.map((s) => ({ serviceId: s.serviceId, environmentId: s.environmentId })),
        hosts: members.map((s) => s.host),
      };
    };

    it("adds up a project's service environments: rates, connections, CPU and memory", async () => {
      const members = f.services.filter((s) => s.projectId === 'prj_a');
      expect(members).toHaveLength(2);
      const sum = (v: (s: ServiceLoad) => number) => members.reduce((n, s) => n + v(s), 0);
      const series = await query.series({
        scope: projectScope('org_a', 'prj_a'),
        keys: projectSeriesKeys,
        ...window,
      });
      expect(series.map((s) => s.key)).toEqual([...projectSeriesKeys]);
      const m = byKey(series);
      for (const key of projectSeriesKeys) expect(m.get(key)!.length, key).toBeGreaterThan(10);
      expect(mid(m.get('requests')!)).toBeCloseTo(
        sum((s) => s.requestsPerSecond),
        0,
      );
      expect(mid(m.get('errors_5xx')!)).toBeCloseTo(
        sum((s) => s.requestsPerSecond * s.share5xx),
        0,
      );
      expect(mid(m.get('connections')!)).toBe(sum((s) => s.connections));
      expect(mid(m.get('cpu')!)).toBeCloseTo(
        sum((s) => s.cpuCores),
        1,
      );
      expect(mid(m.get('memory')!)).toBe(sum((s) => s.memoryBytes));
      // Both members answer within (0.1, 0.25]: so does the project, merged or slowest.
      const p95 = mid(m.get('latency_p95')!)!;
      expect(p95).toBeGreaterThan(0.1);
      expect(p95).toBeLessThanOrEqual(0.25);
    });

    it("never reads another org's services into a project, and a project without services is empty", async () => {
      const foreign = byKey(
        await query.series({
          scope: { ...projectScope('org_a', 'prj_a'), orgId: 'org_b' },
          keys: ['cpu', 'memory'],
          ...window,
        }),
      );
      expect(foreign.get('cpu')).toEqual([]);
      expect(foreign.get('memory')).toEqual([]);
      const own = byKey(
        await query.series({ scope: projectScope('org_b', 'prj_b'), keys: ['memory'], ...window }),
      );
      expect(mid(own.get('memory')!)).toBe(b.memoryBytes);
      const none = await query.series({
        scope: { kind: 'project', orgId: 'org_a', projectId: 'prj_x', members: [], hosts: [] },
        keys: projectSeriesKeys,
        ...window,
      });
      expect(none.map((s) => s.points)).toEqual(projectSeriesKeys.map(() => []));
    });

    it('answers empty series (not an error) for a service nobody measured, or a window with no data', async () => {
      const unknown = await query.series({
        scope: {
          kind: 'service',
          orgId: 'org_a',
          serviceId: 'svc_x',
          environmentId: 'env_x',
          hosts: ['nobody.example.com'],
        },
        keys: ['requests', 'cpu'],
        ...window,
      });
      expect(unknown.map((s) => s.points)).toEqual([[], []]);
      const past = await query.series({
        scope: serviceScope(a),
        keys: ['requests', 'memory'],
        start: new Date((f.from - 7200) * 1000),
        end: new Date((f.from - 3600) * 1000),
        stepSeconds: 60,
      });
      expect(past.map((s) => s.points)).toEqual([[], []]);
    });
  });
}

/** Each measurement time of the fixture. */
export function sampleTimes(f: MetricsFixture): number[] {
  const out: number[] = [];
  for (let t = f.from; t <= f.to; t += f.intervalSeconds) out.push(t);
  return out;
}
