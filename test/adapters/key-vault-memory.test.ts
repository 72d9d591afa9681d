import { describe, expect, it } from 'vitest';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import { runKeyVaultContract } from '../contracts/key-vault.case.ts';

runKeyVaultContract({ make: () => new MemoryKeyVault() });

describe('MemoryKeyVault', () => {
  it('opens values of another instance built with the same key', async () => {
    const key = new Uint8Array(32).fill(7);
    const sealed = await new MemoryKeyVault(key).seal('v', 'c');
    expect(await new MemoryKeyVault(key).open(sealed, 'c')).toBe('v');
  });
});
