import https from 'node:https';
import { startSelfhostApi } from '../support/api.ts';
import { freePort } from '../support/ports.ts';
import {
  startChallTestSrv,
  startPebble,
  startTlsCaddy,
  type ChallTestSrv,
  type TestPebble,
  type TlsCaddy,
} from '../support/pebble.ts';

/**
 * The control plane with custom domains for real (as test/integration/domains.test.ts
 * sets it up): a DNS server the domain worker polls (pebble-challtestsrv), an ACME CA
 * (pebble) and a Caddy with on-demand TLS asking the control API.
 */
export async function startDomainStack(): Promise<{
  api: Awaited<ReturnType<typeof startSelfhostApi>>;
  dns: ChallTestSrv;
  caddy: TlsCaddy;
  /** GET https://host/version through Caddy, trusting pebble's root. */
  viaHttps(host: string): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}> {
  const dns = await startChallTestSrv();
  const httpPort = await freePort();
  let pebble: TestPebble | undefined;
  let api: Awaited<ReturnType<typeof startSelfhostApi>> | undefined;
  let caddy: TlsCaddy | undefined;
  const stop = async () => {
    await api?.close();
    await caddy?.stop();
    await pebble?.stop();
    await dns.stop();
  };
  try {
    pebble = await startPebble({ dnsAddress: dns.dnsAddress, httpPort });
    const root = await pebble.rootPem();
    const adminPort = await freePort();
    const httpsPort = await freePort();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: `http://127.0.0.1:${adminPort}`,
      caddyServer: 'selfdevop',
      edgeTlsAddress: `127.0.0.1:${httpsPort}`,
      edgeIpv4: ['127.0.0.1'],
      dnsServers: [dns.dnsAddress],
      release: { maxStepAttempts: 4 },
      domains: {
        dnsBaseDelaySeconds: 1,
        dnsMaxDelaySeconds: 2,
        certBaseDelaySeconds: 1,
        certMaxDelaySeconds: 2,
        negativeCacheSeconds: 1,
      },
    });
    caddy = await startTlsCaddy({
      httpPort,
      adminPort,
      httpsPort,
      askUrl: `${api.url}/api/domains/ask`,
      acmeCa: pebble.directoryUrl,
      trustedRootsPemFiles: [pebble.certFile],
    });
    const viaHttps = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = https.get(
          {
            host: '127.0.0.1',
            port: httpsPort,
            path: '/version',
            servername: host,
            headers: { host },
            ca: root,
            agent: false,
            timeout: 10_000,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
          },
        );
        r.on('timeout', () => r.destroy(new Error(`https ${host} timed out`)));
        r.on('error', reject);
      });
    return { api, dns, caddy, viaHttps, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
