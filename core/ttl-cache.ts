import type { Clock } from './ports.ts';

/**
 * A small in-memory map whose entries expire after `ttlMs`, bounded to `maxEntries`
 * (the oldest entry goes first). Held per process: another process's cache keeps an
 * entry until it expires, which bounds how stale it can be.
 */
export class TtlCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly clock: Clock;
  private changes = 0;
  private readonly loading = new Map<string, { generation: number; value?: Promise<V | null> }>();

  constructor(options: { ttlMs: number; maxEntries: number; clock: Clock }) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries;
    this.clock = options.clock;
  }

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.clock.now().getTime()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, expiresAt: this.clock.now().getTime() + this.ttlMs });
  }

  /**
   * Counts invalidations. Read it before loading a value and pass it to `setIfUnchanged`:
   * a load that raced an invalidation (it read the row before a revoke committed) must
   * not put the stale value back.
   */
  get generation(): number {
    return this.changes;
  }

  setIfUnchanged(key: string, value: V, generation: number): void {
    if (generation === this.changes) this.set(key, value);
  }

  /**
   * The entry, or else `load`'s value, remembered when `keep` says so. Misses of one key at
   * the same time share one load: when an entry expired under load, each request in flight
   * asked the database for it (50 connections: about one extra statement per 40 requests).
   * A caller arriving after an invalidation does not join a load begun before it, so it
   * never gets a value older than the invalidation; a failed load is not remembered.
   */
  getOrLoad(
    key: string,
    load: () => Promise<V | null>,
    keep: (value: V) => boolean = () => true,
  ): Promise<V | null> {
    const cached = this.get(key);
    if (cached !== undefined) return Promise.resolve(cached);
    const generation = this.changes;
    const pending = this.loading.get(key);
    if (pending?.value && pending.generation === generation) return pending.value;
    // In the map before load() runs, so a load that throws at once still removes itself.
    const entry: { generation: number; value?: Promise<V | null> } = { generation };
    this.loading.set(key, entry);
    entry.value = (async () => {
      try {
        const value = await load();
        if (value !== null && keep(value)) this.setIfUnchanged(key, value, generation);
        return value;
      } finally {
        if (this.loading.get(key) === entry) this.loading.delete(key);
      }
    })();
    return entry.value;
  }

  /** Drops every entry whose value matches, e.g. a revoked key by its id. */
  deleteWhere(match: (value: V) => boolean): void {
    this.changes++;
    for (const [k, e] of this.entries) if (match(e.value)) this.entries.delete(k);
  }

  /** Replaces an entry and voids loads of it already under way. */
  invalidate(key: string, value: V): void {
    this.changes++;
    this.set(key, value);
  }
}
