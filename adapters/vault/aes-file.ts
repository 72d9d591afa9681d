import { randomBytes } from 'node:crypto';
import { link, mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { KeyVault } from '../../core/ports.ts';
import { KeyRing } from './key-ring.ts';

/*
 * Key file format: the 32 key bytes as standard base64 (44 characters ending in "="),
 * optionally followed by a newline, which is what `openssl rand -base64 32` prints. Text,
 * so it survives copy-paste into a secret manager and an editor's trailing newline.
 */
const keyBase64 = /^[A-Za-z0-9+/]{43}=$/;
const fileMode = 0o600;

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

function formatMode(mode: number): string {
  return `0${(mode & 0o777).toString(8)}`;
}

/**
 * Reads a 32-byte AES key from a key file; throws, naming the file, when it is missing, not
 * a regular file, readable or writable by every user, or not 32 bytes of base64.
 */
export async function readKeyFile(file: string): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    if (errorCode(e) === 'ENOENT') {
      throw new Error(
        `key file ${file} does not exist; create it with: openssl rand -base64 32 > ${file} && chmod 600 ${file}`,
        {
          cause: e,
        },
      );
    }
    throw new Error(`key file ${file} cannot be read: ${(e as Error).message}`, { cause: e });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`key file ${file} is not a regular file`);
    // The key decrypts every secret of every org: a file any local user can read (or
    // replace) defeats the point of encrypting them.
    if (info.mode & 0o006) {
      throw new Error(
        `key file ${file} is readable or writable by every user (mode ${formatMode(info.mode)}); run: chmod 600 ${file}`,
      );
    }
    const text = (await handle.readFile('utf8')).trim();
    if (!keyBase64.test(text)) {
      const bytes = Buffer.from(text, 'base64').byteLength;
      throw new Error(
        `key file ${file} must hold exactly 32 bytes as base64 (44 characters, e.g. from "openssl rand -base64 32"); it holds ${text.length} characters (${bytes} bytes once decoded)`,
      );
    }
    return new Uint8Array(Buffer.from(text, 'base64'));
  } finally {
    await handle.close();
  }
}

/**
 * Creates the key file with a new random key (mode 0600) when no file is at that path;
 * never touches an existing one. Safe to run from several processes at once.
 */
export async function ensureKeyFile(file: string): Promise<{ created: boolean }> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  // Written in full to a private temporary file and then hard-linked into place: link,
  // like the `wx` flag, fails when the name exists, and a concurrent reader never sees an
  // empty or half-written key file.
  const tmp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', fileMode);
  try {
    try {
      await handle.writeFile(`${randomBytes(32).toString('base64')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(tmp, file);
      return { created: true };
    } catch (e) {
      if (errorCode(e) === 'EEXIST') return { created: false };
      throw e;
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * Self-hosted KeyVault: AES-256-GCM with keys read from key files. New values are sealed
 * with the current key; values sealed with any of the previous keys still open, so a key
 * is rotated by making a new current file and listing the old one as previous.
 *
 * @example const vault = await AesFileKeyVault.fromKeyFiles('/run/selfdevop/vault.key', ['/run/selfdevop/vault.key.old'])
 */
export class AesFileKeyVault implements KeyVault {
  private readonly ring: KeyRing;

  constructor(keys: { current: Uint8Array; previous?: Uint8Array[] }) {
    this.ring = new KeyRing(keys.current, keys.previous ?? []);
  }

  /** Reads the current key file and any previous ones (see readKeyFile for the checks). */
  static async fromKeyFiles(
    currentFile: string,
    previousFiles: string[] = [],
  ): Promise<AesFileKeyVault> {
    const current = await readKeyFile(currentFile);
    const previous = await Promise.all(previousFiles.map((file) => readKeyFile(file)));
    return new AesFileKeyVault({ current, previous });
  }

  /** The id of the key new values are sealed with (the second field of a sealed value). */
  get keyId(): string {
    return this.ring.currentKeyId;
  }

  async seal(plaintext: string, context: string): Promise<string> {
    return this.ring.seal(plaintext, context);
  }

  async open(sealed: string, context: string): Promise<string> {
    return this.ring.open(sealed, context);
  }
}
