import { describe, expect, it } from 'vitest';
import { nodeKeyHasher } from '../../adapters/hash/node-crypto.ts';
import { pureKeyHasher } from '../../core/hash.ts';
import { runKeyHasherContract } from '../contracts/key-hasher.case.ts';

runKeyHasherContract({ make: () => nodeKeyHasher });

describe('node:crypto KeyHasher', () => {
  it('gives the digest the pure hash gave, so keys stored before it still authenticate', () => {
    const keys = ['sdo_', 'sdo_AbC-_09', `sdo_${'x'.repeat(43)}`, 'sdo_ünïcödé', ''];
    for (const key of keys) expect(nodeKeyHasher.sha256Hex(key)).toBe(pureKeyHasher.sha256Hex(key));
  });
});
