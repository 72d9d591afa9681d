import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Reads a generated secret, creating it (0600) only when it does not exist yet. The `wx`
 * flag means a second start, or two starts racing, never replaces a secret: rotating the
 * JWT secret would sign everyone out, and replacing the database password would lock the
 * embedded PostgreSQL away from its own data.
 */
export async function ensureSecretFile(
  file: string,
  bytes = 48,
): Promise<{ value: string; created: boolean }> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, randomBytes(bytes).toString('base64url') + '\n', {
      flag: 'wx',
      mode: 0o600,
    });
    await chmod(file, 0o600);
    return { value: (await readFile(file, 'utf8')).trim(), created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const value = (await readFile(file, 'utf8')).trim();
  if (!value)
    throw new Error(
      `${file} is empty; restore it from a backup (it must not be regenerated over existing data)`,
    );
  return { value, created: false };
}
