/**
 * SHA-256 through Web Crypto, present in every runtime selfdevop targets (Node, Lambda),
 * so core stays free of node:crypto. Used for API keys: they carry 256 bits of entropy,
 * so a fast hash is enough and keeps per-request authentication cheap.
 */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
