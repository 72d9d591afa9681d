import { randomBytes } from 'node:crypto';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { KmsKeyVault } from '../../adapters/vault/kms.ts';
import { SealedValueUnreadable } from '../../adapters/vault/key-ring.ts';
import { fakeKms as fakeKmsFor, KmsError } from '../cloud/fakes/kms.ts';
import { runKeyVaultContract } from '../contracts/key-vault.case.ts';

const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

function fakeKms() {
  const client = new KMSClient({
    region: 'eu-west-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  return { client, mock: fakeKmsFor(keyArn, client) };
}

runKeyVaultContract({ make: () => new KmsKeyVault({ keyId: keyArn, client: fakeKms().client }) });

describe('KmsKeyVault', () => {
  const context = 'org_1/svc_1/env_1/API_TOKEN';

  it('asks KMS for an AES-256 data key bound to the context, and stores it wrapped', async () => {
    const { client, mock } = fakeKms();
    const vault = new KmsKeyVault({ keyId: keyArn, client });
    const sealed = await vault.seal('value', context);
    expect(mock.commandCalls(GenerateDataKeyCommand)[0]?.args[0].input).toEqual({
      KeyId: keyArn,
      KeySpec: 'AES_256',
      EncryptionContext: { 'selfdevop:context': context },
    });
    const [tag, wrapped, iv] = sealed.split('.');
    expect(tag).toBe('kms1');
    expect(Buffer.from(wrapped ?? '', 'base64url').byteLength).toBe(60);
    expect(Buffer.from(iv ?? '', 'base64url').byteLength).toBe(12);
    expect(await vault.open(sealed, context)).toBe('value');
    expect(mock.commandCalls(DecryptCommand)[0]?.args[0].input).toMatchObject({
      KeyId: keyArn,
      EncryptionContext: { 'selfdevop:context': context },
    });
  });

  it('keeps unwrapped data keys for the cache period, then asks KMS again', async () => {
    const { client, mock } = fakeKms();
    const clock = new ManualClock();
    const vault = new KmsKeyVault({ keyId: keyArn, client, clock, cacheTtlMs: 60_000 });
    const sealed = await vault.seal('value', context);
    for (let i = 0; i < 3; i++) expect(await vault.open(sealed, context)).toBe('value');
    expect(mock.commandCalls(DecryptCommand)).toHaveLength(1);
    clock.advance(60_001);
    expect(await vault.open(sealed, context)).toBe('value');
    expect(mock.commandCalls(DecryptCommand)).toHaveLength(2);
  });

  it('does not let a cached key open the value in another context', async () => {
    const { client } = fakeKms();
    const vault = new KmsKeyVault({ keyId: keyArn, client });
    const sealed = await vault.seal('value', context);
    expect(await vault.open(sealed, context)).toBe('value');
    await expect(vault.open(sealed, 'org_2/svc_1/env_1/API_TOKEN')).rejects.toThrow(
      SealedValueUnreadable,
    );
  });

  it('evicts the oldest keys beyond the cache size', async () => {
    const { client, mock } = fakeKms();
    const vault = new KmsKeyVault({ keyId: keyArn, client, cacheMaxEntries: 2 });
    const sealed = [
      await vault.seal('a', context),
      await vault.seal('b', context),
      await vault.seal('c', context),
    ];
    for (const s of sealed) await vault.open(s, context);
    expect(mock.commandCalls(DecryptCommand)).toHaveLength(3);
    await vault.open(sealed[2]!, context);
    expect(mock.commandCalls(DecryptCommand)).toHaveLength(3);
    await vault.open(sealed[0]!, context);
    expect(mock.commandCalls(DecryptCommand)).toHaveLength(4);
  });

  it('says which key failed when KMS itself is unreachable, without the value', async () => {
    const { client, mock } = fakeKms();
    const vault = new KmsKeyVault({ keyId: keyArn, client });
    const sealed = await vault.seal('hunter2', context);
    mock.on(DecryptCommand).rejects(new KmsError('KMSInternalException', 'try again'));
    const error = await vault.open(sealed, context).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `KMS Decrypt under ${keyArn} failed: KMSInternalException: try again`,
    );
    expect((error as Error).message).not.toContain('hunter2');
  });

  it('makes its own client from settings on first use, and destroy() closes only a client it has', async () => {
    const plaintext = new Uint8Array(randomBytes(32));
    const mock = mockClient(KMSClient);
    const destroy = vi.spyOn(KMSClient.prototype, 'destroy');
    try {
      mock
        .on(GenerateDataKeyCommand)
        .resolves({ KeyId: keyArn, Plaintext: plaintext, CiphertextBlob: new Uint8Array(60) });
      mock.on(DecryptCommand).resolves({ KeyId: keyArn, Plaintext: plaintext });
      const vault = new KmsKeyVault({
        keyId: keyArn,
        client: { region: 'eu-central-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } },
      });
      await vault.destroy();
      expect(destroy).not.toHaveBeenCalled();
      expect(await vault.open(await vault.seal('value', context), context)).toBe('value');
      const made = mock.call(0).thisValue as KMSClient;
      expect(made).toBeInstanceOf(KMSClient);
      expect(await made.config.region()).toBe('eu-central-1');
      await vault.destroy();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
      mock.restore();
    }
  });

  it('refuses a missing key id, naming the variable', () => {
    expect(() => new KmsKeyVault({ keyId: '', client: fakeKms().client })).toThrow(
      /^SECRETS_KMS_KEY_ID must name a KMS key/,
    );
  });
});
