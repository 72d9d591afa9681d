import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AesFileKeyVault, ensureKeyFile, readKeyFile } from '../../adapters/vault/aes-file.ts';
import { keyIdOf } from '../../adapters/vault/key-ring.ts';
import { runKeyVaultContract } from '../contracts/key-vault.case.ts';

let base: string;
let n = 0;
beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'sdo-vault-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

const newKeyPath = () => path.join(base, `keys-${++n}`, 'vault.key');

async function freshVault(): Promise<AesFileKeyVault> {
  const file = newKeyPath();
  await ensureKeyFile(file);
  return AesFileKeyVault.fromKeyFiles(file);
}

runKeyVaultContract({ make: freshVault });

describe('ensureKeyFile', () => {
  it('creates a 0600 file holding 32 random bytes as base64, in a 0700 folder', async () => {
    const file = newKeyPath();
    expect(await ensureKeyFile(file)).toEqual({ created: true });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const text = await readFile(file, 'utf8');
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(Buffer.from(text, 'base64')).toHaveLength(32);
    expect(await readdir(path.dirname(file))).toEqual(['vault.key']);
  });

  it('never overwrites an existing key file', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    const first = await readFile(file, 'utf8');
    expect(await ensureKeyFile(file)).toEqual({ created: false });
    expect(await readFile(file, 'utf8')).toBe(first);
    await writeFile(file, 'not a key at all', { mode: 0o600 });
    expect(await ensureKeyFile(file)).toEqual({ created: false });
    expect(await readFile(file, 'utf8')).toBe('not a key at all');
    expect(await readdir(path.dirname(file))).toEqual(['vault.key']);
  });

  it('creates exactly one key when several processes race', async () => {
    const file = newKeyPath();
    const results = await Promise.all(Array.from({ length: 8 }, () => ensureKeyFile(file)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await readKeyFile(file)).toHaveLength(32);
    expect(await readdir(path.dirname(file))).toEqual(['vault.key']);
  });

  it('does not lose a value to a second ensure: a new instance still opens it', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    const sealed = await (await AesFileKeyVault.fromKeyFiles(file)).seal('kept', 'ctx');
    await ensureKeyFile(file);
    expect(await (await AesFileKeyVault.fromKeyFiles(file)).open(sealed, 'ctx')).toBe('kept');
  });
});

describe('readKeyFile', () => {
  it('accepts a key written by hand without a trailing newline', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    const key = randomBytes(32);
    await writeFile(file, key.toString('base64'));
    expect(Buffer.from(await readKeyFile(file)).equals(key)).toBe(true);
  });

  it('refuses a missing key file, naming it', async () => {
    const file = path.join(base, 'absent', 'vault.key');
    await expect(readKeyFile(file)).rejects.toThrow(`key file ${file} does not exist`);
  });

  const wrong: Array<[string, string | Buffer]> = [
    ['16 bytes of base64', randomBytes(16).toString('base64')],
    ['64 bytes of base64', randomBytes(64).toString('base64')],
    ['raw 32 bytes', randomBytes(32)],
    ['base64url', Buffer.from(new Uint8Array(32).fill(0xfb)).toString('base64url')],
    ['empty', ''],
  ];
  for (const [label, content] of wrong) {
    it(`refuses a key file of the wrong size or encoding (${label}), naming it`, async () => {
      const file = newKeyPath();
      await ensureKeyFile(file);
      await writeFile(file, content);
      await expect(readKeyFile(file)).rejects.toThrow(
        `key file ${file} must hold exactly 32 bytes as base64`,
      );
      await expect(AesFileKeyVault.fromKeyFiles(file)).rejects.toThrow(file);
    });
  }

  for (const mode of [0o644, 0o604, 0o602, 0o666]) {
    it(`refuses a key file every user can read or write (mode ${mode.toString(8)}), naming it`, async () => {
      const file = newKeyPath();
      await ensureKeyFile(file);
      await chmod(file, mode);
      await expect(readKeyFile(file)).rejects.toThrow(
        `key file ${file} is readable or writable by every user (mode 0${mode.toString(8)}); run: chmod 600 ${file}`,
      );
    });
  }

  it('accepts a key file its group may read (e.g. a container group)', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    await chmod(file, 0o640);
    expect(await readKeyFile(file)).toHaveLength(32);
  });

  it('refuses a folder in place of the key file', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    await expect(readKeyFile(path.dirname(file))).rejects.toThrow(
      `key file ${path.dirname(file)} is not a regular file`,
    );
  });
});

describe('AesFileKeyVault', () => {
  it('opens a value sealed by another instance on the same key file', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    const sealed = await (
      await AesFileKeyVault.fromKeyFiles(file)
    ).seal('shared secret', 'org_1/A');
    expect(await (await AesFileKeyVault.fromKeyFiles(file)).open(sealed, 'org_1/A')).toBe(
      'shared secret',
    );
  });

  it('seals as v1.<keyId>.<iv>.<ciphertext+tag> in base64url', async () => {
    const file = newKeyPath();
    await ensureKeyFile(file);
    const vault = await AesFileKeyVault.fromKeyFiles(file);
    const sealed = await vault.seal('abc', 'ctx');
    const [v, keyId, iv, body, ...rest] = sealed.split('.');
    expect(rest).toEqual([]);
    expect(v).toBe('v1');
    expect(keyId).toBe(keyIdOf(await readKeyFile(file)));
    expect(keyId).toBe(vault.keyId);
    expect(Buffer.from(iv ?? '', 'base64url')).toHaveLength(12);
    expect(Buffer.from(body ?? '', 'base64url')).toHaveLength(3 + 16);
  });

  it('rotates: seals with the new key and still opens values sealed with the old one', async () => {
    const oldFile = newKeyPath();
    const newFile = newKeyPath();
    await ensureKeyFile(oldFile);
    await ensureKeyFile(newFile);
    const before = await (await AesFileKeyVault.fromKeyFiles(oldFile)).seal('from before', 'ctx');
    const rotated = await AesFileKeyVault.fromKeyFiles(newFile, [oldFile]);
    expect(await rotated.open(before, 'ctx')).toBe('from before');
    const after = await rotated.seal('from after', 'ctx');
    expect(after.split('.')[1]).toBe(keyIdOf(await readKeyFile(newFile)));
    expect(after.split('.')[1]).not.toBe(before.split('.')[1]);
    // Without the old key, the old value no longer opens, and the error says which key it needs.
    const newOnly = await AesFileKeyVault.fromKeyFiles(newFile);
    await expect(newOnly.open(before, 'ctx')).rejects.toThrow(
      `sealed with key ${before.split('.')[1]}, which this vault does not hold`,
    );
    expect(await newOnly.open(after, 'ctx')).toBe('from after');
  });

  it('says why a value in another context does not open, without the plaintext', async () => {
    const vault = await freshVault();
    const sealed = await vault.seal('the-plaintext', 'org_1/A');
    const error = await vault.open(sealed, 'org_2/A').catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /does not authenticate with key .* in context "org_2\/A"/,
    );
    expect((error as Error).message).not.toContain('the-plaintext');
  });

  it('refuses a key of the wrong size given directly', () => {
    expect(() => new AesFileKeyVault({ current: new Uint8Array(16) })).toThrow(
      'an AES-256 key must be 32 bytes, got 16',
    );
  });
});
