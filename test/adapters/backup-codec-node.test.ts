import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { coalesced, NodeBackupCodec } from '../../adapters/backup/node-codec.ts';

const codec = new NodeBackupCodec();

async function* chunks(total: number, size: number) {
  for (let at = 0; at < total; at += size) {
    const n = Math.min(size, total - at);
    yield new TextEncoder().encode(`row ${at};`.padEnd(n, 'x').slice(0, n));
  }
}
async function all(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(Buffer.from(c));
  return Buffer.concat(out);
}
async function* once(b: Buffer) {
  // Odd pieces, so the IV and the tag straddle chunk boundaries.
  for (let at = 0; at < b.length; at += 7777) yield b.subarray(at, at + 7777);
}

describe('NodeBackupCodec', () => {
  it('round-trips a stream: gzip, then AES-256-GCM, with matching checksums both ways', async () => {
    const key = codec.newDataKey();
    const raw = await all(chunks(3_000_000, 65_536));
    const enc = codec.encode(once(raw), key);
    const stored = await all(enc.output);
    const t = enc.totals();
    expect(t.inBytes).toBe(raw.length);
    expect(t.outBytes).toBe(stored.length);
    expect(stored.length).toBeLessThan(raw.length / 10);
    expect(stored.includes(Buffer.from('row 0;'))).toBe(false);
    expect(await codec.sha256(once(stored))).toEqual({ sha256: t.outSha256, bytes: stored.length });
    const dec = codec.decode(once(stored), key);
    const back = await all(dec.output);
    expect(Buffer.compare(back, raw)).toBe(0);
    expect(dec.totals()).toEqual({
      inBytes: stored.length,
      outBytes: raw.length,
      inSha256: t.outSha256,
      outSha256: t.inSha256,
      gzipBytes: t.gzipBytes,
      gzipSha256: t.gzipSha256,
    });
    expect(t.gzipBytes).toBe(stored.length - 12 - 16); // GCM adds only the IV and the tag
  });

  it('encrypts a stream gzipped on the node as it is, and decodes it like its own', async () => {
    const key = codec.newDataKey();
    const raw = await all(chunks(2_000_000, 65_536));
    const gz = gzipSync(raw, { level: 6 });
    const enc = codec.encode(once(gz), key, { compressed: true });
    const stored = await all(enc.output);
    const t = enc.totals();
    expect(stored.length).toBe(gz.length + 12 + 16);
    expect(t).toEqual({
      inBytes: gz.length,
      outBytes: stored.length,
      inSha256: createHash('sha256').update(gz).digest('hex'),
      outSha256: createHash('sha256').update(stored).digest('hex'),
      gzipBytes: gz.length,
      gzipSha256: createHash('sha256').update(gz).digest('hex'),
    });
    const dec = codec.decode(once(stored), key);
    expect(Buffer.compare(await all(dec.output), raw)).toBe(0);
    expect(dec.totals()).toMatchObject({
      outBytes: raw.length,
      outSha256: createHash('sha256').update(raw).digest('hex'),
      gzipBytes: gz.length,
      gzipSha256: t.gzipSha256,
    });
  });

  it('decrypts without decompressing when asked: out is the gzip stream the node made', async () => {
    const key = codec.newDataKey();
    const gz = gzipSync(await all(chunks(500_000, 65_536)));
    const enc = codec.encode(once(gz), key, { compressed: true });
    const stored = await all(enc.output);
    const dec = codec.decode(once(stored), key, { decompress: false });
    const out = await all(dec.output);
    expect(out.equals(gz)).toBe(true);
    const t = dec.totals();
    expect(t.gzipSha256).toBe(createHash('sha256').update(gz).digest('hex'));
    expect(t.gzipBytes).toBe(gz.length);
    expect(t.outBytes).toBe(gz.length);
    // A flipped byte still fails at the tag, left compressed or not.
    const bad = Buffer.from(stored);
    bad[bad.length >> 1]! ^= 1;
    await expect(all(codec.decode(once(bad), key, { decompress: false }).output)).rejects.toThrow(
      /authentication tag/,
    );
  });

  it('fails the read of a gzip stream whose content was damaged before encryption (CRC-32)', async () => {
    const key = codec.newDataKey();
    const gz = gzipSync(await all(chunks(200_000, 4096)));
    gz[gz.length - 6]! ^= 1; // the trailer's CRC-32: the dump no longer matches it
    const stored = await all(codec.encode(once(gz), key, { compressed: true }).output);
    await expect(all(codec.decode(once(stored), key).output)).rejects.toThrow(/check/i);
  });

  it('refuses a flipped byte, another key and a truncated object, loudly', async () => {
    const key = codec.newDataKey();
    const stored = await all(codec.encode(chunks(100_000, 4096), key).output);
    const flipped = Buffer.from(stored);
    flipped[flipped.length - 20]! ^= 1;
    await expect(all(codec.decode(once(flipped), key).output)).rejects.toThrow(
      /authentication tag does not match/,
    );
    await expect(all(codec.decode(once(stored), codec.newDataKey()).output)).rejects.toThrow();
    await expect(all(codec.decode(once(stored.subarray(0, 20)), key).output)).rejects.toThrow();
  });

  it("joins the engine's small frames into chunks of at least 256 KB before it hashes and encrypts them", async () => {
    const raw = await all(chunks(1_000_000, 4096));
    const sizes: number[] = [];
    const joined: Buffer[] = [];
    for await (const c of coalesced(once(raw))) {
      sizes.push(c.byteLength);
      joined.push(Buffer.from(c));
    }
    expect(Buffer.concat(joined).equals(raw)).toBe(true);
    expect(sizes.slice(0, -1).every((n) => n >= 256 * 1024)).toBe(true);
    expect(sizes.length).toBe(4);
    // A chunk already as large passes as it is; nothing comes of nothing.
    const big = Buffer.alloc(300_000, 1);
    const out: Uint8Array[] = [];
    for await (const c of coalesced(
      (async function* () {
        yield big;
      })(),
    ))
      out.push(c);
    expect(out).toEqual([big]);
    expect(out[0]).toBe(big);
    const none: Uint8Array[] = [];
    for await (const c of coalesced((async function* () {})())) none.push(c);
    expect(none).toEqual([]);
  });

  it('makes a fresh 256-bit key each time', () => {
    const a = codec.newDataKey();
    expect(Buffer.from(a, 'base64')).toHaveLength(32);
    expect(codec.newDataKey()).not.toBe(a);
  });

  it('wraps a data key under a passphrase: opens with it and its context only, and refuses a crafted cost', () => {
    const key = codec.newDataKey();
    const wrapped = codec.wrapKey(key, 'correct horse battery staple', 'ctx-a');
    expect(wrapped).toMatch(/^v1\.scrypt\.32768\.8\.1\./);
    expect(wrapped).not.toContain(key);
    expect(codec.unwrapKey(wrapped, 'correct horse battery staple', 'ctx-a')).toBe(key);
    // A second wrap of the same key differs (fresh salt and IV).
    expect(codec.wrapKey(key, 'correct horse battery staple', 'ctx-a')).not.toBe(wrapped);
    expect(() => codec.unwrapKey(wrapped, 'correct horse battery stapLe', 'ctx-a')).toThrow(
      /unable to authenticate|auth/i,
    );
    expect(() => codec.unwrapKey(wrapped, 'correct horse battery staple', 'ctx-b')).toThrow();
    const parts = wrapped.split('.');
    parts[2] = String(2 ** 24);
    expect(() => codec.unwrapKey(parts.join('.'), 'x', 'ctx-a')).toThrow(/v1\.scrypt/);
    expect(() => codec.unwrapKey('garbage', 'x', 'ctx-a')).toThrow(/v1\.scrypt/);
  });
});
