import { randomBytes } from 'node:crypto';
import type { IdGenerator } from '../../core/ports.ts';

const alphabet = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lowercase

function encodeTime(ms: number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    out = alphabet[ms % 32] + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

function encodeRandom(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += alphabet[b % 32];
  return out;
}

/**
 * ULID-shaped ids behind a short prefix (`prj_01jd…`): sortable by creation time, so a
 * page cursor is just the last id seen.
 */
export class RandomIds implements IdGenerator {
  private lastTime = 0;
  private counter = 0;

  newId(prefix: string): string {
    const now = Date.now();
    // Within one millisecond, keep ids increasing so cursors never skip a record.
    if (now === this.lastTime) this.counter++;
    else {
      this.lastTime = now;
      this.counter = 0;
    }
    return `${prefix}_${encodeTime(now, 10)}${encodeTime(this.counter, 3)}${encodeRandom(13)}`;
  }

  newSecret(bytes: number): string {
    return randomBytes(bytes).toString('base64url');
  }
}
