import { describe } from 'vitest';
import { NodeDnsResolver } from '../../adapters/dns/node.ts';
import { runDnsResolverContract } from '../contracts/dns-resolver.case.ts';
import { pebbleAvailable, startChallTestSrv } from '../support/pebble.ts';

// Against a real DNS server: pebble-challtestsrv, records set through its management API.
describe.skipIf(!(await pebbleAvailable()))('NodeDnsResolver against pebble-challtestsrv', () => {
  runDnsResolverContract({
    make: async () => {
      const dns = await startChallTestSrv();
      return {
        resolver: new NodeDnsResolver({ servers: [dns.dnsAddress], timeoutMs: 500, tries: 1 }),
        setTxt: (name, value) => dns.setTxt(name, value),
        clearTxt: (name) => dns.clearTxt(name),
        setCname: (name, target) => dns.setCname(name, target),
        setA: (name, addresses) => dns.addA(name, addresses),
        down: () => dns.stop(),
        up: () => dns.start(),
        close: () => dns.stop(),
      };
    },
  });
});
