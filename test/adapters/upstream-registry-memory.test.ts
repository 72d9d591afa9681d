import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import { runUpstreamRegistryContract } from '../contracts/upstream-registry.case.ts';

runUpstreamRegistryContract({ make: async () => new MemoryUpstreamRegistry() });
