import type { UpstreamFeed, UpstreamRegistry } from '../../core/ports.ts';

/** Upstreams in a Map: for tests, and for a control plane that runs in one process. */
export class MemoryUpstreamRegistry implements UpstreamRegistry, UpstreamFeed {
  private readonly routes = new Map<string, string[]>();
  private readonly watchers = new Set<(label: string | null) => void>();

  async set(label: string, upstreams: string[]): Promise<void> {
    this.routes.set(label, [...upstreams]);
    this.changed(label);
  }

  async get(label: string): Promise<string[] | null> {
    const u = this.routes.get(label);
    return u ? [...u] : null;
  }

  async remove(label: string): Promise<void> {
    this.routes.delete(label);
    this.changed(label);
  }

  async all(): Promise<Map<string, string[]>> {
    return new Map([...this.routes].map(([label, u]) => [label, [...u]]));
  }

  async watch(onChange: (label: string | null) => void): Promise<{ close(): Promise<void> }> {
    this.watchers.add(onChange);
    // As PostgreSQL's does once subscribed: anything may have changed before.
    queueMicrotask(() => onChange(null));
    return { close: async () => void this.watchers.delete(onChange) };
  }

  /** After the write, as a NOTIFY is delivered after its commit. */
  private changed(label: string): void {
    for (const w of this.watchers) queueMicrotask(() => w(label));
  }
}
