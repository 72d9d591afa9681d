import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryDnsResolver } from '../../../adapters/dns/memory.ts';
import { AskGate, backoffSeconds, NegativeCachingResolver } from '../../../core/domains/engine.ts';

describe('AskGate (CA rate-limit protection)', () => {
  it('lets the first ask through, then backs off exponentially per host', () => {
    const clock = new ManualClock();
    const gate = new AskGate(clock, { perHostPerHour: 5, baseBackoffSeconds: 30 });
    expect(gate.allow('a.example.com', false)).toBe(true);
    // Asks within one attempt (2 s) count once.
    clock.advance(1_000);
    expect(gate.allow('a.example.com', false)).toBe(true);
    clock.advance(2_000);
    expect(gate.allow('a.example.com', false)).toBe(false);
    expect(gate.allow('b.example.com', false)).toBe(true);
    clock.advance(27_000); // 30 s after the first
    expect(gate.allow('a.example.com', false)).toBe(true);
    clock.advance(50_000); // second wait is 60 s
    expect(gate.allow('a.example.com', false)).toBe(false);
    clock.advance(10_000);
    expect(gate.allow('a.example.com', false)).toBe(true);
  });

  it('caps asks per host per hour, and forgets a host on reset', () => {
    const clock = new ManualClock();
    const gate = new AskGate(clock, { perHostPerHour: 3, baseBackoffSeconds: 1 });
    const allowed = [];
    for (let i = 0; i < 20; i++) {
      allowed.push(gate.allow('a.example.com', false));
      clock.advance(60_000);
    }
    expect(allowed.filter(Boolean)).toHaveLength(3);
    gate.reset('a.example.com');
    expect(gate.allow('a.example.com', false)).toBe(true);
  });

  it('always lets an active host through (renewals)', () => {
    const gate = new AskGate(new ManualClock(), { perHostPerHour: 1, baseBackoffSeconds: 3600 });
    for (let i = 0; i < 5; i++) expect(gate.allow('a.example.com', true)).toBe(true);
  });
});

describe('NegativeCachingResolver', () => {
  it('remembers an empty answer for the TTL, never a positive one', async () => {
    const clock = new ManualClock();
    const dns = new MemoryDnsResolver();
    const cached = new NegativeCachingResolver(dns, clock, 15);
    expect(await cached.txt('_x.example.com')).toEqual([]);
    dns.setTxt('_x.example.com', 'token');
    expect(await cached.txt('_x.example.com')).toEqual([]);
    expect(dns.queries).toEqual(['txt _x.example.com']);
    clock.advance(15_001);
    expect(await cached.txt('_X.example.com')).toEqual(['token']);
    expect(await cached.txt('_x.example.com')).toEqual(['token']);
    expect(dns.queries).toHaveLength(3);
  });

  it('does not cache failures: an unreachable server is asked again', async () => {
    const dns = new MemoryDnsResolver();
    const cached = new NegativeCachingResolver(dns, new ManualClock(), 15);
    dns.setUnreachable(true);
    await expect(cached.a('x.example.com')).rejects.toThrow(/dns is unavailable/);
    dns.setUnreachable(false);
    dns.setA('x.example.com', '1.2.3.4');
    expect(await cached.a('x.example.com')).toEqual(['1.2.3.4']);
  });

  it('keeps at most maxEntries misses', async () => {
    const dns = new MemoryDnsResolver();
    const cached = new NegativeCachingResolver(dns, new ManualClock(), 60, 2);
    for (const n of ['a', 'b', 'c']) await cached.cname(`${n}.example.com`);
    await cached.cname('a.example.com');
    expect(dns.queries.filter((q) => q === 'cname a.example.com')).toHaveLength(2);
  });
});

describe('backoffSeconds', () => {
  it('doubles from the base and stops at the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 40].map((n) => backoffSeconds(n, 5, 60))).toEqual([
      5, 10, 20, 40, 60, 60, 60,
    ]);
  });
});
