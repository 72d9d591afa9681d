import type { UpstreamRegistry } from '../../core/ports.ts';

/** Upstreams in a Map: for tests, and for a control plane that runs in one process. */
export class MemoryUpstreamRegistry implements UpstreamRegistry {
  private readonly routes = new Map<string, string[]>();

  async set(label: string, upstreams: string[]): Promise<void> {
    this.routes.set(label, [...upstreams]);
  }

  async get(label: string): Promise<string[] | null> {
    const u = this.routes.get(label);
    return u ? [...u] : null;
  }

  async remove(label: string): Promise<void> {
    this.routes.delete(label);
  }
}
