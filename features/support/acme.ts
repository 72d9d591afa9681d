/**
 * The ACME CA and the DNS server custom domains meet in the acceptance run, per TESTING.md
 * "ACME and DNS": pebble-challtestsrv (DNS with a management API) and pebble, on this host's
 * Docker bridge address, because the stack's containers cannot reach the host's loopback.
 * The install is pointed at them by configuration alone (install.sh --acme-ca,
 * --acme-ca-root, --dns-servers). challtestsrv sends every name to 127.0.0.1, so pebble
 * validates HTTP-01 and TLS-ALPN-01 on the install's published edge ports there.
 */
import {
  pebbleAvailable,
  startChallTestSrv,
  startPebble,
  type ChallTestSrv,
  type TestPebble,
} from '../../test/support/pebble.ts';
import { bridgeGateway, type Install } from './stack.ts';

export interface TestAcme {
  dns: ChallTestSrv;
  pebble: TestPebble;
  /** install.sh flags that point an install at them. */
  installArgs: string[];
  stop(): Promise<void>;
}

/** Starts both for `install` (its edge ports must be chosen already); null when pebble is not installed here. */
export async function startTestAcme(install: Install): Promise<TestAcme | null> {
  if (!(await pebbleAvailable())) return null;
  const host = await bridgeGateway();
  const dns = await startChallTestSrv({ host });
  let pebble: TestPebble;
  try {
    pebble = await startPebble({
      host,
      dnsAddress: dns.dnsAddress,
      httpPort: install.httpPort,
      tlsPort: install.httpsPort,
    });
  } catch (e) {
    await dns.stop();
    throw e;
  }
  return {
    dns,
    pebble,
    installArgs: [
      '--acme-ca',
      pebble.directoryUrl,
      '--acme-ca-root',
      pebble.certFile,
      '--dns-servers',
      dns.dnsAddress,
    ],
    async stop() {
      await pebble.stop();
      await dns.stop();
    },
  };
}
