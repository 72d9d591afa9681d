/**
 * A leaving replica is stopped only once the edge finished the requests it had sent it
 * (core/releases/edge-drain.ts): the pure decision by equality, the wait on a manual clock
 * against the in-memory edge, and the reshape and retire paths that use it.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { awaitEdgeDrained, decideDrain, describeDrain } from '../../../core/releases/edge-drain.ts';
import { replicaContainerName } from '../../../core/releases/plan.ts';
import { retireRelease } from '../../../core/releases/retire.ts';
import { scaleService } from '../../../core/services/scale.ts';
import { aNode } from './builders.ts';
import { deployer, orgId, setup, type Harness } from './harness.ts';

describe('decideDrain', () => {
  it('stops after two idle reads in a row, not one', () => {
    expect(decideDrain({ counts: { a: 0 }, zeroReads: 0, elapsedMs: 0, boundMs: 5000 })).toEqual({
      action: 'wait',
      zeroReads: 1,
    });
    expect(decideDrain({ counts: { a: 0 }, zeroReads: 1, elapsedMs: 20, boundMs: 5000 })).toEqual({
      action: 'stop',
    });
  });

  it('starts counting idle reads again when a request shows up', () => {
    expect(
      decideDrain({ counts: { a: 0, b: 2 }, zeroReads: 1, elapsedMs: 100, boundMs: 5000 }),
    ).toEqual({ action: 'wait', zeroReads: 0 });
  });

  it('gives up at the bound naming what is still in flight, but stops on an idle read there', () => {
    expect(
      decideDrain({ counts: { a: 0, b: 3 }, zeroReads: 0, elapsedMs: 5000, boundMs: 5000 }),
    ).toEqual({ action: 'give_up', busy: { b: 3 } });
    expect(decideDrain({ counts: { a: 0 }, zeroReads: 0, elapsedMs: 5000, boundMs: 5000 })).toEqual(
      { action: 'stop' },
    );
  });

  it('with drainSeconds 0 stops at once, busy or not', () => {
    expect(decideDrain({ counts: { a: 1 }, zeroReads: 0, elapsedMs: 0, boundMs: 0 })).toEqual({
      action: 'give_up',
      busy: { a: 1 },
    });
  });
});

describe('awaitEdgeDrained', () => {
  const make = () => ({ edge: new MemoryEdgeRouter(), clock: new ManualClock() });

  it('waits while the edge reports requests in flight, then resolves drained', async () => {
    const deps = make();
    deps.edge.setInFlight('10.0.0.1:8080', [3, 1, 0]);
    const d = await awaitEdgeDrained(deps, ['10.0.0.1:8080', '10.0.0.2:8080'], 30);
    expect(d).toEqual({ drained: true, waitedMs: 220, busy: {} });
    expect(deps.edge.inFlightReads).toBe(4);
    expect(describeDrain(d, 30)).toBe('edge finished its requests in 220 ms');
  });

  it('stops waiting at drainSeconds and says what was still in flight', async () => {
    const deps = make();
    deps.edge.setInFlight('10.0.0.1:8080', 2);
    const d = await awaitEdgeDrained(deps, ['10.0.0.1:8080'], 1);
    expect(d).toEqual({ drained: false, waitedMs: 1000, busy: { '10.0.0.1:8080': 2 } });
    expect(describeDrain(d, 1)).toBe(
      'edge still had requests in flight after the 1 s drain (2 at 10.0.0.1:8080)',
    );
  });

  it('does not wait when the edge cannot count: the stop grace is all there is', async () => {
    const deps = make();
    deps.edge.setUnreachable(true);
    const d = await awaitEdgeDrained(deps, ['10.0.0.1:8080'], 30);
    expect(d.drained).toBe(false);
    expect(d.waitedMs).toBe(0);
    expect(describeDrain(d, 30)).toMatch(/^edge in-flight count unknown \(.*unreachable\)$/);
    const { inFlight: _none, ...withoutCount } = deps.edge;
    void _none;
    expect(
      await awaitEdgeDrained(
        { edge: { ...withoutCount, ping: async () => undefined } as never, clock: deps.clock },
        ['10.0.0.1:8080'],
        30,
      ),
    ).toMatchObject({ drained: false, unknown: 'the edge does not count requests' });
    expect(await awaitEdgeDrained(make(), [], 30)).toEqual({
      drained: true,
      waitedMs: 0,
      busy: {},
    });
  });
});

const logsOf = (h: Harness, releaseId: string) =>
  h.repos(async (r) => (await r.releaseLogs.list(releaseId, 0, 1000)).map((l) => l.line));

describe('leaving replicas are stopped only once the edge drained them', () => {
  it('scale down: the edge switches first, the leaving replica stops after its requests end', async () => {
    const h = await setup({ replicas: 2, drainSeconds: 30 });
    await h.repos((r) =>
      r.nodes.insert(
        aNode({
          id: 'node_000002',
          name: 'node-2',
          dockerHost: 'unix:///n2.sock',
          address: '127.0.0.2',
        }),
      ),
    );
    const v1 = await h.deploy('shop/web:1');
    const leaving = v1.replicaSet!.replicas[1]!;
    // Three reads with requests in flight, then none.
    h.edge.setInFlight(leaving.upstream!, [2, 2, 1, 0]);
    const at = h.clock.now().getTime();
    await scaleService(h.deps, deployer, h.service.id, { replicas: 1 }, null);
    await h.drain();
    const one = await h.release(v1.id);
    expect(one.replicaSet!.replicas.map((r) => r.index)).toEqual([0]);
    // The edge's last change dropped it before anything was asked or stopped.
    const lastPut = h.edge.changes.filter((c) => c.op === 'put').at(-1)!;
    expect(lastPut.op === 'put' && lastPut.route.upstreams).toEqual([
      v1.replicaSet!.replicas[0]!.upstream,
    ]);
    expect(h.edge.inFlightReads).toBe(5);
    expect(h.clock.now().getTime() - at).toBeGreaterThanOrEqual(320);
    expect(h.runtime.container('unix:///n2.sock', replicaContainerName(v1, 1))).toBeUndefined();
    const logs = await logsOf(h, v1.id);
    expect(logs).toContain('edge finished its requests in 320 ms');
    expect(logs.indexOf('edge finished its requests in 320 ms')).toBeLessThan(
      logs.findIndex((l) => l.startsWith('replica 1 (') && l.endsWith('drained and stopped')),
    );
  });

  it('retire: the replaced release waits for the edge before its containers stop', async () => {
    const h = await setup({ warmSeconds: 0, drainSeconds: 5 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    expect(v2.status).toBe('completed');
    h.edge.setInFlight(v1.upstream!, [1, 1, 0]);
    await h.retireDue();
    const stopped = await h.release(v1.id);
    expect(stopped.containerId).toBeNull();
    const logs = await logsOf(h, v1.id);
    expect(logs.at(-1)).toMatch(
      /stopped \(grace 5 s\) and removed: .* edge finished its requests in \d+ ms$/,
    );
    expect((await retireRelease(h.deps, { orgId, releaseId: v2.id })).skipped).toBe('serving');
  });
});
