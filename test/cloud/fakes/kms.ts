/**
 * A KMS key behind aws-sdk-client-mock that really wraps (as in key-vault-kms.test.ts):
 * data keys are AES-256-GCM encrypted under a master key of its own, bound to the
 * EncryptionContext. It answers every KMSClient, so a composition root's own client works.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';

class KmsError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export function fakeKmsForEveryClient(keyArn: string) {
  const master = randomBytes(32);
  const aad = (context: Record<string, string> | undefined) =>
    Buffer.from(JSON.stringify(Object.entries(context ?? {}).sort(([a], [b]) => a.localeCompare(b))));
  const mock = mockClient(KMSClient);
  mock.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommand['input']) => {
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, iv);
    cipher.setAAD(aad(input.EncryptionContext));
    const blob = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { KeyId: keyArn, Plaintext: new Uint8Array(plaintext), CiphertextBlob: new Uint8Array(blob) };
  });
  mock.on(DecryptCommand).callsFake((input: DecryptCommand['input']) => {
    const blob = Buffer.from(input.CiphertextBlob ?? new Uint8Array());
    if (blob.byteLength !== 12 + 32 + 16) throw new KmsError('InvalidCiphertextException', 'bad blob');
    const decipher = createDecipheriv('aes-256-gcm', master, blob.subarray(0, 12));
    decipher.setAAD(aad(input.EncryptionContext));
    decipher.setAuthTag(blob.subarray(44));
    try {
      return { KeyId: keyArn, Plaintext: new Uint8Array(Buffer.concat([decipher.update(blob.subarray(12, 44)), decipher.final()])) };
    } catch {
      throw new KmsError('InvalidCiphertextException', 'ciphertext or context does not match');
    }
  });
  return mock;
}
