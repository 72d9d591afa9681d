import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCoreError } from '../../core/errors.ts';
import type { DnsResolver } from '../../core/ports.ts';

/** A resolver under test and the hands to change what its DNS server answers. */
export interface DnsHarness {
  resolver: DnsResolver;
  setTxt(name: string, value: string): Promise<void>;
  clearTxt(name: string): Promise<void>;
  setCname(name: string, target: string): Promise<void>;
  setA(name: string, addresses: string[]): Promise<void>;
  /** Makes the server stop answering; `up` brings it back. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

const bare = (names: string[]) => names.map((n) => n.toLowerCase().replace(/\.$/, ''));

/** The DnsResolver contract: every implementation answers records the same way. */
export function runDnsResolverContract({ make }: { make: () => Promise<DnsHarness> }): void {
  describe('DnsResolver contract', () => {
    let h: DnsHarness;
    let n = 0;
    const name = (what: string) => `${what}-${++n}.contract.example.test`;

    beforeAll(async () => {
      h = await make();
    });
    afterAll(async () => {
      await h?.close();
    });

    it('answers [] for a name with no TXT record', async () => {
      expect(await h.resolver.txt(`_selfdevop-challenge.${name('none')}`)).toEqual([]);
    });

    it('answers a TXT value once it is set, and [] again once it is cleared', async () => {
      const host = `_selfdevop-challenge.${name('txt')}`;
      await h.setTxt(host, 'sdo-token-abc_123');
      expect(await h.resolver.txt(host)).toEqual(['sdo-token-abc_123']);
      await h.clearTxt(host);
      expect(await h.resolver.txt(host)).toEqual([]);
    });

    it('is case-insensitive about names', async () => {
      const host = `_selfdevop-challenge.${name('case')}`;
      await h.setTxt(host, 'token-case');
      expect(await h.resolver.txt(host.toUpperCase())).toEqual(['token-case']);
    });

    it('answers the CNAME target of a name that has one, and [] for one that has none', async () => {
      const host = name('cname');
      await h.setCname(host, 'web-production-abc123.apps.example.test');
      expect(bare(await h.resolver.cname(host))).toEqual([
        'web-production-abc123.apps.example.test',
      ]);
      expect(await h.resolver.cname(`_selfdevop-challenge.${name('nocname')}`)).toEqual([]);
    });

    it('answers the A records of a name', async () => {
      const host = name('a');
      await h.setA(host, ['127.0.0.7']);
      expect(await h.resolver.a(host)).toEqual(['127.0.0.7']);
    });

    it('throws Unavailable(dns) when the server does not answer, and recovers when it is back', async () => {
      const host = `_selfdevop-challenge.${name('down')}`;
      await h.down();
      const started = Date.now();
      const error = await h.resolver.txt(host).then(
        () => null,
        (e: unknown) => e,
      );
      expect(isCoreError(error) && error.code).toBe('dns_unavailable');
      expect(Date.now() - started).toBeLessThan(10_000);
      await h.up();
      await h.setTxt(host, 'back');
      expect(await h.resolver.txt(host)).toEqual(['back']);
    });
  });
}
