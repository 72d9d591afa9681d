import { describe, expect, it } from 'vitest';
import type { KeyHasher } from '../../core/ports.ts';

/** The KeyHasher contract: every implementation is SHA-256 as lowercase hex of the UTF-8 text. */
export function runKeyHasherContract({ make }: { make: () => KeyHasher }): void {
  describe('KeyHasher contract', () => {
    const hasher = make();

    it('answers the FIPS 180-2 test vectors', () => {
      expect(hasher.sha256Hex('')).toBe(
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      );
      expect(hasher.sha256Hex('abc')).toBe(
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
      );
      expect(hasher.sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')).toBe(
        '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
      );
    });

    it('hashes the UTF-8 bytes of non-ASCII text', () => {
      // "é" is c3 a9 in UTF-8; hashed as Latin-1 (e9) it would give de2e331d…
      expect(hasher.sha256Hex('é')).toBe(
        '4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c',
      );
      // Outside the BMP too (a surrogate pair in JavaScript, four bytes in UTF-8).
      expect(hasher.sha256Hex('🔑 clé')).toBe(
        'cd1b30a45c1fac6da1da011023c6a6eed082d0d34d30249ff30c9b78b9e2b2bf',
      );
    });

    it('is the same for the same key and differs for keys one character apart', () => {
      const key = 'sdo_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG';
      expect(hasher.sha256Hex(key)).toBe(hasher.sha256Hex(`${key}`));
      expect(hasher.sha256Hex(key)).not.toBe(hasher.sha256Hex(`${key.slice(0, -1)}H`));
      expect(hasher.sha256Hex(key)).toMatch(/^[0-9a-f]{64}$/);
    });
  });
}
