/**
 * Cloud KeyVault: envelope encryption with AWS KMS. Each seal asks KMS for a fresh AES-256
 * data key (GenerateDataKey, bound to the context as KMS EncryptionContext), encrypts
 * locally with AES-256-GCM (the context as additional authenticated data) and stores the
 * KMS-wrapped data key beside the ciphertext:
 *
 *   kms1.<wrapped data key>.<iv>.<ciphertext+tag>      (each part base64url)
 *
 * Opening unwraps the data key through KMS Decrypt with the same EncryptionContext, so a
 * value moved to another context fails in KMS as well as in GCM. Unwrapped keys are kept in
 * memory for a short while, so reading an environment's secrets costs one KMS call per
 * value per cache period, not per request. The only file that imports @aws-sdk/client-kms,
 * and only on the first seal or open, so a cold start does not parse it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type * as KmsSdk from '@aws-sdk/client-kms';
import type { KMSClient, KMSClientConfig } from '@aws-sdk/client-kms';
import type { Clock, KeyVault } from '../../core/ports.ts';
import { SealedValueUnreadable } from './key-ring.ts';
import { exportsOf, onFirstUse } from '../on-first-use.ts';

export interface KmsKeyVaultOptions {
  /** The KMS key (id, ARN or alias/…) data keys are generated under: SECRETS_KMS_KEY_ID. */
  keyId: string;
  /** A client to share, or settings for a new one. */
  client?: KMSClient | KMSClientConfig;
  /** How long an unwrapped data key stays in memory; 5 minutes unless set, 0 disables. */
  cacheTtlMs?: number;
  /** Most data keys kept at once; the oldest go first. 1000 unless set. */
  cacheMaxEntries?: number;
  clock?: Pick<Clock, 'now'>;
}

const version = 'kms1';
const ivBytes = 12;
const tagBytes = 16;
const base64url = /^[A-Za-z0-9_-]+$/;

/** The SDK's exports (TypeScript also lists a default export for a CommonJS package). */
type KmsSdkExports = Omit<typeof KmsSdk, 'default'>;
const loadSdk: () => Promise<KmsSdkExports> = onFirstUse(() =>
  import('@aws-sdk/client-kms').then(exportsOf),
);

function isKmsClient(c: KmsKeyVaultOptions['client']): c is KMSClient {
  return typeof (c as KMSClient | undefined)?.send === 'function';
}

function decodeSegment(segment: string, what: string): Buffer {
  const bytes = Buffer.from(segment, 'base64url');
  // Node's decoder ignores stray characters and spare bits; only the canonical encoding
  // is accepted, so every change to a sealed string is caught.
  if (!base64url.test(segment) || bytes.toString('base64url') !== segment)
    throw new SealedValueUnreadable(`its ${what} is not canonical base64url`);
  return bytes;
}

/** KMS EncryptionContext: the same context that is the GCM additional data. */
function encryptionContext(context: string): Record<string, string> {
  return { 'selfdevop:context': context };
}

/**
 * @example new KmsKeyVault({ keyId: env.SECRETS_KMS_KEY_ID })
 */
export class KmsKeyVault implements KeyVault {
  readonly keyId: string;
  private readonly clientOption: KmsKeyVaultOptions['client'];
  private loaded: Promise<{ kms: KmsSdkExports; client: KMSClient }> | undefined;
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;
  private readonly clock: Pick<Clock, 'now'>;
  private readonly cache = new Map<string, { key: Buffer; expiresAt: number }>();

  constructor(options: KmsKeyVaultOptions) {
    if (typeof options.keyId !== 'string' || options.keyId.trim() === '')
      throw new Error('SECRETS_KMS_KEY_ID must name a KMS key (key id, key ARN or alias/name)');
    this.keyId = options.keyId;
    this.clientOption = options.client;
    this.cacheTtlMs = options.cacheTtlMs ?? 5 * 60_000;
    this.cacheMaxEntries = options.cacheMaxEntries ?? 1000;
    this.clock = options.clock ?? { now: () => new Date() };
  }

  async seal(plaintext: string, context: string): Promise<string> {
    if (typeof plaintext !== 'string') throw new TypeError('seal: plaintext must be a string');
    if (typeof context !== 'string') throw new TypeError('seal: context must be a string');
    const { kms, client } = await this.sdk();
    const out = await client.send(
      new kms.GenerateDataKeyCommand({
        KeyId: this.keyId,
        KeySpec: 'AES_256',
        EncryptionContext: encryptionContext(context),
      }),
    );
    if (!out.Plaintext || !out.CiphertextBlob || out.Plaintext.byteLength !== 32)
      throw new Error(
        `KMS GenerateDataKey under ${this.keyId} returned no usable AES-256 data key`,
      );
    const key = Buffer.from(out.Plaintext);
    try {
      const iv = randomBytes(ivBytes);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: tagBytes });
      cipher.setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([
        cipher.update(plaintext, 'utf8'),
        cipher.final(),
        cipher.getAuthTag(),
      ]);
      const wrapped = Buffer.from(out.CiphertextBlob).toString('base64url');
      return [version, wrapped, iv.toString('base64url'), body.toString('base64url')].join('.');
    } finally {
      key.fill(0);
    }
  }

  async open(sealed: string, context: string): Promise<string> {
    if (typeof sealed !== 'string') throw new SealedValueUnreadable('it is not a string');
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== version)
      throw new SealedValueUnreadable(
        `it is not in the ${version}.<wrappedKey>.<iv>.<ciphertext> format`,
      );
    const [, wrappedText = '', ivText = '', bodyText = ''] = parts;
    const wrapped = decodeSegment(wrappedText, 'wrapped key');
    const iv = decodeSegment(ivText, 'iv');
    const body = decodeSegment(bodyText, 'ciphertext');
    if (iv.byteLength !== ivBytes)
      throw new SealedValueUnreadable(`its iv is ${iv.byteLength} bytes, not ${ivBytes}`);
    if (body.byteLength < tagBytes)
      throw new SealedValueUnreadable('its ciphertext is shorter than the authentication tag');
    const key = await this.unwrap(wrappedText, wrapped, String(context));
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
        `it does not authenticate in context ${JSON.stringify(context)} (wrong context, or the value was altered)`,
      );
    }
  }

  /** Closes the client's connections; a vault that never reached KMS has none to close. */
  async destroy(): Promise<void> {
    const loaded = await this.loaded?.catch(() => undefined);
    loaded?.client.destroy();
  }

  /** The SDK and the client, loaded and made on first use (the client given is used as is). */
  private sdk(): Promise<{ kms: KmsSdkExports; client: KMSClient }> {
    this.loaded ??= loadSdk().then((kms) => ({
      kms,
      client: isKmsClient(this.clientOption)
        ? this.clientOption
        : new kms.KMSClient(this.clientOption ?? {}),
    }));
    return this.loaded;
  }

  private async unwrap(wrappedText: string, wrapped: Buffer, context: string): Promise<Buffer> {
    // Keyed by wrapped key and context: a hit is a key KMS already released for exactly this pair.
    const cacheKey = `${context}\u0000${wrappedText}`;
    const now = this.clock.now().getTime();
    const hit = this.cache.get(cacheKey);
    if (hit && hit.expiresAt > now) return hit.key;
    if (hit) this.cache.delete(cacheKey);
    const { kms, client } = await this.sdk();
    let out;
    try {
      out = await client.send(
        new kms.DecryptCommand({
          CiphertextBlob: wrapped,
          KeyId: this.keyId,
          EncryptionContext: encryptionContext(context),
        }),
      );
    } catch (e) {
      const name = (e as { name?: string }).name;
      if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException')
        throw new SealedValueUnreadable(
          `KMS refused its data key in context ${JSON.stringify(context)} (${name})`,
        );
      throw new Error(
        `KMS Decrypt under ${this.keyId} failed: ${name ?? 'Error'}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    if (!out.Plaintext || out.Plaintext.byteLength !== 32)
      throw new SealedValueUnreadable('KMS returned no AES-256 data key');
    const key = Buffer.from(out.Plaintext);
    if (this.cacheTtlMs > 0) {
      while (this.cache.size >= this.cacheMaxEntries) {
        const oldest = this.cache.keys().next().value;
        if (oldest === undefined) break;
        this.cache.delete(oldest);
      }
      this.cache.set(cacheKey, { key, expiresAt: now + this.cacheTtlMs });
    }
    return key;
  }
}
