import { randomBytes } from 'node:crypto';
import type { KeyVault } from '../../core/ports.ts';
import { KeyRing } from './key-ring.ts';

/**
 * A vault whose key lives only in this process (random per instance), for tests. Same
 * format and checks as the key-file vault; values do not survive the process.
 */
export class MemoryKeyVault implements KeyVault {
  private readonly ring: KeyRing;

  constructor(key: Uint8Array = randomBytes(32)) {
    this.ring = new KeyRing(key);
  }

  async seal(plaintext: string, context: string): Promise<string> {
    return this.ring.seal(plaintext, context);
  }

  async open(sealed: string, context: string): Promise<string> {
    return this.ring.open(sealed, context);
  }
}
