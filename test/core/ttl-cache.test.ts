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

  describe('getOrLoad', () => {
    const deferred = <T>() => {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
      return { promise, resolve, reject };
    };
    const newCache = () =>
      new TtlCache<string>({ ttlMs: 1_000, maxEntries: 10, clock: new ManualClock() });

    it('shares one load among the misses of a key at the same time, and remembers it', async () => {
      const cache = newCache();
      const d = deferred<string | null>();
      let loads = 0;
      const load = () => (loads++, d.promise);
      const waiting = Array.from({ length: 5 }, () => cache.getOrLoad('k', load));
      d.resolve('V');
      expect(await Promise.all(waiting)).toEqual(['V', 'V', 'V', 'V', 'V']);
      expect(await cache.getOrLoad('k', load)).toBe('V');
      expect(loads).toBe(1);
    });

    it('loads each key on its own', async () => {
      const cache = newCache();
      const loaded: string[] = [];
      const load = (k: string) => () => (loaded.push(k), Promise.resolve(k.toUpperCase()));
      expect(
        await Promise.all([cache.getOrLoad('a', load('a')), cache.getOrLoad('b', load('b'))]),
      ).toEqual(['A', 'B']);
      expect(loaded).toEqual(['a', 'b']);
    });

    it('does not let a caller after an invalidation join a load begun before it', async () => {
      const cache = newCache();
      const before = deferred<string | null>();
      const first = cache.getOrLoad('k', () => before.promise);
      cache.invalidate('other', 'x');
      cache.deleteWhere(() => false);
      let second = 0;
      const after = cache.getOrLoad('k', () => (second++, Promise.resolve('new')));
      before.resolve('old');
      expect(await first).toBe('old');
      expect(await after).toBe('new');
      expect(second).toBe(1);
      // The stale load did not overwrite what the later one remembered.
      expect(cache.get('k')).toBe('new');
    });

    it('remembers neither a null, nor what keep refuses, nor a failure', async () => {
      const cache = newCache();
      expect(await cache.getOrLoad('none', () => Promise.resolve(null))).toBeNull();
      expect(cache.get('none')).toBeUndefined();
      expect(
        await cache.getOrLoad(
          'r',
          () => Promise.resolve('revoked'),
          (v) => v !== 'revoked',
        ),
      ).toBe('revoked');
      expect(cache.get('r')).toBeUndefined();
      await expect(
        cache.getOrLoad('f', () => Promise.reject(new Error('db down'))),
      ).rejects.toThrow('db down');
      expect(await cache.getOrLoad('f', () => Promise.resolve('back'))).toBe('back');
    });

    it('recovers from a load that throws before returning a promise', async () => {
      const cache = newCache();
      const boom = (): Promise<string | null> => {
        throw new Error('boom');
      };
      await expect(cache.getOrLoad('k', boom)).rejects.toThrow('boom');
      expect(await cache.getOrLoad('k', () => Promise.resolve('ok'))).toBe('ok');
    });

    it('loads again once the remembered entry has expired', async () => {
      const clock = new ManualClock();
      const cache = new TtlCache<string>({ ttlMs: 1_000, maxEntries: 10, clock });
      let loads = 0;
      const load = () => Promise.resolve(`v${++loads}`);
      expect(await cache.getOrLoad('k', load)).toBe('v1');
      clock.advance(999);
      expect(await cache.getOrLoad('k', load)).toBe('v1');
      clock.advance(1);
      expect(await cache.getOrLoad('k', load)).toBe('v2');
    });
  });
});
