import { InvalidInput } from '../../core/errors.ts';

/** bcrypt reads only the first 72 bytes; a longer password would be silently cut. */
export const maxPasswordBytes = 72;

/** Throws InvalidInput naming `password` when it is not a string or is over 72 UTF-8 bytes. */
export function assertHashablePassword(password: string): void {
  if (typeof password !== 'string')
    throw new InvalidInput('password must be a string', { field: 'password' });
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes > maxPasswordBytes) {
    throw new InvalidInput(
      `password must be at most ${maxPasswordBytes} bytes in UTF-8, got ${bytes}`,
      { field: 'password' },
    );
  }
}

/** False for a password no hash could have been made from, so a long guess cannot match on its first 72 bytes. */
export function isVerifiablePassword(password: unknown): password is string {
  return typeof password === 'string' && Buffer.byteLength(password, 'utf8') <= maxPasswordBytes;
}

/** Throws InvalidInput unless userId is a non-empty string. */
export function assertUserId(userId: string): void {
  if (typeof userId !== 'string' || userId === '')
    throw new InvalidInput('userId must be a non-empty string', { field: 'userId' });
}
