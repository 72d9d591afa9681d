import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { TtlCache } from '../../core/ttl-cache.ts';

describe('TtlCache', () => {
  it('forgets an entry once its time is up', () => {
    const clock = new ManualClock();
    const cache = new TtlCache<string>({ ttlMs: 5_000, maxEntries: 10, clock });
    cache.set('a', 'A');
    clock.advance(4_999);
    expect(cache.get('a')).toBe('A');
    clock.advance(1);
    expect(cache.get('a')).toBeUndefined();
  });

  it('drops the oldest entry when full', () => {
    const cache = new TtlCache<number>({ ttlMs: 60_000, maxEntries: 2, clock: new ManualClock() });
    cache.set('a', 1);
    cache.set('b', 2);
    cache.set('c', 3);
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual([undefined, 2, 3]);
  });

  it('drops every entry a predicate matches', () => {
    const cache = new TtlCache<{ id: string }>({
      ttlMs: 60_000,
      maxEntries: 10,
      clock: new ManualClock(),
    });
    cache.set('h1', { id: 'key_1' });
    cache.set('h2', { id: 'key_2' });
    cache.deleteWhere((v) => v.id === 'key_1');
    expect(cache.get('h1')).toBeUndefined();
    expect(cache.get('h2')).toEqual({ id: 'key_2' });
  });
});
