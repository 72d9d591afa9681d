import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/** Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const signatureHeader = 'x-selfdevop-signature';

/**
 * Signs a delivery. The timestamp is inside the signed text, so a receiver that rejects
 * old timestamps (say, over 5 minutes) also rejects replays.
 */
export function signPayload(secret: string, timestampSeconds: number, body: string): string {
  const mac = bytesToHex(
    hmac(sha256, utf8ToBytes(secret), utf8ToBytes(`${timestampSeconds}.${body}`)),
  );
  return `t=${timestampSeconds},v1=${mac}`;
}

/** What a receiver runs: true when the header matches the body and is recent enough. */
export function verifySignature(
  secret: string,
  header: string,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const parts = Object.fromEntries(
    header.split(',').map((p) => p.split('=', 2) as [string, string]),
  );
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !parts.v1 || Math.abs(nowSeconds - t) > toleranceSeconds)
    return false;
  const expected = signPayload(secret, t, body).split('v1=')[1]!;
  // Constant time over equal lengths, so the comparison leaks nothing about the secret.
  if (expected.length !== parts.v1.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ parts.v1.charCodeAt(i);
  return diff === 0;
}
