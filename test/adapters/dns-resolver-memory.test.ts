import { MemoryDnsResolver } from '../../adapters/dns/memory.ts';
import { runDnsResolverContract } from '../contracts/dns-resolver.case.ts';

runDnsResolverContract({
  make: async () => {
    const resolver = new MemoryDnsResolver();
    return {
      resolver,
      setTxt: async (name, value) => resolver.setTxt(name, value),
      clearTxt: async (name) => resolver.clear('txt', name),
      setCname: async (name, target) => resolver.setCname(name, target),
      setA: async (name, addresses) => resolver.setA(name, ...addresses),
      down: async () => resolver.setUnreachable(true),
      up: async () => resolver.setUnreachable(false),
      close: async () => {},
    };
  },
});
