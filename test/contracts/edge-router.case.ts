import { describe, expect, it } from 'vitest';
import { isCoreError } from '../../core/errors.ts';
import type { EdgeRouter, RouteSpec } from '../../core/ports.ts';

/** A route with sensible defaults; each test overrides what it is about. */
export const aRouteSpec = (over: Partial<RouteSpec> = {}): RouteSpec => ({
  id: 'svc_web_production',
  hosts: ['web.apps.example.test'],
  upstreams: ['127.0.0.1:30001'],
  sticky: false,
  drainSeconds: 30,
  ...over,
});

const byId = (routes: RouteSpec[]) => [...routes].sort((a, b) => a.id.localeCompare(b.id));

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

export interface EdgeRouterContract {
  /** A router over an empty edge (no routes), fresh for each test. */
  make: () => Promise<EdgeRouter>;
  /** A router whose edge cannot be reached. */
  makeUnreachable: () => EdgeRouter;
}

/** The behaviour every EdgeRouter shares, run against each implementation. */
export function runEdgeRouterContract({ make, makeUnreachable }: EdgeRouterContract): void {
  describe('EdgeRouter contract', () => {
    it('counts no request in flight to an upstream it never sent one (inFlight, when offered)', async () => {
      const edge = await make();
      if (!edge.inFlight) return;
      await edge.put(aRouteSpec({ upstreams: ['127.0.0.1:30001', '127.0.0.1:30002'] }));
      expect(await edge.inFlight(['127.0.0.1:30001', '127.0.0.1:30002'])).toStrictEqual({
        '127.0.0.1:30001': 0,
        '127.0.0.1:30002': 0,
      });
      expect(await edge.inFlight([])).toStrictEqual({});
    });

    it('answers ping', async () => {
      await expect((await make()).ping()).resolves.toBeUndefined();
    });

    it('returns what was put', async () => {
      const edge = await make();
      const route = aRouteSpec({
        sticky: true,
        upstreams: ['127.0.0.1:30001', '127.0.0.1:30002'],
        hosts: ['a.example.test', 'b.example.test'],
      });
      await edge.put(route);
      expect(await edge.get(route.id)).toStrictEqual(route);
    });

    it('is null for a route never put', async () => {
      expect(await (await make()).get('svc_missing')).toBeNull();
    });

    it('replaces a route put twice with the same id instead of adding a second', async () => {
      const edge = await make();
      await edge.put(aRouteSpec());
      const moved = aRouteSpec({ upstreams: ['127.0.0.1:30009'], drainSeconds: 5 });
      await edge.put(moved);
      expect(await edge.get(moved.id)).toStrictEqual(moved);
      expect(await edge.list()).toStrictEqual([moved]);
    });

    it('keeps two routes apart: replacing one leaves the other identical', async () => {
      const edge = await make();
      const x = aRouteSpec({ id: 'route_x', hosts: ['x.example.test'] });
      const y = aRouteSpec({ id: 'route_y', hosts: ['y.example.test'], sticky: true });
      await edge.put(x);
      await edge.put(y);
      await edge.put({ ...x, upstreams: ['127.0.0.1:30005'] });
      expect(await edge.get('route_y')).toStrictEqual(y);
      expect(byId(await edge.list())).toStrictEqual([{ ...x, upstreams: ['127.0.0.1:30005'] }, y]);
    });

    it('forgets a removed route and leaves the others', async () => {
      const edge = await make();
      await edge.put(aRouteSpec({ id: 'route_x' }));
      await edge.put(aRouteSpec({ id: 'route_y', hosts: ['y.example.test'] }));
      await edge.remove('route_x');
      expect(await edge.get('route_x')).toBeNull();
      expect((await edge.list()).map((r) => r.id)).toStrictEqual(['route_y']);
    });

    it('removes a missing route without complaint', async () => {
      await expect((await make()).remove('svc_never_there')).resolves.toBeUndefined();
    });

    it('lists nothing on an empty edge', async () => {
      expect(await (await make()).list()).toStrictEqual([]);
    });

    it('does not let a caller change a stored route through its own object', async () => {
      const edge = await make();
      const route = aRouteSpec();
      await edge.put(route);
      route.upstreams.push('127.0.0.1:30099');
      expect((await edge.get(route.id))?.upstreams).toStrictEqual(['127.0.0.1:30001']);
    });

    it('rejects an invalid route, naming the field, and changes nothing', async () => {
      const edge = await make();
      await edge.put(aRouteSpec());
      const error = await caught(edge.put(aRouteSpec({ upstreams: ['not-a-host-port'] })));
      expect(isCoreError(error) && error.kind === 'invalid' && error.details).toStrictEqual({
        field: 'upstreams',
      });
      expect(await edge.list()).toStrictEqual([aRouteSpec()]);
    });

    it('puts many routes at once, replacing existing ids', async () => {
      const edge = await make();
      expect(edge.putMany).toBeTypeOf('function');
      await edge.put(aRouteSpec({ id: 'route_0', hosts: ['h0.example.test'] }));
      const many = Array.from({ length: 25 }, (_, i) =>
        aRouteSpec({
          id: `route_${i}`,
          hosts: [`h${i}.example.test`],
          upstreams: [`127.0.0.1:${31000 + i}`],
        }),
      );
      await edge.putMany?.(many);
      expect(byId(await edge.list())).toStrictEqual(byId(many));
    });

    it('refuses a batch naming one id twice and changes nothing', async () => {
      const edge = await make();
      const error = await caught(
        edge.putMany?.([aRouteSpec(), aRouteSpec({ upstreams: ['127.0.0.1:1'] })]) ??
          Promise.resolve(),
      );
      expect(isCoreError(error) && error.kind).toBe('invalid');
      expect(await edge.list()).toStrictEqual([]);
    });

    it.each(['ping', 'put', 'get', 'remove', 'list'] as const)(
      'reports an unreachable edge as Unavailable (%s)',
      async (method) => {
        const edge = makeUnreachable();
        const calls = {
          ping: () => edge.ping(),
          put: () => edge.put(aRouteSpec()),
          get: () => edge.get('svc_web_production'),
          remove: () => edge.remove('svc_web_production'),
          list: () => edge.list(),
        };
        const error = await caught(calls[method]());
        expect(isCoreError(error) && error.kind).toBe('unavailable');
      },
    );
  });
}
