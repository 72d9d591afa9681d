import { pureKeyHasher } from '../../core/hash.ts';
import { runKeyHasherContract } from '../contracts/key-hasher.case.ts';

runKeyHasherContract({ make: () => pureKeyHasher });
