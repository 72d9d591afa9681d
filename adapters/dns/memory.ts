/**
 * In-memory DnsResolver for fast tests of the domain engine: records set by hand, answers
 * shaped as the node:dns adapter's (names case-insensitive, trailing dot optional, [] for
 * none), and a switch that makes every lookup fail as an unreachable server does.
 */
import { Unavailable } from '../../core/errors.ts';
import type { DnsResolver } from '../../core/ports.ts';

type RecordType = 'txt' | 'cname' | 'a';

const key = (name: string) => name.toLowerCase().replace(/\.$/, '');

export class MemoryDnsResolver implements DnsResolver {
  readonly #records = new Map<string, string[]>();
  #unreachable = false;
  /** Lookups answered or failed, oldest first (`txt example.com`), for tests of caching. */
  readonly queries: string[] = [];

  /** Replaces the TXT values at name. */
  setTxt(name: string, ...values: string[]): void {
    this.#records.set(`txt ${key(name)}`, values);
  }

  setCname(name: string, target: string): void {
    this.#records.set(`cname ${key(name)}`, [target]);
  }

  setA(name: string, ...addresses: string[]): void {
    this.#records.set(`a ${key(name)}`, addresses);
  }

  clear(type: RecordType, name: string): void {
    this.#records.delete(`${type} ${key(name)}`);
  }

  /** While set, every lookup throws Unavailable('dns'), as with a server that does not answer. */
  setUnreachable(unreachable: boolean): void {
    this.#unreachable = unreachable;
  }

  async txt(name: string): Promise<string[]> {
    return this.#lookup('txt', name);
  }

  async cname(name: string): Promise<string[]> {
    return this.#lookup('cname', name);
  }

  async a(name: string): Promise<string[]> {
    return this.#lookup('a', name);
  }

  #lookup(type: RecordType, name: string): string[] {
    this.queries.push(`${type} ${key(name)}`);
    if (this.#unreachable)
      throw new Unavailable('dns', `${type.toUpperCase()} ${name}: the DNS server does not answer`);
    return [...(this.#records.get(`${type} ${key(name)}`) ?? [])];
  }
}
