import { describe, expect, it } from 'vitest';
import { MemoryEdgeRouter } from '../../adapters/edge/memory.ts';
import { aRouteSpec, runEdgeRouterContract } from '../contracts/edge-router.case.ts';

runEdgeRouterContract({
  make: async () => new MemoryEdgeRouter(),
  makeUnreachable: () => new MemoryEdgeRouter({ unreachable: true }),
});

describe('MemoryEdgeRouter', () => {
  it('records changes in order, and one load per change or batch', async () => {
    const edge = new MemoryEdgeRouter();
    await edge.put(aRouteSpec({ id: 'a' }));
    await edge.putMany([aRouteSpec({ id: 'b' }), aRouteSpec({ id: 'c' })]);
    await edge.remove('a');
    await edge.remove('a');
    expect(
      edge.changes.map((c) => (c.op === 'put' ? `put ${c.route.id}` : `remove ${c.id}`)),
    ).toStrictEqual(['put a', 'put b', 'put c', 'remove a']);
    expect(edge.loads).toBe(3);
  });

  it('fails the next call with the injected error, then works again', async () => {
    const edge = new MemoryEdgeRouter();
    const boom = new Error('caddy refused PATCH /id/a (500): boom');
    edge.failNext(boom);
    await expect(edge.put(aRouteSpec({ id: 'a' }))).rejects.toBe(boom);
    expect(await edge.list()).toStrictEqual([]);
    await edge.put(aRouteSpec({ id: 'a' }));
    expect(edge.changes).toHaveLength(1);
  });

  it('can become unreachable and come back', async () => {
    const edge = new MemoryEdgeRouter();
    edge.setUnreachable(true);
    await expect(edge.ping()).rejects.toMatchObject({
      kind: 'unavailable',
      code: 'edge_unavailable',
    });
    edge.setUnreachable(false);
    await expect(edge.ping()).resolves.toBeUndefined();
  });
});
