/**
 * A KMS key behind aws-sdk-client-mock that really wraps: data keys are AES-256-GCM
 * encrypted under a master key of its own, with the EncryptionContext as additional data,
 * the way KMS binds a ciphertext blob to its key and context.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';

/** An AWS service error as the SDK raises it: `name` is the exception type. */
export class KmsError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** Answers every KMSClient, so a composition root's own client works. */
export function fakeKmsForEveryClient(keyArn: string) {
  return fakeKms(keyArn, KMSClient);
}

/** Answers `client` only (or every client when given the class). */
export function fakeKms(keyArn: string, client: KMSClient | typeof KMSClient) {
  const master = randomBytes(32);
  const aad = (context: Record<string, string> | undefined) =>
    Buffer.from(
      JSON.stringify(Object.entries(context ?? {}).sort(([a], [b]) => a.localeCompare(b))),
    );
  const mock = mockClient(client);
  mock.on(GenerateDataKeyCommand).callsFake((input: GenerateDataKeyCommand['input']) => {
    if (input.KeyId !== keyArn || input.KeySpec !== 'AES_256') {
      throw new KmsError(
        'ValidationException',
        `expected an AES_256 data key of ${keyArn}, got ${input.KeySpec} of ${input.KeyId}`,
      );
    }
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, iv);
    cipher.setAAD(aad(input.EncryptionContext));
    const blob = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return {
      KeyId: keyArn,
      Plaintext: new Uint8Array(plaintext),
      CiphertextBlob: new Uint8Array(blob),
    };
  });
  mock.on(DecryptCommand).callsFake((input: DecryptCommand['input']) => {
    const blob = Buffer.from(input.CiphertextBlob ?? new Uint8Array());
    if (blob.byteLength !== 12 + 32 + 16)
      throw new KmsError('InvalidCiphertextException', 'bad blob');
    const decipher = createDecipheriv('aes-256-gcm', master, blob.subarray(0, 12));
    decipher.setAAD(aad(input.EncryptionContext));
    decipher.setAuthTag(blob.subarray(44));
    try {
      return {
        KeyId: keyArn,
        Plaintext: new Uint8Array(
          Buffer.concat([decipher.update(blob.subarray(12, 44)), decipher.final()]),
        ),
      };
    } catch {
      throw new KmsError('InvalidCiphertextException', 'ciphertext or context does not match');
    }
  });
  return mock;
}
