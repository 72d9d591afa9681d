import { beforeEach, describe, expect, it } from 'vitest';
import type { KeyVault } from '../../core/ports.ts';

export interface KeyVaultFixture {
  /** A vault for each test. */
  make: () => KeyVault | Promise<KeyVault>;
}

/** Replaces one character of s at index i with a different base64url character. */
export function alterAt(s: string, i: number): string {
  const c = s[i];
  return s.slice(0, i) + (c === 'A' ? 'B' : 'A') + s.slice(i + 1);
}

/** The behaviour every KeyVault (key file, KMS, memory) shares. */
export function runKeyVaultContract({ make }: KeyVaultFixture): void {
  describe('KeyVault contract', () => {
    let vault: KeyVault;
    beforeEach(async () => {
      vault = await make();
    });

    const context = 'org_1/svc_1/env_1/DATABASE_URL';

    const values: Array<[string, string]> = [
      ['ascii', 'postgres://app:s3cr3t@db:5432/app'],
      ['unicode', 'pässwörd ✓ 密码 🚀 \u0000 end'],
      ['empty', ''],
      ['64 KiB', 'x'.repeat(32 * 1024) + 'é'.repeat(16 * 1024)],
    ];
    for (const [label, plaintext] of values) {
      it(`round-trips a ${label} value`, async () => {
        const sealed = await vault.seal(plaintext, context);
        expect(typeof sealed).toBe('string');
        expect(await vault.open(sealed, context)).toBe(plaintext);
      });
    }

    it('seals the same plaintext differently each time', async () => {
      const a = await vault.seal('same value', context);
      const b = await vault.seal('same value', context);
      expect(a).not.toBe(b);
      expect(await vault.open(a, context)).toBe('same value');
      expect(await vault.open(b, context)).toBe('same value');
    });

    it('never shows the plaintext in the sealed value', async () => {
      const plaintext = 'hunter2-very-secret-token';
      for (let i = 0; i < 5; i++) {
        const sealed = await vault.seal(plaintext, context);
        expect(sealed).not.toContain(plaintext);
        expect(sealed).not.toContain('hunter2');
        expect(sealed).not.toContain(Buffer.from(plaintext).toString('base64url').slice(0, 12));
      }
    });

    it('does not open in another context', async () => {
      const sealed = await vault.seal('value', context);
      await expect(vault.open(sealed, 'org_2/svc_1/env_1/DATABASE_URL')).rejects.toThrow();
      await expect(vault.open(sealed, '')).rejects.toThrow();
      await expect(vault.open(sealed, `${context} `)).rejects.toThrow();
    });

    it('does not open a tampered value, wherever it was changed', async () => {
      const sealed = await vault.seal('a value worth protecting', context);
      const positions = [
        sealed.length - 1,
        Math.floor(sealed.length / 2),
        sealed.lastIndexOf('.') + 1,
        sealed.indexOf('.') + 1,
      ];
      for (const i of positions) {
        const tampered = alterAt(sealed, i);
        expect(tampered).not.toBe(sealed);
        await expect(vault.open(tampered, context)).rejects.toThrow();
      }
      await expect(vault.open(sealed.slice(0, -4), context)).rejects.toThrow();
      await expect(vault.open(`${sealed}AAAA`, context)).rejects.toThrow();
      // The untouched value still opens: the failures above came from the changes.
      expect(await vault.open(sealed, context)).toBe('a value worth protecting');
    });

    it('does not open garbage', async () => {
      for (const garbage of ['', 'not sealed', 'v1', 'v1...', 'v9.a.b.c', '🚀']) {
        await expect(vault.open(garbage, context)).rejects.toThrow();
      }
    });

    it('does not open a value sealed by an unrelated vault', async () => {
      const other = await make();
      const sealed = await other.seal('theirs', context);
      await expect(vault.open(sealed, context)).rejects.toThrow();
    });
  });
}
