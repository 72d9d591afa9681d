/**
 * Dynamic upstreams of the Caddy edge: a route's upstreams live in the UpstreamRegistry and
 * reach Caddy as DNS SRV answers of the control plane's DNS server (upstream-dns.ts), so a
 * switch writes the registry and never reloads Caddy. A switch counts only once that DNS
 * server answers it, asked the way Caddy asks.
 */
import { lookup, Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { Unavailable } from '../../core/errors.ts';
import { defaultUpstreamDnsCacheMs } from './upstream-dns.ts';
import type { RouteSpec, UpstreamRegistry } from '../../core/ports.ts';
import {
  hostOfTarget,
  srvNameOf,
  upstreamLabel,
  type DynamicUpstreamsPlan,
} from '../../core/edge/caddy-route.ts';

export type DynamicUpstreams = DynamicUpstreamsPlan & {
  registry: UpstreamRegistry;
  /** How long the DNS server Caddy asks reuses a registry answer (its `cacheMs`; 200 unless set). */
  dnsCacheMs?: number;
};

/** A registry write reaches every DNS server's answer within this long, or the switch fails. */
const dnsPropagationTimeoutMs = 5_000;

/** The host an SRV target names: `ip-10-0-0-5.<zone>` is 10.0.0.5, `<host>.<zone>` is host. */
function hostOfSrvTarget(target: string, zone: string): string {
  const name = target.toLowerCase().replace(/\.$/, '');
  const ip = hostOfTarget(name, zone);
  if (ip) return ip;
  const suffix = `.${zone.toLowerCase()}`;
  return name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
}

export class CaddyUpstreams {
  readonly plan: DynamicUpstreams;
  #dns: Resolver | undefined;
  /** Until then Caddy may still pick an upstream that the last publish dropped. */
  #quietAt = 0;

  constructor(plan: DynamicUpstreams) {
    this.plan = plan;
  }

  /**
   * Asks the DNS server the way Caddy will. Node's resolver takes IP addresses only, so a
   * server named by host (`worker:5354` on a Compose network) is looked up first.
   */
  async #dnsClient(): Promise<Resolver> {
    if (this.#dns) return this.#dns;
    const address = this.plan.resolver;
    const i = address.lastIndexOf(':');
    const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = address.slice(i + 1);
    const ip = isIP(host) ? host : (await lookup(host)).address;
    const resolver = new Resolver({ timeout: 1_000, tries: 1 });
    resolver.setServers([isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`]);
    this.#dns = resolver;
    return resolver;
  }

  /**
   * Publishes a route's upstreams and waits until the DNS server answers them, as Caddy
   * will ask it; then Caddy's own cached answer is at most one refresh old.
   */
  async #publish(spec: RouteSpec): Promise<void> {
    const label = upstreamLabel(spec.id);
    await this.plan.registry.set(label, spec.upstreams);
    const want = [...spec.upstreams].sort();
    const deadline = Date.now() + dnsPropagationTimeoutMs;
    let seen: string;
    for (;;) {
      try {
        const name = srvNameOf(label, this.plan.zone);
        const records = await (await this.#dnsClient()).resolveSrv(name);
        const got = records
          .map((r) => `${hostOfSrvTarget(r.name, this.plan.zone)}:${r.port}`)
          .sort();
        if (isDeepStrictEqual(got, want)) return;
        seen = got.join(', ') || 'no upstreams';
      } catch (e) {
        seen = e instanceof Error ? e.message : String(e);
      }
      if (Date.now() > deadline) {
        throw new Unavailable(
          'edge dns',
          `${this.plan.resolver} still answers ${seen} for route ${spec.id} after ${dnsPropagationTimeoutMs} ms`,
        );
      }
      await sleep(50);
    }
  }

  /**
   * Publishes the routes' upstreams; when one cannot be confirmed, every route touched gets
   * its previous upstreams back, so a failed switch does not leave traffic half moved.
   */
  async publishOrRestore(routes: readonly RouteSpec[]): Promise<void> {
    const registry = this.plan.registry;
    const previous = await Promise.all(routes.map((r) => registry.get(upstreamLabel(r.id))));
    try {
      for (const route of routes) await this.#publish(route);
      // Caddy's cached answer is at most one refresh old, and the answer it gets may come
      // from the DNS server's cache (this process's check saw the new one, but another
      // server process may not have yet): past both, no request picks a dropped upstream.
      const cacheMs = this.plan.dnsCacheMs ?? defaultUpstreamDnsCacheMs;
      this.#quietAt = Math.max(this.#quietAt, Date.now() + this.plan.refreshMs + cacheMs + 50);
    } catch (e) {
      await Promise.all(
        routes.map((r, i) => {
          const label = upstreamLabel(r.id);
          const before = previous[i];
          return (before ? registry.set(label, before) : registry.remove(label)).catch(
            () => undefined,
          );
        }),
      );
      throw e;
    }
  }

  /**
   * Resolves once no request can still pick an upstream an earlier publish of this process
   * dropped (a refresh and the DNS cache after it), so Caddy's in-flight counts are final.
   */
  async quiet(): Promise<void> {
    const wait = this.#quietAt - Date.now();
    if (wait > 0) await sleep(wait);
  }

  /** Caddy's cached answer (kept across reloads) is at most one refresh old after this. */
  async settle(): Promise<void> {
    await sleep(this.plan.refreshMs + 50);
  }

  /** The registry's upstreams of route `id` ([] when it has none). */
  async of(id: string): Promise<string[]> {
    return (await this.plan.registry.get(upstreamLabel(id))) ?? [];
  }

  /** A route read from Caddy names no upstreams: they are in the registry. */
  async withUpstreams(spec: RouteSpec): Promise<RouteSpec> {
    if (spec.upstreams.length > 0) return spec;
    return { ...spec, upstreams: await this.of(spec.id) };
  }

  /**
   * Restores the upstreams of a route rebuilt from the database, only where the registry
   * has none: a registry entry is newer than any database read (a deploy writes it first).
   */
  async fillMissing(routes: readonly RouteSpec[]): Promise<void> {
    for (const route of routes) {
      const label = upstreamLabel(route.id);
      if ((await this.plan.registry.get(label)) === null)
        await this.plan.registry.set(label, route.upstreams);
    }
  }

  async remove(id: string): Promise<void> {
    await this.plan.registry.remove(upstreamLabel(id));
  }
}
