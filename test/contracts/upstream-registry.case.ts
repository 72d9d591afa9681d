import { describe, expect, it } from 'vitest';
import type { UpstreamFeed, UpstreamRegistry } from '../../core/ports.ts';

/** What every UpstreamRegistry does: remember, replace and forget a route's upstreams. */
export function runUpstreamRegistryContract({
  make,
}: {
  make: () => Promise<UpstreamRegistry & UpstreamFeed>;
}) {
  describe('UpstreamRegistry contract', () => {
    it('answers null for an unknown route', async () => {
      expect(await (await make()).get('r-unknown')).toBeNull();
    });

    it('remembers, replaces and forgets upstreams, in order', async () => {
      const r = await make();
      await r.set('r-a', ['127.0.0.1:30001', '127.0.0.1:30002']);
      await r.set('r-b', ['10.0.0.5:31000']);
      expect(await r.get('r-a')).toEqual(['127.0.0.1:30001', '127.0.0.1:30002']);
      await r.set('r-a', ['127.0.0.1:30003']);
      expect(await r.get('r-a')).toEqual(['127.0.0.1:30003']);
      expect(await r.get('r-b')).toEqual(['10.0.0.5:31000']);
      await r.remove('r-a');
      await r.remove('r-a');
      expect(await r.get('r-a')).toBeNull();
    });

    it('lists every route at once, for a mirror', async () => {
      const r = await make();
      await r.set('r-a', ['127.0.0.1:30001']);
      await r.set('r-b', ['10.0.0.5:31000', '10.0.0.6:31000']);
      expect(Object.fromEntries(await r.all())).toEqual({
        'r-a': ['127.0.0.1:30001'],
        'r-b': ['10.0.0.5:31000', '10.0.0.6:31000'],
      });
    });

    it('says "reload" once subscribed, then names each written route once `get` sees the write', async () => {
      const r = await make();
      const heard: (string | null)[] = [];
      // What `get` answered when each word came, by the word's position: each write waits
      // for the answer to the word before it, so an answer shows the state that word named.
      const seen: (string[] | null | undefined)[] = [];
      let wake: () => void = () => undefined;
      const watcher = await r.watch((label) => {
        const at = heard.push(label) - 1;
        if (label)
          void r.get(label).then((u) => {
            seen[at] = u;
            wake();
          });
        wake();
      });
      const answered = () => heard.every((label, at) => label === null || seen[at] !== undefined);
      const hear = async (count: number) => {
        const deadline = Date.now() + 5_000;
        while ((heard.length < count || !answered()) && Date.now() < deadline)
          await new Promise<void>((resolve) => {
            wake = resolve;
            setTimeout(resolve, 50);
          });
      };
      try {
        await hear(1);
        expect(heard).toEqual([null]);
        await r.set('r-w', ['127.0.0.1:30001']);
        await hear(2);
        await r.set('r-w', ['127.0.0.1:30002']);
        await hear(3);
        await r.remove('r-w');
        await hear(4);
        expect(heard).toEqual([null, 'r-w', 'r-w', 'r-w']);
        // The write each word named was already there when the word came.
        expect(seen.slice(1)).toEqual([['127.0.0.1:30001'], ['127.0.0.1:30002'], null]);
      } finally {
        await watcher.close();
      }
      await r.set('r-after', ['127.0.0.1:1']);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(heard).toHaveLength(4);
    });
  });
}
