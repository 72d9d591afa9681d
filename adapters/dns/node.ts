/**
 * DnsResolver on node:dns (c-ares), asking the servers it is given rather than the
 * machine's resolv.conf, so the domain worker can be pointed at a known recursive
 * resolver (or, in tests, pebble-challtestsrv on 127.0.0.1:8053).
 */
import { Resolver } from 'node:dns/promises';
import { Unavailable } from '../../core/errors.ts';
import type { DnsResolver } from '../../core/ports.ts';

export interface NodeDnsResolverOptions {
  /** `ip` or `ip:port` entries; the system's resolvers when absent. */
  servers?: string[];
  /** Per query attempt. */
  timeoutMs?: number;
  /** Attempts per server before the lookup fails. */
  tries?: number;
}

// "There is no such name / no record of that type" is an answer: the record is absent.
const emptyAnswers = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'NXDOMAIN']);

export class NodeDnsResolver implements DnsResolver {
  readonly #resolver: Resolver;
  readonly #servers: string;

  constructor(options: NodeDnsResolverOptions = {}) {
    this.#resolver = new Resolver({
      timeout: options.timeoutMs ?? 2_000,
      tries: options.tries ?? 2,
    });
    if (options.servers?.length) this.#resolver.setServers(options.servers);
    this.#servers = this.#resolver.getServers().join(', ');
  }

  async txt(name: string): Promise<string[]> {
    const records = await this.#query('TXT', name, () => this.#resolver.resolveTxt(name));
    return records.map((chunks) => chunks.join(''));
  }

  cname(name: string): Promise<string[]> {
    return this.#query('CNAME', name, () => this.#resolver.resolveCname(name));
  }

  a(name: string): Promise<string[]> {
    return this.#query('A', name, () => this.#resolver.resolve4(name));
  }

  async #query<T>(type: string, name: string, run: () => Promise<T[]>): Promise<T[]> {
    try {
      return await run();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      if (emptyAnswers.has(code)) return [];
      // Timeouts, refused connections and SERVFAIL say nothing about the record.
      const error = new Unavailable(
        'dns',
        `${type} ${name} via ${this.#servers || 'system resolvers'}: ${code || (e as Error).message}`,
      );
      error.cause = e;
      throw error;
    }
  }
}
