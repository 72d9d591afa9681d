import { describe, expect, it } from 'vitest';
import type { UpstreamRegistry } from '../../core/ports.ts';

/** What every UpstreamRegistry does: remember, replace and forget a route's upstreams. */
export function runUpstreamRegistryContract({ make }: { make: () => Promise<UpstreamRegistry> }) {
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
  });
}
