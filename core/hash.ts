import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import type { KeyHasher } from './ports.ts';

/**
 * SHA-256 of a string, as hex. Pure JavaScript (no node:crypto, no Web Crypto job per
 * call), so core stays runtime-free: keys carry 256 bits of entropy, so a fast hash is
 * enough. The modes hash with the runtime's native SHA-256 instead (adapters/hash/), which
 * costs a tenth of this in instructions on the API's hottest path.
 */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}

/** The KeyHasher when a composition root gives none: this pure SHA-256. */
export const pureKeyHasher: KeyHasher = { sha256Hex };

/** The deps' KeyHasher, or the pure one. */
export const keyHasherOf = (deps: { keyHasher?: KeyHasher }): KeyHasher =>
  deps.keyHasher ?? pureKeyHasher;
