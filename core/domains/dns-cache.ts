import type { Clock, DnsResolver } from '../ports.ts';

/**
 * A DnsResolver that remembers empty answers for `ttlSeconds` (negative caching), so many
 * pending domains polled by one worker do not hammer the resolver with the same miss.
 * Positive answers are never cached here: a record must keep answering to stay verified.
 * Bounded: at most `maxEntries` names are remembered, the oldest dropped first.
 */
export class NegativeCachingResolver implements DnsResolver {
  readonly #inner: DnsResolver;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #misses = new Map<string, number>();

  constructor(inner: DnsResolver, clock: Clock, ttlSeconds: number, maxEntries = 10_000) {
    this.#inner = inner;
    this.#clock = clock;
    this.#ttlMs = ttlSeconds * 1000;
    this.#maxEntries = maxEntries;
  }

  txt(name: string): Promise<string[]> {
    return this.#lookup('txt', name, () => this.#inner.txt(name));
  }

  cname(name: string): Promise<string[]> {
    return this.#lookup('cname', name, () => this.#inner.cname(name));
  }

  a(name: string): Promise<string[]> {
    return this.#lookup('a', name, () => this.#inner.a(name));
  }

  async #lookup(type: string, name: string, ask: () => Promise<string[]>): Promise<string[]> {
    const key = `${type} ${name.toLowerCase()}`;
    const now = this.#clock.now().getTime();
    const until = this.#misses.get(key);
    if (until !== undefined && until > now) return [];
    this.#misses.delete(key);
    const answer = await ask();
    if (answer.length === 0 && this.#ttlMs > 0) {
      if (this.#misses.size >= this.#maxEntries)
        this.#misses.delete(this.#misses.keys().next().value!);
      this.#misses.set(key, now + this.#ttlMs);
    }
    return answer;
  }
}
