/**
 * Custom domains end to end: the records the API asks for are published in the test DNS
 * server, and the host is fetched over HTTPS from the install's edge port the way a
 * browser would reach it (SNI and Host set to the custom hostname), trusting only the test
 * CA's root.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import tls from 'node:tls';
import { Then, When } from '@cucumber/cucumber';
import { sleep } from '../support/stack.ts';
import { suite, type AcceptanceWorld } from '../support/world.ts';
import type { TestAcme } from '../support/acme.ts';

function acme(): TestAcme {
  if (!suite.acme)
    throw new Error(
      'no test ACME CA: pebble is not installed here (run ../shared/ci/setup-machine.sh pebble)',
    );
  return suite.acme;
}

interface DnsRecord {
  type: string;
  name: string;
  value: string;
}

When('I publish the DNS records the response asks for', async function (this: AcceptanceWorld) {
  const records = (this.lastResponse().json as { records?: DnsRecord[] }).records;
  assert.ok(records?.length, `no records in: ${this.lastResponse().text.slice(0, 500)}`);
  const { dns } = acme();
  for (const r of records) {
    if (r.type === 'TXT') await dns.setTxt(r.name, r.value);
    else if (r.type === 'CNAME') await dns.setCname(r.name, r.value);
    else if (r.type === 'A') await dns.addA(r.name, [r.value]);
    else throw new Error(`unknown record type ${r.type}`);
  }
});

Then(
  'the domain {string} becomes {string} within {int} seconds',
  async function (this: AcceptanceWorld, id: string, status: string, seconds: number) {
    const path = `/api/domains/${this.interpolate(id)}`;
    const end = Date.now() + seconds * 1000;
    for (;;) {
      const res = await this.stack.api('GET', path, { token: this.token ?? undefined });
      assert.equal(res.status, 200, res.text);
      const now = (res.json as { status: string }).status;
      if (now === status) return;
      if (now === 'failed' || Date.now() > end)
        throw new Error(`domain is ${now}, not ${status}, after ${seconds} s: ${res.text}`);
      await sleep(500);
    }
  },
);

Then(
  '{string} answers {string} over HTTPS with a certificate from the test CA',
  async function (this: AcceptanceWorld, url: string, body: string) {
    const { hostname, pathname } = new URL(url);
    const ca = await acme().pebble.rootPem();
    const answer = await new Promise<{ status: number; body: string; issuer: string }>(
      (resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port: this.stack.httpsPort,
            path: pathname,
            servername: hostname,
            headers: { host: hostname },
            // Only the CA's root: the chain and the name are checked as a browser would.
            ca,
            agent: false,
            timeout: 15_000,
          },
          (res) => {
            const cn = (res.socket as tls.TLSSocket).getPeerCertificate().issuer?.CN;
            const issuer = String((Array.isArray(cn) ? cn[0] : cn) ?? '');
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, body: text.trim(), issuer }),
            );
          },
        );
        req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
        req.on('error', reject);
      },
    );
    assert.deepEqual({ status: answer.status, body: answer.body }, { status: 200, body });
    assert.match(answer.issuer, /^Pebble Intermediate CA/);
  },
);

Then(
  'a TLS handshake for {string} gets no certificate',
  async function (this: AcceptanceWorld, hostname: string) {
    const outcome = await new Promise<string>((resolve) => {
      // No verification: any certificate at all, even an untrusted one, would be a failure.
      const socket = tls.connect({
        host: '127.0.0.1',
        port: this.stack.httpsPort,
        servername: hostname,
        rejectUnauthorized: false,
        timeout: 20_000,
      });
      socket.once('secureConnect', () => {
        const cert = socket.getPeerCertificate();
        socket.destroy();
        resolve(
          `got a certificate for ${cert.subjectaltname ?? cert.subject?.CN} from ${cert.issuer?.CN}`,
        );
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve('the handshake timed out');
      });
      socket.once('error', (e) => resolve(`refused: ${e.message}`));
    });
    assert.match(outcome, /^refused: .*alert/i);
  },
);

Then(
  'the test CA received no order for {string}',
  function (this: AcceptanceWorld, hostname: string) {
    assert.ok(!acme().pebble.log().includes(hostname), `pebble's log mentions ${hostname}`);
  },
);
