import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** Why a sealed value did not open; never carries the plaintext. */
export class SealedValueUnreadable extends Error {
  constructor(reason: string) {
    super(`sealed value cannot be opened: ${reason}`);
    this.name = 'SealedValueUnreadable';
  }
}

const keyBytes = 32;
const ivBytes = 12;
const tagBytes = 16;
const version = 'v1';
const base64url = /^[A-Za-z0-9_-]*$/;

/** A short, stable name for a key (first 8 bytes of its SHA-256, base64url); reveals nothing usable. */
export function keyIdOf(key: Uint8Array): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('base64url');
}

function decodeSegment(segment: string, what: string): Buffer {
  const bytes = Buffer.from(segment, 'base64url');
  // Node's decoder skips stray characters and ignores spare bits; requiring the canonical
  // encoding means any change to the sealed string is caught, not just most.
  if (!base64url.test(segment) || bytes.toString('base64url') !== segment) {
    throw new SealedValueUnreadable(`its ${what} is not canonical base64url`);
  }
  return bytes;
}

/**
 * AES-256-GCM with one current key and any number of older ones. Sealed values read
 * `v1.<keyId>.<iv>.<ciphertext+tag>` (base64url), with `context` as additional
 * authenticated data and a random 12-byte IV per seal. Old keys only open.
 */
export class KeyRing {
  readonly currentKeyId: string;
  private readonly keys = new Map<string, Buffer>();

  constructor(current: Uint8Array, previous: Uint8Array[] = []) {
    for (const key of [current, ...previous]) {
      if (key.byteLength !== keyBytes)
        throw new Error(`an AES-256 key must be ${keyBytes} bytes, got ${key.byteLength}`);
      const id = keyIdOf(key);
      if (!this.keys.has(id)) this.keys.set(id, Buffer.from(key));
    }
    this.currentKeyId = keyIdOf(current);
  }

  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  seal(plaintext: string, context: string): string {
    if (typeof plaintext !== 'string') throw new TypeError('seal: plaintext must be a string');
    if (typeof context !== 'string') throw new TypeError('seal: context must be a string');
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', this.keyFor(this.currentKeyId), iv, {
      authTagLength: tagBytes,
    });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([
      cipher.update(plaintext, 'utf8'),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return [version, this.currentKeyId, iv.toString('base64url'), body.toString('base64url')].join(
      '.',
    );
  }

  open(sealed: string, context: string): string {
    if (typeof sealed !== 'string') throw new SealedValueUnreadable('it is not a string');
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== version) {
      throw new SealedValueUnreadable(
        `it is not in the ${version}.<keyId>.<iv>.<ciphertext> format`,
      );
    }
    const [, keyId = '', ivText = '', bodyText = ''] = parts;
    const key = this.keys.get(keyId);
    if (!key) {
      throw new SealedValueUnreadable(
        `it was sealed with key ${keyId}, which this vault does not hold (it holds ${this.keyIds.join(', ')})`,
      );
    }
    const iv = decodeSegment(ivText, 'iv');
    const body = decodeSegment(bodyText, 'ciphertext');
    if (iv.byteLength !== ivBytes)
      throw new SealedValueUnreadable(`its iv is ${iv.byteLength} bytes, not ${ivBytes}`);
    if (body.byteLength < tagBytes)
      throw new SealedValueUnreadable('its ciphertext is shorter than the authentication tag');
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes });
    decipher.setAAD(Buffer.from(String(context), 'utf8'));
    decipher.setAuthTag(body.subarray(body.byteLength - tagBytes));
    try {
      return Buffer.concat([
        decipher.update(body.subarray(0, body.byteLength - tagBytes)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SealedValueUnreadable(
        `it does not authenticate with key ${keyId} in context ${JSON.stringify(context)} (wrong context, or the value was altered)`,
      );
    }
  }

  private keyFor(id: string): Buffer {
    const key = this.keys.get(id);
    if (!key) throw new Error(`key ${id} is not in this key ring`);
    return key;
  }
}
