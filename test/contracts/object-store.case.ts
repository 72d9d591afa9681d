import { beforeEach, describe, expect, it } from 'vitest';
import { InvalidInput } from '../../core/errors.ts';
import type { ObjectStore } from '../../core/ports.ts';

export interface ObjectStoreFixture {
  /** A new, empty store for each test. */
  make: () => ObjectStore | Promise<ObjectStore>;
}

async function arrayOf<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const text = (bytes: Uint8Array | null) =>
  bytes === null ? null : new TextDecoder().decode(bytes);

/** The behaviour every ObjectStore (local files, S3, memory) shares. */
export function runObjectStoreContract({ make }: ObjectStoreFixture): void {
  describe('ObjectStore contract', () => {
    let store: ObjectStore;
    beforeEach(async () => {
      store = await make();
    });

    it('returns binary bodies byte for byte', async () => {
      const body = new Uint8Array(256 * 4);
      for (let i = 0; i < body.length; i++) body[i] = i % 256;
      await store.put('artifacts/rel_1/bundle.bin', body, {
        contentType: 'application/octet-stream',
      });
      const back = await store.get('artifacts/rel_1/bundle.bin');
      expect(back).toBeInstanceOf(Uint8Array);
      expect(Array.from(back ?? [])).toEqual(Array.from(body));
    });

    it('stores string bodies as UTF-8', async () => {
      await store.put('logs/a.txt', 'grüße ✓ 🚀');
      const back = await store.get('logs/a.txt');
      expect(Array.from(back ?? [])).toEqual(Array.from(Buffer.from('grüße ✓ 🚀', 'utf8')));
      expect(text(back)).toBe('grüße ✓ 🚀');
    });

    it('stores empty bodies', async () => {
      await store.put('empty', '');
      expect(await store.get('empty')).toEqual(new Uint8Array(0));
      expect(await store.list('')).toEqual(['empty']);
    });

    it('keeps what was stored when the caller reuses its buffer', async () => {
      const body = new Uint8Array([1, 2, 3]);
      await store.put('k', body);
      body[0] = 9;
      const back = await store.get('k');
      expect(Array.from(back ?? [])).toEqual([1, 2, 3]);
      back?.fill(7);
      expect(Array.from((await store.get('k')) ?? [])).toEqual([1, 2, 3]);
    });

    it('overwrites an existing key', async () => {
      await store.put('backups/latest', 'one');
      await store.put('backups/latest', 'two, longer than one');
      expect(text(await store.get('backups/latest'))).toBe('two, longer than one');
      await store.put('backups/latest', 'x');
      expect(text(await store.get('backups/latest'))).toBe('x');
      expect(await store.list('backups/')).toEqual(['backups/latest']);
    });

    it('returns null for a missing key', async () => {
      expect(await store.get('nothing/here')).toBeNull();
      await store.put('a/b', 'x');
      expect(await store.get('a/b/c')).toBeNull();
      expect(await store.get('a')).toBeNull();
    });

    it('lists keys under a prefix, recursively and sorted', async () => {
      for (const key of [
        'logs/rel_2/b.txt',
        'logs/rel_1/z.txt',
        'logs/rel_1/a.txt',
        'logs/rel_10/a.txt',
        'artifacts/x',
        'logsx',
        'logs/rel_1/deep/er/c.txt',
      ]) {
        await store.put(key, key);
      }
      expect(await store.list('logs/')).toEqual([
        'logs/rel_1/a.txt',
        'logs/rel_1/deep/er/c.txt',
        'logs/rel_1/z.txt',
        'logs/rel_10/a.txt',
        'logs/rel_2/b.txt',
      ]);
      // A prefix is a string prefix, not a folder: rel_1 also matches rel_10.
      expect(await store.list('logs/rel_1')).toEqual([
        'logs/rel_1/a.txt',
        'logs/rel_1/deep/er/c.txt',
        'logs/rel_1/z.txt',
        'logs/rel_10/a.txt',
      ]);
      expect(await store.list('logs/rel_1/')).toEqual([
        'logs/rel_1/a.txt',
        'logs/rel_1/deep/er/c.txt',
        'logs/rel_1/z.txt',
      ]);
      expect(await store.list('logs')).toHaveLength(6);
      expect(await store.list('')).toHaveLength(7);
      expect(await store.list('logs/rel_1/a.txt')).toEqual(['logs/rel_1/a.txt']);
      expect(await store.list('nope/')).toEqual([]);
      expect(await store.list('logs/rel_3')).toEqual([]);
    });

    it('sorts by bytes, so upper case comes before lower case and ASCII before other letters', async () => {
      for (const key of ['s/b', 's/é', 's/B', 's/a', 's/A-1', 's/_']) await store.put(key, 'x');
      expect(await store.list('s/')).toEqual(['s/A-1', 's/B', 's/_', 's/a', 's/b', 's/é']);
    });

    it('deletes a key, and deleting a missing key is fine', async () => {
      await store.put('a/b/c', 'x');
      await store.put('a/d', 'y');
      await store.delete('a/b/c');
      expect(await store.get('a/b/c')).toBeNull();
      expect(await store.list('a/')).toEqual(['a/d']);
      await store.delete('a/b/c');
      await store.delete('never/was');
      await store.put('a/b/c', 'again');
      expect(text(await store.get('a/b/c'))).toBe('again');
    });

    const badKeys: Array<[string, string, RegExp]> = [
      ['empty', '', /non-empty/],
      ['dot-dot', 'a/../b', /segment "\.\." is not allowed/],
      ['leading dot-dot', '../etc/passwd', /segment "\.\." is not allowed/],
      ['dot', './a', /segment "\." is not allowed/],
      ['absolute', '/etc/passwd', /relative/],
      ['empty segment', 'a//b', /empty path segments/],
      ['trailing slash', 'a/b/', /empty path segments/],
      ['NUL', 'a\u0000b', /control characters/],
      ['newline', 'a\nb', /control characters/],
      ['backslash', 'a\\..\\b', /backslashes/],
      ['too long', 'k/'.repeat(600) + 'k', /longer than 1024 bytes/],
      ['long segment', 'x'.repeat(256), /segment is longer than 255 bytes/],
    ];

    for (const [label, key, message] of badKeys) {
      it(`rejects a bad key (${label}) on put, get and delete`, async () => {
        await expect(store.put(key, 'x')).rejects.toThrow(InvalidInput);
        await expect(store.put(key, 'x')).rejects.toThrow(message);
        await expect(store.get(key)).rejects.toThrow(InvalidInput);
        await expect(store.delete(key)).rejects.toThrow(InvalidInput);
        expect(await store.list('')).toEqual([]);
      });
    }

    const chunked = async function* (total: number, chunk: number) {
      for (let at = 0; at < total; at += chunk) {
        const n = Math.min(chunk, total - at);
        const out = new Uint8Array(n);
        for (let i = 0; i < n; i++) out[i] = (at + i) % 251;
        yield out;
      }
    };
    const collect = async (stream: AsyncIterable<Uint8Array> | null) => {
      if (!stream) return null;
      const parts: Uint8Array[] = [];
      for await (const c of stream) parts.push(Uint8Array.from(c));
      return Buffer.concat(parts);
    };

    it('streams a body in and out byte for byte, small and across several parts', async () => {
      for (const [key, total] of [
        ['backups/small.bin', 1000],
        ['backups/big.bin', 12 * 1024 * 1024 + 7],
        ['backups/empty.bin', 0],
      ] as const) {
        const put = await store.putStream(key, chunked(total, 64 * 1024 + 3));
        expect(put).toEqual({ bytes: total });
        const back = await collect(await store.getStream(key));
        expect(back?.byteLength).toBe(total);
        expect(
          Buffer.compare(back!, Buffer.concat([...(await arrayOf(chunked(total, 1 << 20)))])),
        ).toBe(0);
        expect((await store.get(key))?.byteLength).toBe(total);
      }
      expect(await store.list('backups/')).toEqual([
        'backups/big.bin',
        'backups/empty.bin',
        'backups/small.bin',
      ]);
    });

    it('leaves nothing at the key when the source fails mid-stream, and passes the failure on', async () => {
      const failing = async function* () {
        yield* chunked(6 * 1024 * 1024, 1 << 20);
        throw new Error('dump died');
      };
      await expect(store.putStream('backups/half', failing())).rejects.toThrow('dump died');
      expect(await store.get('backups/half')).toBeNull();
      expect(await store.list('backups/')).toEqual([]);
    });

    it('answers null for a missing stream and refuses bad keys', async () => {
      expect(await store.getStream('nothing/here')).toBeNull();
      await expect(store.putStream('a/../b', chunked(1, 1))).rejects.toThrow(InvalidInput);
      await expect(store.getStream('a/../b')).rejects.toThrow(InvalidInput);
    });

    it('names the key in the error', async () => {
      await expect(store.put('a/../b', 'x')).rejects.toThrow('object key "a/../b" is invalid');
    });

    it('rejects a prefix that could escape or never match', async () => {
      for (const prefix of ['../', 'a/../', '/abs', 'a//', 'a\\b', 'a\u0000']) {
        await expect(store.list(prefix)).rejects.toThrow(InvalidInput);
      }
      expect(await store.list('a/b-')).toEqual([]);
    });
  });
}
