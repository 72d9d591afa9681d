import { MemoryObjectStore } from '../../adapters/objects/memory.ts';
import { runObjectStoreContract } from '../contracts/object-store.case.ts';

runObjectStoreContract({ make: () => new MemoryObjectStore() });
