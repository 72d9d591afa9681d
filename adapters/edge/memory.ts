/**
 * In-memory EdgeRouter for fast tests of the deploy and domain engines. It validates routes
 * like the Caddy adapter, records every change in order, and can be told to fail.
 */
import { InvalidInput, Unavailable } from '../../core/errors.ts';
import type { EdgeRouter, RouteSpec } from '../../core/ports.ts';
import { assertRouteSpec } from '../../core/edge/caddy-route.ts';

export type EdgeChange = { op: 'put'; route: RouteSpec } | { op: 'remove'; id: string };

export class MemoryEdgeRouter implements EdgeRouter {
  /** Every change that took effect, oldest first; a putMany records one put per route. */
  readonly changes: EdgeChange[] = [];
  /** Configuration loads: one per put/remove that changed something, one per putMany. */
  loads = 0;
  /** How many times inFlight was read. */
  inFlightReads = 0;
  readonly #routes = new Map<string, RouteSpec>();
  readonly #inFlight = new Map<string, number[]>();
  readonly #failures: Error[] = [];
  #unreachable: boolean;

  constructor(options: { unreachable?: boolean } = {}) {
    this.#unreachable = options.unreachable ?? false;
  }

  /** The next call (any method) throws `error` instead of running; calls queue up. */
  failNext(error: Error): void {
    this.#failures.push(error);
  }

  /** While set, every call throws Unavailable, as the Caddy adapter does with no admin API. */
  setUnreachable(unreachable: boolean): void {
    this.#unreachable = unreachable;
  }

  async ping(): Promise<void> {
    this.#check();
  }

  async put(route: RouteSpec): Promise<void> {
    this.#check();
    assertRouteSpec(route);
    this.#store(route);
    this.loads += 1;
  }

  async putMany(routes: RouteSpec[]): Promise<void> {
    this.#check();
    for (const route of routes) assertRouteSpec(route);
    if (new Set(routes.map((r) => r.id)).size !== routes.length) {
      throw new InvalidInput('putMany was given the same route id twice', { field: 'id' });
    }
    if (routes.length === 0) return;
    for (const route of routes) this.#store(route);
    this.loads += 1;
  }

  async get(id: string): Promise<RouteSpec | null> {
    this.#check();
    const route = this.#routes.get(id);
    return route === undefined ? null : structuredClone(route);
  }

  async remove(id: string): Promise<void> {
    this.#check();
    if (!this.#routes.delete(id)) return;
    this.changes.push({ op: 'remove', id });
    this.loads += 1;
  }

  /** Requests in flight per upstream, as a test sets them (`setInFlight`); 0 when unset. */
  async inFlight(upstreams: readonly string[]): Promise<Record<string, number>> {
    this.#check();
    this.inFlightReads += 1;
    const out: Record<string, number> = {};
    for (const u of upstreams) {
      const next = this.#inFlight.get(u);
      // A list plays one count per read, the last one staying: a request that ends later.
      out[u] = Array.isArray(next) ? (next.length > 1 ? next.shift()! : (next[0] ?? 0)) : 0;
    }
    return out;
  }

  /** What inFlight answers for `upstream`: one count per read, the last repeated. */
  setInFlight(upstream: string, counts: number | number[]): void {
    this.#inFlight.set(upstream, Array.isArray(counts) ? [...counts] : [counts]);
  }

  async list(): Promise<RouteSpec[]> {
    this.#check();
    return [...this.#routes.values()].map((r) => structuredClone(r));
  }

  #store(route: RouteSpec): void {
    // Copies, so a caller mutating its spec afterwards does not change the "edge".
    const copy = structuredClone(route);
    this.#routes.set(route.id, copy);
    this.changes.push({ op: 'put', route: structuredClone(copy) });
  }

  #check(): void {
    const failure = this.#failures.shift();
    if (failure !== undefined) throw failure;
    if (this.#unreachable)
      throw new Unavailable('edge', 'the in-memory edge router is set unreachable');
  }
}
