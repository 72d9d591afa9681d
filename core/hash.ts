import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * SHA-256 of a string, as hex. Pure JavaScript (no node:crypto, no Web Crypto job per
 * call), so core stays runtime-free and authenticating an API key costs microseconds: keys
 * carry 256 bits of entropy, so a fast hash is enough.
 */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}
